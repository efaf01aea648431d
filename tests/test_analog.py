"""AnalogLink: power constraint, packing, noise-variance bookkeeping, gradients."""

from __future__ import annotations

import pytest
import torch

import phy


class RecordingAWGN(phy.AWGN):
    """The real AWGN channel, keeping the last transmitted symbols for inspection."""

    def propagate(self, x, no):
        self.last_x = x.detach().clone()
        return super().propagate(x, no)


def test_unit_power_per_sample() -> None:
    ch = RecordingAWGN()
    link = phy.AnalogLink(ch, power_norm="sample")
    z = torch.randn(16, 8, 4, 4) * torch.linspace(0.01, 100, 16)[:, None, None, None]
    link.send(z, 10.0)
    power = ch.last_x.abs().square().mean(dim=1)
    assert torch.allclose(power, torch.ones(16), atol=1e-5)


def test_unit_power_per_batch() -> None:
    ch = RecordingAWGN()
    link = phy.AnalogLink(ch, power_norm="batch")
    z = torch.randn(16, 3, 7) * torch.linspace(0.1, 10, 16)[:, None, None]  # odd D: padded
    r = link.send(z, 10.0)
    assert r.channel_uses == 11
    assert abs(float(ch.last_x.abs().square().mean()) - 1.0) < 1e-5
    assert torch.all(r.scale == r.scale[0])


def test_packing_round_trip() -> None:
    z = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5)
    s = phy.pack_complex(z)
    assert s.shape == (2, 8)
    assert s[0, 0] == complex(0, 1) and s[0, 7] == complex(14, 0)
    assert torch.equal(phy.unpack_complex(s, z), z)


@pytest.mark.parametrize("channel", [phy.AWGN(), phy.RayleighFading(coherence="symbol"),
                                     phy.RayleighFading(coherence=64)])
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_noise_var_matches_measured_error(channel, snr_db: float) -> None:
    z = torch.randn(256, 2048) * 2.0 + 0.5
    r = phy.AnalogLink(channel).send(z, snr_db)
    measured = float((r.z_hat - z).square().mean())
    predicted = float(r.noise_var.mean())
    assert abs(measured - predicted) / predicted < 0.03, (measured, predicted)
    assert r.z_hat.shape == z.shape and r.noise_var.shape == z.shape
    assert r.h.shape == (256, 1024)


def test_high_snr_is_transparent() -> None:
    z = torch.randn(4, 10)
    r = phy.AnalogLink(phy.AWGN()).send(z, 90.0)
    assert torch.allclose(r.z_hat, z, atol=1e-3)


def test_gradient_flows() -> None:
    z = torch.randn(4, 32, requires_grad=True)
    r = phy.AnalogLink(phy.RayleighFading()).send(z, 5.0)
    r.z_hat.square().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_zero_example_is_sent_as_silence() -> None:
    z = torch.zeros(2, 8)
    z[1] = 1.0
    r = phy.AnalogLink(phy.AWGN()).send(z, 10.0)
    assert torch.isfinite(r.z_hat).all() and torch.isfinite(r.noise_var).all()


def test_bad_input() -> None:
    link = phy.AnalogLink(phy.AWGN())
    with pytest.raises(ValueError, match="z must be a real"):
        link.send(torch.ones(2, 4, dtype=torch.complex64), 10.0)
    with pytest.raises(ValueError, match="NaN"):
        link.send(torch.tensor([[1.0, float("inf")]]), 10.0)
    with pytest.raises(ValueError, match="batch axis"):
        link.send(torch.ones(4), 10.0)
    with pytest.raises(ValueError, match="must not be empty"):
        link.send(torch.ones(2, 0), 10.0)
    with pytest.raises(ValueError, match="snr_db must lie"):
        link.send(torch.ones(2, 4), -100.0)
    with pytest.raises(ValueError, match="power_norm"):
        phy.AnalogLink(phy.AWGN(), power_norm="image")
