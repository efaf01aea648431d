"""Channels: uncoded BER against closed forms, Rayleigh statistics, input validation."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import erfc
from sionna.phy.mapping import BinarySource, Demapper, Mapper

import phy


def qfunc(x: float) -> float:
    return 0.5 * erfc(x / math.sqrt(2.0))


def ber_qpsk(snr_db: float) -> float:
    """Gray QPSK: Q(sqrt(Es/N0))."""
    return qfunc(math.sqrt(10 ** (snr_db / 10)))


def ber_16qam(snr_db: float) -> float:
    """Gray 16QAM, exact: [3Q(d) + 2Q(3d) - Q(5d)] / 4 with d = sqrt(Es / (5 N0))."""
    d = math.sqrt(10 ** (snr_db / 10) / 5)
    return (3 * qfunc(d) + 2 * qfunc(3 * d) - qfunc(5 * d)) / 4


@pytest.mark.parametrize(("m", "snr_db", "closed_form"), [(2, 9.8, ber_qpsk),
                                                         (4, 16.5, ber_16qam)])
def test_uncoded_ber_awgn_matches_closed_form(m: int, snr_db: float, closed_form) -> None:
    # 4e6 bits at BER ~1e-3 give ~4000 errors: 1.6 % relative standard deviation,
    # so the 5 % tolerance is > 3 sigma.
    num_bits = 4_000_000
    bits = BinarySource()([num_bits // (m * 1000), m * 1000])
    x = Mapper("qam", m)(bits)
    out = phy.AWGN()(x, snr_db)
    llr = Demapper("app", "qam", m)(out.y, out.no)
    ber = float(((llr > 0).float() != bits).float().mean())
    expected = closed_form(snr_db)
    assert 5e-4 < expected < 2e-3
    assert abs(ber - expected) / expected < 0.05, (ber, expected)


def test_awgn_noise_variance_and_h() -> None:
    x = torch.zeros(200, 5000, dtype=torch.complex64)
    out = phy.AWGN()(x, 3.0)
    no = 10 ** (-0.3)
    assert torch.allclose(out.no, torch.tensor(no), rtol=1e-6)
    measured = float(out.y.abs().square().mean())
    assert abs(measured - no) / no < 0.01
    # circular: equal power in I and Q
    assert abs(float(out.y.real.square().mean()) - no / 2) / (no / 2) < 0.01
    assert torch.all(out.h == 1)


def test_per_example_snr() -> None:
    snr = torch.tensor([0.0, 10.0, 20.0])
    x = torch.zeros(3, 100_000, dtype=torch.complex64)
    out = phy.AWGN()(x, snr)
    assert out.no.shape == (3, 1)
    power = out.y.abs().square().mean(dim=1)
    expected = 10 ** (-snr / 10)
    assert torch.allclose(power, expected, rtol=0.02)


@pytest.mark.parametrize("coherence", ["symbol", 7, "frame"])
def test_rayleigh_gain_statistics(coherence) -> None:
    ch = phy.RayleighFading(coherence=coherence)
    x = torch.ones(4000, 50, dtype=torch.complex64)
    out = ch(x, 100.0)
    g = out.h.abs().square()
    # E|h|^2 = 1 and |h|^2 ~ Exp(1): P(|h|^2 < 0.1) = 1 - exp(-0.1)
    assert abs(float(g.mean()) - 1.0) < 0.03
    assert abs(float((g < 0.1).float().mean()) - (1 - math.exp(-0.1))) < 0.01
    assert torch.allclose(out.y, out.h * x, atol=1e-4)
    if coherence == 7:
        assert torch.equal(out.h[:, 0:7], out.h[:, 0:1].expand(-1, 7))
        assert not torch.equal(out.h[:, 0], out.h[:, 7])
        assert torch.equal(out.h[:, 49], out.h[:, 49])
    if coherence == "frame":
        assert torch.equal(out.h, out.h[:, :1].expand(-1, 50))
    if coherence == "symbol":
        corr = (out.h[:, 1:] * out.h[:, :-1].conj()).mean().abs()
        assert float(corr) < 0.02


def test_same_seed_same_noise() -> None:
    x = torch.zeros(4, 64, dtype=torch.complex64)
    phy.set_seed(7)
    a = phy.RayleighFading()(x + 1, 5.0).y
    phy.set_seed(7)
    b = phy.RayleighFading()(x + 1, 5.0).y
    assert torch.equal(a, b)


@pytest.mark.parametrize("channel", [phy.AWGN(), phy.RayleighFading()])
def test_bad_input(channel) -> None:
    x = torch.ones(2, 8, dtype=torch.complex64)
    with pytest.raises(ValueError, match="x must be a complex"):
        channel(torch.ones(2, 8), 10.0)
    with pytest.raises(ValueError, match="x must not be empty"):
        channel(torch.ones(2, 0, dtype=torch.complex64), 10.0)
    with pytest.raises(ValueError, match="NaN"):
        channel(torch.full((2, 8), float("nan"), dtype=torch.complex64), 10.0)
    with pytest.raises(ValueError, match="snr_db must be finite"):
        channel(x, float("nan"))
    with pytest.raises(ValueError, match=r"snr_db must lie in \[-60, 100\]"):
        channel(x, 150.0)
    with pytest.raises(ValueError, match="one value per example"):
        channel(x, torch.tensor([1.0, 2.0, 3.0]))


def test_bad_coherence() -> None:
    with pytest.raises(ValueError, match="coherence"):
        phy.RayleighFading(coherence="slow")
    with pytest.raises(ValueError, match="coherence"):
        phy.RayleighFading(coherence=0)


def test_imperfect_csi_adds_the_stated_estimation_error() -> None:
    """x = 1 at 30 dB: y = h + n, so E|h_hat - y|^2 = sigma_h^2 + N0 (1e6 symbols, 2 %)."""
    x = torch.ones(10, 100_000, dtype=torch.complex64)
    for sd in (0.05, 0.1, 0.3):
        phy.set_seed(4)
        out = phy.ImperfectCSI(phy.RayleighFading("symbol"), sd)(x, 30.0)
        err = float((out.h - out.y).abs().square().mean())
        assert err == pytest.approx(sd**2 + 1e-3, rel=0.02)
    phy.set_seed(4)
    exact = phy.ImperfectCSI(phy.RayleighFading("symbol"), 0.0)(x, 30.0)
    phy.set_seed(4)
    inner = phy.RayleighFading("symbol")(x, 30.0)
    assert torch.equal(exact.h, inner.h) and torch.equal(exact.y, inner.y)
    # the equalizer trusts the estimate: the analog link's error grows with sigma_h
    mse = []
    for sd in (0.0, 0.1, 0.3):
        phy.set_seed(5)
        z = torch.randn(16, 4096)
        r = phy.AnalogLink(phy.ImperfectCSI(phy.RayleighFading("symbol"), sd)).send(z, 15.0)
        mse.append(float((r.z_hat - z).square().mean()))
    assert mse[0] < mse[1] < mse[2]
    with pytest.raises(ValueError, match="error_std"):
        phy.ImperfectCSI(phy.AWGN(), -0.1)
    with pytest.raises(ValueError, match="equalizes inside"):
        phy.ImperfectCSI(phy.OFDMTDL(model="A"), 0.1)


def test_snr_per_example_broadcasts_and_checks() -> None:
    """phy.snr_per_example: the one per-example SNR broadcast of the project."""
    import phy

    assert phy.snr_per_example(3.5, 3) == [3.5, 3.5, 3.5]
    assert phy.snr_per_example(torch.tensor([1.0]), 2) == [1.0, 1.0]
    assert phy.snr_per_example([0.0, 10.1], 2) == [0.0, 10.1]  # not rounded to float32
    with pytest.raises(ValueError, match="one value per example"):
        phy.snr_per_example(torch.tensor([1.0, 2.0, 3.0]), 2)
    with pytest.raises(ValueError, match="snr_db must be finite"):
        phy.snr_per_example(float("nan"), 2)
    with pytest.raises(ValueError, match=r"snr_db must lie in \[-60, 100\] dB"):
        phy.snr_per_example(500.0, 2)
    with pytest.raises(TypeError, match="snr_db must be a number"):
        phy.snr_per_example(True, 2)
