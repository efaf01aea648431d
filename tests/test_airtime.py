"""Airtime, capacity and MCS rates."""

from __future__ import annotations

import math

import pytest
import torch

from phy.airtime import (
    airtime_s,
    bits_airtime_s,
    capacity_bits_per_use,
    capacity_bps,
    channel_uses_for_bits,
    mcs_rate_bps,
)
from phy.mcs import MCS


def test_airtime_exact_numbers():
    assert airtime_s(1_000_000, 1e6) == 1.0
    assert airtime_s(1_000_000, 1e6, overhead=0.25) == pytest.approx(4 / 3, rel=1e-15)
    assert airtime_s(0, 20e6) == 0.0
    assert airtime_s(14 * 12, 180e3) == pytest.approx(14 * 12 / 180e3)
    assert isinstance(airtime_s(10, 1e6), float)


def test_airtime_tensor_broadcast():
    uses = torch.tensor([[1e6], [2e6]])  # [2, 1]
    bw = torch.tensor([1e6, 2e6, 4e6])  # [3]
    t = airtime_s(uses, bw, overhead=0.5)
    assert t.shape == (2, 3) and t.dtype == torch.float32
    expected = torch.tensor([[2.0, 1.0, 0.5], [4.0, 2.0, 1.0]])
    torch.testing.assert_close(t, expected)
    ti = airtime_s(torch.tensor([1_000_000, 3_000_000]), 1e6)  # integer tensor -> float64
    assert ti.dtype == torch.float64
    torch.testing.assert_close(ti, torch.tensor([1.0, 3.0], dtype=torch.float64))
    to = airtime_s(1e6, 1e6, overhead=torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(to, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize(("args", "match"), [
    ((-1, 1e6), r"channel_uses must be finite and >= 0, got -1"),
    ((10, 0.0), r"bandwidth_hz must be finite and > 0 Hz, got 0.0"),
    ((10, -5e6), r"bandwidth_hz must be finite and > 0 Hz"),
    ((10, math.inf), r"bandwidth_hz must be finite"),
    ((math.nan, 1e6), r"channel_uses must be finite"),
    ((10, 1e6, 1.0), r"overhead must be finite and in \[0, 1\)"),
    ((10, 1e6, -0.1), r"overhead must be finite and in \[0, 1\)"),
    ((torch.tensor([1.0, -2.0]), 1e6), r"channel_uses .* values in \[-2, 1\]"),
    ((10, torch.tensor([1e6, 0.0])), r"bandwidth_hz must be finite and > 0 Hz"),
    ((torch.tensor([1.0 + 1j]), 1e6), r"channel_uses must be real"),
    ((torch.tensor([]), 1e6), r"channel_uses must not be empty"),
])
def test_airtime_errors(args, match):
    with pytest.raises(ValueError, match=match):
        airtime_s(*args)


def test_airtime_type_errors():
    with pytest.raises(TypeError, match="channel_uses"):
        airtime_s("10", 1e6)
    with pytest.raises(TypeError, match="bandwidth_hz"):
        airtime_s(10, True)


def test_capacity():
    assert capacity_bits_per_use(0.0) == pytest.approx(1.0, rel=1e-12)
    assert capacity_bps(1e6, 0.0) == pytest.approx(1e6, rel=1e-12)
    snr20 = 10 ** 2.0
    assert capacity_bps(20e6, 20.0) == pytest.approx(20e6 * math.log2(1 + snr20), rel=1e-12)
    assert capacity_bits_per_use(-200.0) == pytest.approx(1e-20 / math.log(2), rel=1e-9)
    assert capacity_bits_per_use(3000.0) == pytest.approx(300 * math.log2(10), rel=1e-12)
    c = capacity_bits_per_use(torch.tensor([0.0, 10.0 * math.log10(3.0), 3000.0],
                                           dtype=torch.float64))
    torch.testing.assert_close(
        c, torch.tensor([1.0, 2.0, 300 * math.log2(10)], dtype=torch.float64))
    cb = capacity_bps(torch.tensor([1e6, 2e6]), torch.tensor([[0.0], [10 * math.log10(3)]]))
    assert cb.shape == (2, 2)
    torch.testing.assert_close(cb, torch.tensor([[1e6, 2e6], [2e6, 4e6]]))
    with pytest.raises(ValueError, match="snr_db must be finite"):
        capacity_bits_per_use(math.nan)
    with pytest.raises(ValueError, match="bandwidth_hz must be finite and > 0 Hz"):
        capacity_bps(0.0, 10.0)


def test_mcs_rate():
    qpsk_half = MCS.custom(2, 0.5)
    assert mcs_rate_bps(qpsk_half, 1e6) == 1e6
    assert mcs_rate_bps(qpsk_half, 1e6, overhead=0.25) == 0.75e6
    m = MCS.from_index(27, "qam256")  # 256QAM, R = 948/1024
    assert mcs_rate_bps(m, 100e6) == pytest.approx(8 * 948 / 1024 * 100e6, rel=1e-15)
    r = mcs_rate_bps(qpsk_half, torch.tensor([1e6, 2e6]))
    torch.testing.assert_close(r, torch.tensor([1e6, 2e6]))
    with pytest.raises(TypeError, match=r"mcs must be a phy\.MCS"):
        mcs_rate_bps(2, 1e6)
    with pytest.raises(ValueError, match=r"overhead must be finite and in \[0, 1\)"):
        mcs_rate_bps(qpsk_half, 1e6, overhead=1.5)


def test_channel_uses_and_bits_airtime():
    qpsk_half = MCS.custom(2, 0.5)
    assert channel_uses_for_bits(1000, qpsk_half) == 1000
    assert channel_uses_for_bits(1001, qpsk_half) == 1001
    assert channel_uses_for_bits(0, qpsk_half) == 0
    # rate 1/3 QPSK: 2/3 bit per use; float 1/3 must not round 150 up to 151
    assert channel_uses_for_bits(100, MCS.custom(2, 1 / 3)) == 150
    # 16QAM R=340/1024: 1.328125 bit per use -> ceil(1000 / 1.328125) = 753
    assert channel_uses_for_bits(1000, MCS.from_index(10)) == math.ceil(1000 * 1024 / 1360)
    # whole blocks: 2500 bits in blocks of 1000 -> 3 blocks of 1000 uses (QPSK 1/2)
    assert channel_uses_for_bits(2500, qpsk_half, block_bits=1000) == 3000
    assert channel_uses_for_bits(3, MCS.custom(4, 0.5), block_bits=3) == 2  # ceil(3/2)
    t = channel_uses_for_bits(torch.tensor([0, 1, 1000, 2500]), qpsk_half, block_bits=1000)
    assert t.dtype == torch.int64 and t.tolist() == [0, 1000, 1000, 3000]
    assert bits_airtime_s(1_000_000, qpsk_half, 1e6) == 1.0
    assert bits_airtime_s(1_000_000, qpsk_half, 1e6, overhead=0.25) == pytest.approx(4 / 3)
    assert bits_airtime_s(2500, qpsk_half, 1e3, block_bits=1000) == 3.0
    bt = bits_airtime_s(torch.tensor([1000, 2000]), qpsk_half, 1e3)
    torch.testing.assert_close(bt, torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="num_bits must be >= 0"):
        channel_uses_for_bits(-1, qpsk_half)
    with pytest.raises(ValueError, match="whole number of bits"):
        channel_uses_for_bits(10.5, qpsk_half)
    with pytest.raises(ValueError, match="block_bits must be None or an int >= 1"):
        channel_uses_for_bits(10, qpsk_half, block_bits=0)
    with pytest.raises(ValueError, match="num_bits must be >= 0"):
        bits_airtime_s(torch.tensor([5, -1]), qpsk_half, 1e6)


def test_ergodic_rayleigh_capacity() -> None:
    """Below AWGN capacity at every SNR (Jensen), continuous where the low-SNR series takes
    over (1e-5), and SNR / ln 2 at very low SNR."""
    import math

    from phy import capacity_bits_per_use
    from phy import ergodic_rayleigh_capacity_bits_per_use as erg

    for s in (-20.0, 0.0, 10.0, 30.0):
        assert erg(s) < capacity_bits_per_use(s)
    x = 10 * math.log10(1 / 50.0)
    assert erg(x - 1e-9) == pytest.approx(erg(x + 1e-9), rel=1e-5)
    assert erg(-60.0) == pytest.approx(1e-6 / math.log(2.0), rel=1e-5)
