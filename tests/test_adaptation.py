"""phy.adaptation: vectorized MCS choice against the scalar rule, expected cost against the
plan, and the Chase-HARQ expectation against the decoded link."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import phy
from phy.adaptation import LinkAdaptation


def test_vectorized_choice_equals_scalar_selection_on_the_grid() -> None:
    la = LinkAdaptation("awgn", "qam256", target_bler=0.05, max_transmissions=2)
    g = torch.Generator().manual_seed(0)
    snr = torch.rand(300, generator=g, dtype=torch.float64) * 50 - 15
    idx = la.mcs_index(snr)
    on_grid = torch.floor((snr + 40.0) / 0.01 + 1e-6) * 0.01 - 40.0  # rounded down
    for s, i in zip(on_grid.tolist(), idx.tolist(), strict=True):
        mcs, meets = la.select(s)
        assert la.candidates[i] == mcs
        assert bool(la.meets_target(torch.tensor([s], dtype=torch.float64))[0]) == meets
    # never decreases with the SNR
    order = torch.argsort(snr)
    se = torch.tensor([la.candidates[i].spectral_efficiency for i in idx[order].tolist()])
    assert bool((se[1:] >= se[:-1]).all())


@pytest.mark.parametrize("snr_db", [-8.0, 0.0, 7.5, 21.3])
def test_expected_channel_uses_is_blocks_times_plan(snr_db: float) -> None:
    la = LinkAdaptation("awgn", max_transmissions=4)
    p = la.plan(snr_db)
    bits = 5000
    expected = math.ceil(bits / la.block_bits) * p.channel_uses_per_block \
        * p.expected_transmissions
    assert float(la.expected_channel_uses(bits, snr_db)) == pytest.approx(expected, rel=1e-9)
    t = la.expected_airtime_s(torch.tensor([bits, 0]), snr_db, 20e6)
    assert float(t[0]) == pytest.approx(expected / 20e6) and float(t[1]) == 0.0
    assert math.isinf(float(la.expected_airtime_s(bits, snr_db, 0.0)))


def test_chase_expectation_matches_the_decoded_link() -> None:
    """Mean transmissions of DigitalLink with Chase HARQ at a waterfall SNR of the first
    transmission agree with 1 + sum_t BLER(SNR + 10 log10 t): 600 blocks, 4 sigma plus the
    table's interpolation error (0.05 transmissions)."""
    phy.set_seed(5)
    la = LinkAdaptation("awgn", max_transmissions=3)
    mcs = phy.MCS.from_index(14)  # 16QAM, R = 0.54
    grid = np.arange(0.0, 10.0, 0.05)
    snr = float(grid[np.argmin(np.abs(np.asarray(la.bler(mcs, grid)) - 0.6))])
    expected, residual = la.expected_transmissions(mcs, snr)
    link = phy.DigitalLink(phy.AWGN(), mcs, block_bits=la.block_bits, max_transmissions=3)
    r = link.send_bits(torch.randint(0, 2, (600, la.block_bits)).float(), snr)
    mean = float(r.transmissions.float().mean())
    sd = float(r.transmissions.float().std()) / math.sqrt(600)
    assert abs(mean - float(expected)) <= 4 * sd + 0.05, (mean, float(expected))
    assert r.bler <= float(residual) + 0.02


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="target_bler"):
        LinkAdaptation(target_bler=1.5)
    with pytest.raises(ValueError, match="max_transmissions"):
        LinkAdaptation(max_transmissions=0)
    with pytest.raises(ValueError, match="channel 'tdl'"):
        LinkAdaptation("tdl")
    with pytest.raises(ValueError, match="block_bits"):
        LinkAdaptation(block_bits=9000)
    with pytest.raises(ValueError, match="snr_grid_db"):
        LinkAdaptation(snr_grid_db=(10.0, 0.0, 0.1))


@pytest.mark.parametrize("channel,table", [("awgn", "qam64"), ("rayleigh", "qam256")])
def test_threshold_selection_equals_select_mcs(channel: str, table: str) -> None:
    """LinkAdaptation.select (per-MCS SNR thresholds) picks what select_mcs (a BLER lookup of
    every MCS) picks: at random SNRs and right at every threshold, within and outside the
    bisection tolerance; asked again (the remembered choices), the same."""
    la = LinkAdaptation(channel, table, 0.1, 1024, 2)
    th = [t for t in la._thresholds() if math.isfinite(t)]
    assert len(th) >= 10
    snrs = np.concatenate([np.random.default_rng(1).uniform(-12, 40, 400),
                           [t + d for t in th for d in (-2e-3, -5e-4, 0.0, 5e-4, 2e-3)]])
    for s in [*snrs, *snrs[::-1]]:
        want = phy.select_mcs(float(s), 0.1, channel, table, 1024, fallback="lowest")
        mcs, meets = la.select(float(s))
        assert mcs == want, s
        assert meets == (phy.select_mcs(float(s), 0.1, channel, table, 1024) is not None)
