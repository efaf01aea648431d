"""CDDMSampler: start state, re-equalization, grouping by SNR, determinism and errors.

A network that predicts zero noise turns the reverse chain into ``x_m / sqrt(ab_m)`` (reference
note §8 check 9), which pins down the start state exactly; the oracle-ε recovery of the chain
itself is tested in test_cddm_schedule.py.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
from torch import nn

import phy
from cddm import CDDMSampler, CDDMSchedule
from cddm.metrics import channel_mse_db

SCHED = CDDMSchedule()


class ZeroNet(nn.Module):
    """Predicts zero noise: the chain then only rescales its start state."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, h_abs: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        assert h_abs.shape == x.shape
        return torch.zeros_like(x)


class CountingNet(ZeroNet):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.steps: list[int] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, h_abs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.steps.append(int(t[0]))
        return super().forward(x, t, h_abs)


def _send(channel: phy.Channel, snr_db: float, shape=(4, 8, 4, 4), seed: int = 0):
    phy.set_seed(seed)
    torch.manual_seed(seed)
    z = torch.randn(*shape)
    r = phy.AnalogLink(channel).send(z, snr_db)
    scale = r.scale.reshape(-1, *([1] * (z.dim() - 1)))
    return z / scale, r.z_hat / scale, r


def test_zero_eps_awgn_official_fingerprint():
    """AWGN, official convention at 10 dB: output = raw y · 1/(sqrt(1+σ²) sqrt(ab_m)) ≈ 1.023 y."""
    _, z_eq, r = _send(phy.AWGN(), 10.0)
    out = CDDMSampler(ZeroNet()).denoise(z_eq, r.h, 10.0)
    no = 0.1
    raw = z_eq * (1 + no)  # the MMSE output undone: W_s = 1/(1+no) on AWGN
    i = SCHED.start_index(10.0)
    gain = 1 / (math.sqrt(1 + no / 2) * math.sqrt(float(SCHED.alpha_bar[i])))
    assert gain == pytest.approx(1.0233, abs=5e-4)
    torch.testing.assert_close(out, raw * gain, rtol=1e-5, atol=1e-6)


def test_zero_eps_consistent_returns_the_equalized_signal():
    """Consistent convention, no design offset, no AWGN identity: the chain returns its input."""
    for ch in (phy.AWGN(), phy.RayleighFading()):
        _, z_eq, r = _send(ch, 13.0)
        s = CDDMSampler(ZeroNet(), convention="consistent", design_snr_offset_db=0.0,
                        awgn_identity=False, floor_db=None)
        torch.testing.assert_close(s.denoise(z_eq, r.h, 13.0), z_eq, rtol=1e-5, atol=1e-6)


def test_design_snr_reequalizes_with_its_own_weights():
    """Rayleigh, design SNR 3 dB above: output = W_s(design) · y/h (consistent, zero ε)."""
    _, z_eq, r = _send(phy.RayleighFading(), 10.0)
    s = CDDMSampler(ZeroNet(), convention="consistent", floor_db=None)
    out = s.denoise(z_eq, r.h, 10.0)
    no_d = 10 ** (-13.0 / 10)
    w_d = (r.h.abs() ** 2 / (r.h.abs() ** 2 + no_d))
    w_t = (r.h.abs() ** 2 / (r.h.abs() ** 2 + 0.1))
    ratio = phy.unpack_complex(torch.complex(w_d / w_t, w_d / w_t), z_eq)
    torch.testing.assert_close(out, z_eq * ratio, rtol=1e-4, atol=1e-6)
    # explicit design SNR equals the offset form
    torch.testing.assert_close(s.denoise(z_eq, r.h, 10.0, design_snr_db=13.0), out)


def test_number_of_network_calls_follows_the_start_step():
    _, z_eq, _ = _send(phy.AWGN(), 15.0, shape=(2, 16))
    for snr, m in ((20.0, 27), (15.0, 52), (13.0, 66), (10.0, 93), (0.0, 93)):
        net = CountingNet()
        CDDMSampler(net).denoise(z_eq, None, snr)
        assert net.calls == m
        assert net.steps == list(range(m - 1, -1, -1))
    net = CountingNet()
    CDDMSampler(net, floor_db=None).denoise(z_eq, None, 5.0)
    assert net.calls == 162


def test_per_example_snr_equals_separate_calls():
    torch.manual_seed(1)
    z_eq = torch.randn(4, 6, 4, 4)
    h = torch.complex(torch.randn(4, 48), torch.randn(4, 48)) / math.sqrt(2)
    snrs = torch.tensor([5.0, 12.0, 5.0, 18.0])
    s = CDDMSampler(ZeroNet(), floor_db=None)
    out = s.denoise(z_eq, h, snrs)
    for k in range(4):
        torch.testing.assert_close(out[k:k + 1], s.denoise(z_eq[k:k + 1], h[k:k + 1],
                                                           float(snrs[k])))


def test_deterministic_bitwise_and_net_mode_restored():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5))

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f = net

        def forward(self, x, t, h_abs):
            return self.f(x) * 1e-2

    w = Wrap().train()
    s = CDDMSampler(w)
    z_eq = torch.randn(3, 16)
    a = s.denoise(z_eq, None, 12.0)
    b = s.denoise(z_eq, None, 12.0)
    assert torch.equal(a, b)
    assert w.training


def test_channel_mse_db_matches_definition():
    x = torch.zeros(10, 4)
    x_hat = torch.full((10, 4), 0.1)
    assert channel_mse_db(x_hat, x) == pytest.approx(10 * math.log10(2 * 0.01))


def test_bad_inputs_raise_clear_errors():
    s = CDDMSampler(ZeroNet())
    z = torch.randn(2, 8)
    with pytest.raises(ValueError, match="h must be complex"):
        s.denoise(z, torch.ones(2, 3, dtype=torch.complex64), 10.0)
    with pytest.raises(ValueError, match="outside the schedule's range"):
        s.denoise(z, None, 60.0)
    with pytest.raises(ValueError, match="snr_db must be finite"):
        s.denoise(z, None, float("nan"))
    with pytest.raises(ValueError, match="one value per example"):
        s.denoise(z, None, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="z_eq must be a real tensor"):
        s.denoise(torch.ones(8), None, 10.0)
    with pytest.raises(ValueError, match="convention"):
        CDDMSampler(ZeroNet(), convention="paper")

    class Shaped(ZeroNet):
        latent_shape = (4, 2)
        config: ClassVar[dict] = {"T": 1000}

    with pytest.raises(ValueError, match="built for latents of shape"):
        CDDMSampler(Shaped()).denoise(torch.randn(2, 8), None, 10.0)

    class OtherT(ZeroNet):
        config: ClassVar[dict] = {"T": 500}

    with pytest.raises(ValueError, match="T=500"):
        CDDMSampler(OtherT())
