"""Link adaptation from BLER curves: MCS choice, expected transmissions, expected airtime.

* :func:`select_mcs`: at one SNR, the MCS with the highest spectral efficiency whose BLER
  (:mod:`phy.bler`) meets a target.
* :class:`LinkAdaptation`: the same choice for a fixed (channel, table, target, block size,
  HARQ) configuration, with its expected cost, scalar (:meth:`LinkAdaptation.plan`) or
  vectorized over SNRs (:meth:`LinkAdaptation.expected_channel_uses`), as planners and
  schedulers need it.

HARQ expectation (Chase combining): ``t`` received copies of a code block combine like one copy
at ``t`` times the SNR (exact on AWGN, where the LLRs add), so the probability that a block still
fails after ``t`` transmissions is ``BLER(SNR + 10 log10 t)``; the expected number of
transmissions of a block is ``1 + sum_{t=1}^{M-1} BLER(SNR + 10 log10 t)`` and its residual BLER
``BLER(SNR + 10 log10 M)`` for at most ``M`` transmissions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .bler import BlerTable, _check_snr, _resolve_table
from .checks import check_bounds, check_choice, check_number, check_positive_int
from .codeblock import DEFAULT_BLOCK_BITS, channel_uses_per_block, check_block_bits
from .mcs import MCS, _check_table_name, mcs_table
from .memo import Memo

__all__ = ["LinkAdaptation", "LinkPlan", "select_mcs"]

_F64 = torch.float64


def _candidates(bt: BlerTable, channel: str, table: str,
                block_bits: int | None) -> list[MCS]:
    _check_table_name(table)
    bt._check_channel(channel)
    if table not in bt.tables(channel):
        raise ValueError(
            f"no BLER curve for table {table!r} on channel {channel!r} in {bt._where()}; "
            f"tables available for that channel: {bt.tables(channel)}"
        )
    found = [m for m in mcs_table(table) if bt.has_curve(m, channel)]
    if not found:  # pragma: no cover - tables() lists only tables with curves
        raise ValueError(f"no BLER curve for table {table!r} on channel {channel!r} with "
                         f"block_bits={block_bits!r} in {bt._where()}")
    return found


def _best(candidates: list[MCS], bt: BlerTable, snr_db: float, target_bler: float,
          channel: str, block_bits: int | None) -> MCS | None:
    best: MCS | None = None
    for m in candidates:
        if bt.bler_at(m, snr_db, channel, block_bits) <= target_bler and (
                best is None or m.spectral_efficiency > best.spectral_efficiency):
            best = m
    return best


#: Bisection tolerance of the per-MCS SNR thresholds of :meth:`LinkAdaptation.select` (dB).
_THRESHOLD_TOL_DB = 1e-3


def _most_robust(candidates: list[MCS]) -> MCS:
    return min(candidates, key=lambda m: (m.spectral_efficiency, m.index))


def select_mcs(snr_db: float | torch.Tensor, target_bler: float = 0.1, channel: str = "awgn",
               table: str = "qam64", block_bits: int | None = None, *,
               fallback: Literal["none", "lowest"] = "none",
               bler_table: BlerTable | None = None,
               path: str | os.PathLike | None = None) -> MCS | None:
    """Link adaptation: the highest-spectral-efficiency MCS of ``table`` meeting ``target_bler``.

    Among the MCSs of ``table`` that have a BLER curve for ``channel`` (MCSs that were not
    simulated are skipped), returns the one with the highest :attr:`MCS.spectral_efficiency`
    whose BLER at ``snr_db`` is ``<= target_bler`` (ties: lower index). The choice never
    decreases as ``snr_db`` grows.

    Args:
        snr_db: :math:`E_s/N_0` in dB, a finite scalar.
        target_bler: BLER target in (0, 1).
        channel: channel name as written in the BLER table (e.g. ``"awgn"``).
        table: ``"qam64"`` or ``"qam256"``.
        block_bits: information bits per code block (``None``: the table's only size, or
            ``DEFAULT_BLOCK_BITS``); between simulated sizes the BLER is interpolated.
        fallback: ``"none"`` returns ``None`` when no MCS qualifies; ``"lowest"`` returns the
            lowest-spectral-efficiency simulated MCS instead (the transmission will likely fail).
        bler_table, path: where the curves come from (see :func:`phy.bler_at`).

    Returns:
        The chosen :class:`MCS`, or ``None`` if no MCS meets the target and ``fallback="none"``.
    """
    s = _check_snr("snr_db", snr_db)
    if s.ndim != 0 and s.size != 1:
        raise ValueError(f"snr_db must be a scalar, got shape {s.shape}")
    target = check_number("target_bler", target_bler, low=0.0, high=1.0, low_open=True,
                          high_open=True)
    check_choice("fallback", fallback, ("none", "lowest"))
    bt = _resolve_table(bler_table, path)
    candidates = _candidates(bt, channel, table, block_bits)
    best = _best(candidates, bt, float(s.reshape(())), target, channel, block_bits)
    if best is None and fallback == "lowest":
        best = _most_robust(candidates)
    return best


@dataclass(frozen=True)
class LinkPlan:
    """What link adaptation expects at one SNR.

    Attributes:
        snr_db: the SNR (Es/N0, dB).
        mcs: the chosen MCS (the most robust one where none meets the target).
        meets_target: the BLER of ``mcs`` at ``snr_db`` is <= the target (False: fallback).
        bler: BLER of one transmission of a code block.
        expected_transmissions: expected transmissions per code block (Chase model).
        residual_bler: probability that a block is still lost after every transmission.
        channel_uses_per_block: complex channel uses of one transmission of one block.
    """

    snr_db: float
    mcs: MCS
    meets_target: bool
    bler: float
    expected_transmissions: float
    residual_bler: float
    channel_uses_per_block: int


class LinkAdaptation:
    """MCS choice and expected cost for one link configuration, scalar or vectorized.

    Args:
        channel: channel name of the BLER curves (``"awgn"``, ``"rayleigh"``).
        table: ``"qam64"`` or ``"qam256"``.
        target_bler: BLER target of one transmission, in (0, 1).
        block_bits: information bits per code block.
        max_transmissions: Chase-HARQ transmissions per block (1: none), 1..16.
        bler_table: the curves (default: the shipped table).
        snr_grid_db: ``(low, high, step)`` of the grid on which the vectorized methods
            evaluate the choice (SNRs are rounded down onto it, so they err on the slow side).
    """

    def __init__(self, channel: str = "awgn", table: str = "qam64", target_bler: float = 0.1,
                 block_bits: int = DEFAULT_BLOCK_BITS, max_transmissions: int = 1, *,
                 bler_table: BlerTable | None = None,
                 snr_grid_db: tuple[float, float, float] = (-40.0, 80.0, 0.01)) -> None:
        self.channel = channel
        self.table = table
        self.target_bler = check_number("target_bler", target_bler, low=0.0, high=1.0,
                                        low_open=True, high_open=True)
        self.block_bits = check_block_bits("block_bits", block_bits)
        self.max_transmissions = check_positive_int("max_transmissions", max_transmissions,
                                                    minimum=1, maximum=16)
        self.bler_table = _resolve_table(bler_table, None)
        self.candidates = _candidates(self.bler_table, channel, table, block_bits)
        lo, hi, step = (float(v) for v in snr_grid_db)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and step > 0):
            raise ValueError(f"snr_grid_db must be (low, high, step) with low < high and "
                             f"step > 0 dB, got {snr_grid_db!r}")
        self._grid_spec = (lo, hi, step)
        self._grid: dict[str, torch.Tensor] | None = None
        self._threshold_db: list[float] | None = None
        self._selected: Memo[tuple[MCS, bool]] = Memo()  # choices at SNRs seen (phy.memo)

    def __repr__(self) -> str:
        return (f"LinkAdaptation(channel={self.channel!r}, table={self.table!r}, target_bler="
                f"{self.target_bler:g}, block_bits={self.block_bits}, max_transmissions="
                f"{self.max_transmissions})")

    # ---- scalar ---------------------------------------------------------------------------
    def bler(self, mcs: MCS, snr_db: float | np.ndarray) -> float | np.ndarray:
        """BLER of one transmission of a block at ``snr_db`` (dB)."""
        return self.bler_table.bler_at(mcs, snr_db, self.channel, self.block_bits)

    def select(self, snr_db: float) -> tuple[MCS, bool]:
        """``(mcs, meets_target)``: :func:`select_mcs` at ``snr_db``, or the most robust MCS
        (``meets_target`` False) when no MCS meets the target."""
        if type(snr_db) is float and math.isfinite(snr_db):
            s = snr_db  # the common case, without the general check's array round trip
        else:
            s = float(_check_snr("snr_db", snr_db).reshape(()))
        return self._selected.get(s, lambda: self._select(s))

    def _select(self, s: float) -> tuple[MCS, bool]:
        """:meth:`select` at a checked SNR ``s`` (dB)."""
        best: MCS | None = None
        for m, th in zip(self.candidates, self._thresholds(), strict=True):
            # the lookup never increases with SNR, so each MCS meets the target above its
            # threshold; only SNRs within the bisection tolerance are looked up
            if s >= th:
                ok = True
            elif s <= th - _THRESHOLD_TOL_DB:
                ok = False
            else:
                ok = self.bler(m, s) <= self.target_bler
            if ok and (best is None or m.spectral_efficiency > best.spectral_efficiency):
                best = m
        return (best, True) if best is not None else (_most_robust(self.candidates), False)

    def _thresholds(self) -> list[float]:
        """Per candidate, the SNR (dB) from which it meets the target (``inf``: never)."""
        if self._threshold_db is None:
            self._threshold_db = [
                self.bler_table.snr_at_bler(m, self.target_bler, self.channel,
                                            self.block_bits, tol_db=_THRESHOLD_TOL_DB)
                for m in self.candidates]
        return self._threshold_db

    def expected_transmissions(self, mcs: MCS, snr_db: float | np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
        """Expected transmissions per block and residual BLER (Chase model, module doc)."""
        s = np.asarray(snr_db, dtype=np.float64)
        expected = np.ones_like(s)
        for t in range(1, self.max_transmissions):
            expected = expected + np.asarray(self.bler(mcs, s + 10.0 * math.log10(t)))
        residual = np.asarray(self.bler(mcs, s + 10.0 * math.log10(self.max_transmissions)))
        return expected, residual

    def plan(self, snr_db: float) -> LinkPlan:
        """Link adaptation and its expected cost at ``snr_db`` (dB)."""
        mcs, meets = self.select(snr_db)
        s = float(snr_db)
        expected, residual = self.expected_transmissions(mcs, s)
        return LinkPlan(snr_db=s, mcs=mcs, meets_target=meets, bler=float(self.bler(mcs, s)),
                        expected_transmissions=float(expected), residual_bler=float(residual),
                        channel_uses_per_block=channel_uses_per_block(mcs, self.block_bits))

    # ---- vectorized -----------------------------------------------------------------------
    def _lookup_grid(self) -> dict[str, torch.Tensor]:
        """Choice, expected channel uses per block and target flag on the SNR grid (built
        once). The choice is a non-decreasing step function of the SNR, so :meth:`select`
        runs only at the ends of intervals, bisecting where the choice changes."""
        if self._grid is not None:
            return self._grid
        lo, hi, step = self._grid_spec
        snr = torch.arange(round((hi - lo) / step) + 1, dtype=_F64) * step + lo
        n = snr.numel()
        choice = torch.full((n,), -1, dtype=torch.long)
        meets_at: dict[int, bool] = {}

        def at(i: int) -> int:
            if int(choice[i]) < 0:
                mcs, meets = self.select(float(snr[i]))
                choice[i] = self.candidates.index(mcs)
                meets_at[int(choice[i])] = meets_at.get(int(choice[i]), False) or meets
            return int(choice[i])

        stack = [(0, n - 1)]
        while stack:
            a, b = stack.pop()
            ca, cb = at(a), at(b)
            if ca == cb:
                choice[a:b + 1] = ca
            elif b - a > 1:
                mid = (a + b) // 2
                stack.extend([(a, mid), (mid, b)])
        uses = torch.empty(n, dtype=_F64)
        meets = torch.zeros(n, dtype=torch.bool)
        for j in sorted(set(choice.tolist())):
            mcs = self.candidates[j]
            sel = choice == j
            expected, _ = self.expected_transmissions(mcs, snr[sel].numpy())
            uses[sel] = (torch.from_numpy(expected)
                         * channel_uses_per_block(mcs, self.block_bits))
            bler = np.asarray(self.bler(mcs, snr[sel].numpy()), dtype=np.float64)
            meets[sel] = torch.from_numpy(bler <= self.target_bler)
        self._grid = {"snr_db": snr, "choice": choice, "uses_per_block": uses,
                      "meets_target": meets}
        return self._grid

    def _grid_index(self, snr_db: float | torch.Tensor) -> torch.Tensor:
        """Index of the grid point at or below each SNR (clamped to the grid; NaN counts as
        the lowest SNR)."""
        lo, hi, step = self._grid_spec
        n = self._lookup_grid()["snr_db"].numel()
        s = torch.nan_to_num(torch.as_tensor(snr_db, dtype=_F64), nan=lo, posinf=hi, neginf=lo)
        return torch.floor((s - lo) / step + 1e-6).long().clamp(0, n - 1)

    def mcs_index(self, snr_db: float | torch.Tensor) -> torch.Tensor:
        """Index into :attr:`candidates` of the MCS chosen at each SNR (grid, rounded down)."""
        return self._lookup_grid()["choice"][self._grid_index(snr_db)]

    def meets_target(self, snr_db: float | torch.Tensor) -> bool | torch.Tensor:
        """Whether an MCS meets the target at ``snr_db`` (grid, rounded down); a bool for a
        number, else a bool tensor."""
        out = self._lookup_grid()["meets_target"][self._grid_index(snr_db)]
        return bool(out) if not isinstance(snr_db, torch.Tensor) else out

    def expected_channel_uses(self, num_bits: int | torch.Tensor,
                              snr_db: float | torch.Tensor) -> torch.Tensor:
        """Expected complex channel uses of ``num_bits`` payload bits, in whole code blocks,
        HARQ included (float64, broadcast; the SNR rounded down onto the grid)."""
        bits, s = torch.broadcast_tensors(torch.as_tensor(num_bits, dtype=_F64),
                                          torch.as_tensor(snr_db, dtype=_F64))
        if bool((bits < 0).any()):
            raise ValueError("num_bits must be >= 0")
        blocks = torch.ceil(bits / self.block_bits)
        return blocks * self._lookup_grid()["uses_per_block"][self._grid_index(s)]

    def expected_airtime_s(self, num_bits: int | torch.Tensor, snr_db: float | torch.Tensor,
                           bandwidth_hz: float | torch.Tensor) -> torch.Tensor:
        """:meth:`expected_channel_uses` over ``bandwidth_hz`` channel uses per second (s,
        float64; inf at zero bandwidth, 0 for an empty payload)."""
        uses = self.expected_channel_uses(num_bits, snr_db)
        uses, b = torch.broadcast_tensors(uses, torch.as_tensor(bandwidth_hz, dtype=_F64))
        check_bounds("bandwidth_hz", b, low=0.0, low_inclusive=True, allowed=">= 0 Hz")
        t = torch.where(b > 0, uses / b.clamp_min(1e-300), torch.full_like(uses, math.inf))
        return torch.where(uses > 0, t, torch.zeros_like(t))
