"""CDDM schedule and sampler maths against their definitions (reference checks 6-10)."""

from __future__ import annotations

import math

import pytest
import torch

from cddm import CDDMSchedule


@pytest.fixture(scope="module")
def sched() -> CDDMSchedule:
    return CDDMSchedule(T=1000)


def test_linear_schedule_values(sched: CDDMSchedule) -> None:
    assert torch.allclose(sched.betas[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64))
    assert float(sched.alpha_bar[0]) == pytest.approx(0.9999, abs=1e-12)
    expected = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    assert torch.allclose(sched.alpha_bar, expected, rtol=0, atol=1e-15)
    assert float(sched.snr_db[0]) == pytest.approx(40.0, abs=0.01)
    assert float(sched.snr_db[-1]) == pytest.approx(-43.9, abs=0.05)
    assert bool((sched.snr_db[1:] < sched.snr_db[:-1]).all())


@pytest.mark.parametrize(("snr_db", "m"), [(20, 27), (15, 52), (13, 66), (10, 93), (5, 93),
                                           (0, 93)])
def test_official_start_steps_with_floor(sched: CDDMSchedule, snr_db: float, m: int) -> None:
    assert sched.start_step(snr_db) == m


def test_start_steps_without_floor_and_consistent(sched: CDDMSchedule) -> None:
    assert sched.start_step(5, floor_db=None) == 162
    assert sched.start_step(0, floor_db=None) == 259
    consistent = [sched.start_step(s, "consistent", floor_db=None) for s in (0, 5, 10, 13, 15,
                                                                           20, 25)]
    assert consistent == [197, 117, 66, 46, 35, 18, 9]
    ms = [sched.start_step(s / 2, floor_db=None) for s in range(-20, 61)]
    assert ms == sorted(ms, reverse=True)


def test_oracle_eps_recovers_x0(sched: CDDMSchedule) -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 8, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    w_s = torch.rand(x0.shape, generator=g, dtype=torch.float64)
    w_n = torch.rand(x0.shape, generator=g, dtype=torch.float64) + 0.1
    i = sched.start_index(10.0)
    x_m = sched.q_sample(x0, eps, i, w_s, w_n)
    x0_hat = sched.run_reverse(x_m, i, lambda x, k: eps, w_n)
    rel = float((x0_hat - w_s * x0).norm() / (w_s * x0).norm())
    assert rel < 1e-5


def test_zero_eps_fingerprint_of_the_official_convention(sched: CDDMSchedule) -> None:
    """With eps = 0 the output is x_m / sqrt(ab_m): at 10 dB the equalized signal x ~1.023."""
    i = sched.start_index(10.0)
    ab = float(sched.alpha_bar[i])
    y = torch.randn(2, 64, dtype=torch.float64)
    x_m = y * CDDMSchedule.received_scale(10.0, "official", ab)
    out = sched.run_reverse(x_m, i, lambda x, k: torch.zeros_like(x))
    gain = float((out / y).mean())
    assert gain == pytest.approx(1 / (math.sqrt(1.05) * math.sqrt(ab)), rel=1e-9)
    assert gain == pytest.approx(1.023, abs=2e-3)
    # the consistent convention is exactly unbiased for eps = 0
    ic = sched.start_index(10.0, "consistent")
    abc = float(sched.alpha_bar[ic])
    out_c = sched.run_reverse(y * CDDMSchedule.received_scale(10.0, "consistent", abc), ic,
                              lambda x, k: torch.zeros_like(x))
    assert torch.allclose(out_c, y, rtol=1e-12)


def test_forward_marginal_statistics(sched: CDDMSchedule) -> None:
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((200_000,), 0.5, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = 300
    xt = sched.q_sample(x0, eps, t, 1.0, 2.0)
    ab = float(sched.alpha_bar[t])
    assert float(xt.mean()) == pytest.approx(math.sqrt(ab) * 0.5, abs=0.01)
    assert float(xt.var()) == pytest.approx((1 - ab) * 4.0, rel=0.01)


def test_deterministic_and_errors(sched: CDDMSchedule) -> None:
    x = torch.randn(3, 5)

    def fn(z, k):
        return torch.tanh(z) * 0.1

    assert torch.equal(sched.run_reverse(x, 50, fn), sched.run_reverse(x, 50, fn))
    with pytest.raises(ValueError, match="outside the schedule's range"):
        sched.start_step(60.0)
    with pytest.raises(ValueError, match="convention"):
        sched.start_step(10.0, "paper")
    with pytest.raises(ValueError, match="t must lie"):
        sched.q_sample(x, x, 1000)
    with pytest.raises(ValueError, match="one shape"):
        sched.q_sample(x, x[:, :2], 5)
    with pytest.raises(ValueError, match="kind"):
        CDDMSchedule(kind="sigmoid")
    cos = CDDMSchedule(kind="cosine")
    assert bool((cos.alpha_bar[1:] < cos.alpha_bar[:-1]).all())
