"""QAMDemapper against Sionna's Demapper: the same LLRs (float32 rounding), every 5G QAM order."""

import pytest
import torch
from sionna.phy.mapping import Demapper, Mapper

from phy.demapping import QAMDemapper


@pytest.mark.parametrize("qm", [2, 4, 6, 8])
@pytest.mark.parametrize("method", ["app", "maxlog"])
def test_llrs_equal_sionnas(qm: int, method: str) -> None:
    g = torch.Generator().manual_seed(qm)
    bits = torch.randint(0, 2, (3, 4, 240 * qm), generator=g).float()
    x = Mapper("qam", qm)(bits)
    no = torch.rand(x.shape, generator=g) * 0.5 + 1e-3  # per-symbol N0, high and low SNR
    noise = torch.complex(torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g))
    y = x + noise * (no / 2).sqrt()
    ref = Demapper(method, "qam", qm)(y, no)
    ours = QAMDemapper(method, qm)(y, no)
    assert ours.shape == ref.shape == bits.shape
    # relative to the largest |LLR|: float32 rounding of two different summation orders
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()
    scalar = QAMDemapper(method, qm)(y, 0.05)
    assert torch.allclose(scalar, Demapper(method, "qam", qm)(y, torch.tensor(0.05)),
                          rtol=1e-5, atol=1e-3)


def test_noiseless_symbols_decide_their_own_labels() -> None:
    bits = torch.randint(0, 2, (1, 8 * 256), generator=torch.Generator().manual_seed(1)).float()
    llr = QAMDemapper("app", 8)(Mapper("qam", 8)(bits), 1e-3)
    assert torch.equal((llr > 0).float(), bits)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="num_bits_per_symbol"):
        QAMDemapper("app", 3)
    with pytest.raises(ValueError, match="method"):
        QAMDemapper("exact", 4)
    with pytest.raises(TypeError, match="complex"):
        QAMDemapper("app", 4)(torch.zeros(8), 0.1)
