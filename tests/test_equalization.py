"""MMSE/ZF equalizers: error against theory and against Sionna's LMMSE equalizer."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import exp1
from sionna.phy.mapping import BinarySource, Mapper
from sionna.phy.mimo import lmmse_equalizer

import phy


@pytest.mark.parametrize(("snr_db", "published"), [(0.0, 0.596), (10.0, 0.2015), (20.0, 0.0408)])
def test_rayleigh_mmse_error_matches_theory(snr_db: float, published: float) -> None:
    """E|x_hat - x|^2 = s e^s E1(s), s = 10^(-SNR/10), per-symbol Rayleigh + MMSE (2 % tol)."""
    s2 = 10 ** (-snr_db / 10)
    theory = s2 * math.exp(s2) * exp1(s2)
    assert abs(theory - published) / published < 2e-3
    x = Mapper("qam", 2)(BinarySource()([2000, 2000]))  # 2e6 QPSK symbols, unit energy
    out = phy.RayleighFading(coherence="symbol")(x, snr_db)
    x_hat, no_eff = phy.mmse_equalize(out.y, out.h, out.no)
    mse = float((x_hat - x).abs().square().mean())
    assert abs(mse - theory) / theory < 0.02, (mse, theory)
    # the reported effective noise variance is the conditional MSE: same mean
    assert abs(float(no_eff.mean()) - theory) / theory < 0.02


def test_mmse_and_zf_agree_with_sionna_lmmse() -> None:
    x = Mapper("qam", 4)(BinarySource()([64, 1024]))  # [64, 256] symbols
    out = phy.RayleighFading()(x, 7.0)
    # Sionna's generic LMMSE equalizer on 1x1 systems returns the unbiased estimate.
    s = out.no * torch.ones(64, 256, 1, 1)
    x_unb, no_unb = lmmse_equalizer(out.y[..., None], out.h[..., None, None], s)
    x_zf, no_zf = phy.zf_equalize(out.y, out.h, out.no)
    assert torch.allclose(x_zf, x_unb[..., 0], rtol=1e-4, atol=1e-5)
    assert torch.allclose(no_zf, no_unb[..., 0], rtol=1e-4)
    # biased MMSE = unbiased estimate shrunk by 1 / (1 + no_unb); MSE = no_unb / (1 + no_unb)
    x_mmse, no_mmse = phy.mmse_equalize(out.y, out.h, out.no)
    assert torch.allclose(x_mmse, x_unb[..., 0] / (1 + no_unb[..., 0]), rtol=1e-4, atol=1e-5)
    assert torch.allclose(no_mmse, no_unb[..., 0] / (1 + no_unb[..., 0]), rtol=1e-4)


def test_awgn_mmse_shrinkage() -> None:
    y = torch.tensor([1.0 + 1.0j])
    h = torch.ones(1, dtype=torch.complex64)
    x_hat, no_eff = phy.mmse_equalize(y, h, 1.0)
    assert torch.allclose(x_hat, y / 2)
    assert float(no_eff) == pytest.approx(0.5)


def test_deep_fade_is_finite() -> None:
    y = torch.tensor([0.1 + 0.0j, 1.0 + 0.0j])
    h = torch.tensor([0.0 + 0.0j, 1.0 + 0.0j])
    x_mmse, no_mmse = phy.mmse_equalize(y, h, 0.1)
    x_zf, no_zf = phy.zf_equalize(y, h, 0.1)
    for t in (x_mmse, no_mmse, x_zf, no_zf):
        assert torch.isfinite(t).all()
    assert float(no_mmse[0]) == pytest.approx(1.0)
    assert float(x_mmse[0].abs()) == 0.0


def test_equalizer_bad_input() -> None:
    y = torch.ones(4, dtype=torch.complex64)
    with pytest.raises(ValueError, match="y must be a complex"):
        phy.mmse_equalize(torch.ones(4), y, 0.1)
    with pytest.raises(ValueError, match="h of shape"):
        phy.zf_equalize(y, torch.ones(3, dtype=torch.complex64), 0.1)
    with pytest.raises(ValueError, match="no must be"):
        phy.mmse_equalize(y, y, -1.0)
