"""phy.checks: the fast finiteness and range reductions agree with the element-wise tests."""

from __future__ import annotations

import math

import pytest
import torch

from phy.checks import all_finite, check_bounds, finite_rows, value_range

INF, NAN = math.inf, math.nan

CASES = [
    torch.randn(4, 3),
    torch.tensor([3e38, 3e38, 3e38]),                # finite, but the float32 sum overflows
    torch.tensor([INF, 1.0]),
    torch.tensor([NAN]),
    torch.tensor([INF, -INF]),                        # the sum is NaN
    torch.randn(3, dtype=torch.complex64),
    torch.tensor([1 + 1j * INF]),
    torch.tensor([6e4, 6e4], dtype=torch.bfloat16),
    torch.tensor([6e4, 6e4], dtype=torch.float16),  # sum overflows fp16, values finite
    torch.arange(3),
    torch.tensor([True, False]),
    torch.empty(0),
]


@pytest.mark.parametrize("x", CASES, ids=range(len(CASES)))
def test_all_finite_is_exact(x: torch.Tensor) -> None:
    assert all_finite(x) == bool(torch.isfinite(x).all())


def test_finite_rows_marks_exactly_the_bad_rows() -> None:
    x = torch.randn(5, 7)
    x[1, 3], x[4, 0] = NAN, -INF
    assert finite_rows(x).tolist() == [True, False, True, True, False]
    assert finite_rows(torch.randn(3, 2)).tolist() == [True, True, True]


def test_value_range_and_nan() -> None:
    assert value_range(torch.tensor([2.0, -1.0, 5.0])) == (-1.0, 5.0)
    lo, hi = value_range(torch.tensor([1.0, NAN]))
    assert math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match=r"bandwidth_hz .*contains NaN/Inf"):
        check_bounds("bandwidth_hz", torch.tensor([1.0, NAN]), low=0.0, low_inclusive=False,
                     allowed="> 0 Hz")
    with pytest.raises(ValueError, match=r"x must be finite and >= 0, got .*\[-1, 2\]"):
        check_bounds("x", torch.tensor([-1.0, 2.0]), low=0.0, low_inclusive=True,
                     allowed=">= 0")


def test_checks_of_tensors_that_require_grad_are_silent() -> None:
    """Links check training tensors that require grad: no warning, the graph untouched."""
    import warnings

    x = torch.randn(4, 8, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all_finite(x) and all_finite(x * 2)
        assert value_range(x * 2)[0] <= value_range(x * 2)[1]
        assert finite_rows(x).all()


def test_memo_computes_each_key_once_and_stays_bounded() -> None:
    from phy.memo import Memo

    calls: list[int] = []
    memo: Memo[int] = Memo(maxsize=3)
    for key in (1, 2, 1, 3, 2, 1):
        assert memo.get(key, lambda k=key: calls.append(k) or 10 * k) == 10 * key
    assert calls == [1, 2, 3] and len(memo) == 3
    assert memo.get(4, lambda: 40) == 40 and len(memo) == 1  # full: emptied, then 4 kept
    with pytest.raises(ValueError, match="maxsize must be an int >= 1"):
        Memo(0)
