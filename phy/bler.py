"""BLER-vs-SNR curves of the digital link and their lookup.

:func:`load_bler_table` reads the curves that the project's own link simulation
(``experiments/tools/make_bler_table.py``) writes to ``phy/data/bler_table.csv``;
:func:`bler_at` and :meth:`BlerTable.bler_at` look a BLER up; :mod:`phy.adaptation` chooses
MCSs from them.

BLER table file (CSV, one row per simulated point)::

    channel,table,mcs,snr_db,bler,block_bits,num_blocks
    awgn,qam64,0,-8.0,1.0,1024,200
    ...

* ``channel``: channel name, free text (e.g. ``awgn``, ``rayleigh``); matched exactly.
* ``table``: ``qam64`` or ``qam256``; ``mcs``: index in that table.
* ``snr_db``: :math:`E_s/N_0` in dB (the convention of every :mod:`phy` channel).
* ``bler``: block error rate in [0, 1] measured over ``num_blocks`` (>= 1) blocks of
  ``block_bits`` (>= 1) information bits.
* Extra columns are ignored; lines starting with ``#`` are comments.

Lookup model (:meth:`BlerCurve.bler_at`), per (channel, table, mcs, block_bits) curve:

1. The measured points are sorted by SNR and replaced by their *upper monotone envelope*
   (BLER at an SNR = largest BLER measured at that SNR or above). Monte-Carlo noise can make a
   measured curve rise a little; the envelope removes that conservatively, so a looked-up BLER
   never increases with SNR and :func:`select_mcs` is monotone in SNR.
2. Below the lowest simulated SNR the BLER is 1.
3. Between points with errors, :math:`\\log_{10}` BLER is interpolated linearly in SNR (dB).
4. Above the last point with errors the waterfall goes on with the slope (in
   :math:`\\log_{10}` BLER per dB) of the last segment, or stays flat where that slope is not
   negative (an error floor, or a single point). From the first simulated SNR at which no block
   failed (``bler == 0``) on, the BLER is 0: below the resolution of the simulation.

Block sizes (:meth:`BlerTable.bler_at`): a curve exists per simulated ``block_bits``. At a size
between two simulated ones, :math:`\\log_{10}` BLER is interpolated linearly in
:math:`\\log k` between the two curves at the same SNR (a BLER of 0 counts as
:data:`BLER_FLOOR`; both 0 gives 0). Outside the simulated sizes the nearest curve is used.
``block_bits=None`` means the only simulated size, or :data:`phy.codeblock.DEFAULT_BLOCK_BITS`
where there are several.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .codeblock import DEFAULT_BLOCK_BITS
from .mcs import MCS, MCS_TABLES, _check_index, _check_table_name

__all__ = ["BLER_FLOOR", "BLER_TABLE_COLUMNS", "BlerCurve", "BlerTable", "bler_at",
           "load_bler_table"]

BLER_TABLE_COLUMNS: tuple[str, ...] = (
    "channel", "table", "mcs", "snr_db", "bler", "block_bits", "num_blocks",
)
#: BLER a zero counts as when interpolating between block sizes (below any simulated point).
BLER_FLOOR = 1e-7


def _check_snr(name: str, snr_db: object) -> np.ndarray:
    if isinstance(snr_db, bool):
        raise ValueError(f"{name} must be a real number in dB, got {snr_db!r}")
    if isinstance(snr_db, torch.Tensor):
        snr_db = snr_db.detach().cpu().numpy()
    try:
        arr = np.asarray(snr_db, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number in dB, got {snr_db!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN/Inf), got {snr_db!r}")
    return arr


@dataclass(frozen=True, eq=False)
class BlerCurve:
    """One simulated BLER-vs-SNR curve and its lookup (see the module docstring for the model).

    Attributes:
        channel, table, mcs, block_bits: what was simulated.
        snr_db: simulated SNRs (:math:`E_s/N_0`, dB), strictly increasing.
        bler: measured BLER at each SNR (as in the file).
        num_blocks: number of blocks simulated at each SNR.
    """

    channel: str
    table: str
    mcs: int
    block_bits: int
    snr_db: np.ndarray
    bler: np.ndarray
    num_blocks: np.ndarray
    _envelope: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not self.channel:
            raise ValueError(f"channel must be a non-empty str, got {self.channel!r}")
        _check_table_name(self.table)
        _check_index(self.mcs, self.table)
        if isinstance(self.block_bits, bool) or not isinstance(self.block_bits, int) \
                or self.block_bits < 1:
            raise ValueError(f"block_bits must be an int >= 1, got {self.block_bits!r}")
        snr = np.array(self.snr_db, dtype=np.float64)  # own copies, made read-only below
        bler = np.array(self.bler, dtype=np.float64)
        nb = np.array(self.num_blocks, dtype=np.int64)
        if snr.ndim != 1 or snr.size == 0 or bler.shape != snr.shape or nb.shape != snr.shape:
            raise ValueError(
                "snr_db, bler and num_blocks must be 1-D arrays of the same non-zero length, got "
                f"shapes {snr.shape}, {bler.shape}, {nb.shape}"
            )
        if not np.all(np.diff(snr) > 0):
            raise ValueError(f"snr_db of a BLER curve must be strictly increasing, got {snr}")
        if not (np.isfinite(bler).all() and (bler >= 0).all() and (bler <= 1).all()):
            raise ValueError(f"bler must lie in [0, 1], got {bler}")
        # Upper monotone envelope: BLER at s = max of the BLERs measured at SNRs >= s.
        env = np.maximum.accumulate(bler[::-1])[::-1]
        for name, value in (("snr_db", snr), ("bler", bler), ("num_blocks", nb),
                            ("_envelope", env)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def mcs_obj(self) -> MCS:
        """The :class:`MCS` of this curve."""
        return MCS.from_index(self.mcs, self.table)

    def bler_at(self, snr_db: float | np.ndarray | torch.Tensor) -> float | np.ndarray:
        """BLER at ``snr_db`` (dB): a float for a scalar, else an array of the same shape."""
        s = _check_snr("snr_db", snr_db)
        out = self._lookup(s.reshape(-1)).reshape(s.shape)
        return float(out) if out.ndim == 0 else out

    @functools.cached_property
    def _log_envelope(self) -> tuple[int, np.ndarray, np.ndarray, float] | None:
        """``(last, xs, log10 envelope, tail slope)`` of the positive part of the envelope
        (computed once per curve; ``None`` where no block error was measured)."""
        x, env = self.snr_db, self._envelope
        pos = np.flatnonzero(env > 0)
        if pos.size == 0:
            return None
        last = int(pos[-1])  # env > 0 exactly on x[0..last] (the envelope is non-increasing)
        logb = np.log10(env[: last + 1])
        xs = x[: last + 1]
        slope = 0.0
        if last >= 1:
            slope = min(0.0, (logb[last] - logb[last - 1]) / (xs[last] - xs[last - 1]))
        return last, xs, logb, slope

    def _lookup(self, s: np.ndarray) -> np.ndarray:
        x = self.snr_db
        cached = self._log_envelope
        if cached is None:  # no block error anywhere: 0 from the first point on
            out = np.zeros_like(s)
            out[s < x[0]] = 1.0
            return out
        last, xs, logb, slope = cached
        # Interpolation inside [x0, x_last]; np.interp clamps outside, fixed below.
        out = 10.0 ** np.interp(s, xs, logb)
        above = s > xs[last]
        out[above] = 10.0 ** (logb[last] + slope * (s[above] - xs[last]))
        if last + 1 < x.size:  # first SNR without any block error
            out[s >= x[last + 1]] = 0.0
        out[s < x[0]] = 1.0
        return np.clip(out, 0.0, 1.0)


class BlerTable:
    """BLER-vs-SNR curves keyed by (channel, table, mcs, block_bits).

    Build it with :func:`load_bler_table` (from the CSV) or directly from :class:`BlerCurve`
    objects. ``source`` (a path or description) only appears in error messages.
    """

    def __init__(self, curves: Iterable[BlerCurve], source: str | None = None) -> None:
        self.source = source
        self._curves: dict[tuple[str, str, int, int], BlerCurve] = {}
        for c in curves:
            key = (c.channel, c.table, c.mcs, c.block_bits)
            if key in self._curves:
                raise ValueError(f"duplicate BLER curve for {key} in {self._where()}")
            self._curves[key] = c
        if not self._curves:
            raise ValueError(f"BLER table {self._where()} holds no curve")
        # the table is fixed once built: index its channels and block sizes once
        self._channel_set = frozenset(k[0] for k in self._curves)
        self._sizes: dict[tuple[str, str, int | None], list[int]] = {}
        for ch, table, mcs, k in self._curves:
            for key3 in ((ch, table, mcs), (ch, table, None)):
                self._sizes.setdefault(key3, []).append(k)
        for v in self._sizes.values():
            v[:] = sorted(set(v))

    def _where(self) -> str:
        return self.source or "<BlerTable>"

    def __len__(self) -> int:
        return len(self._curves)

    def __repr__(self) -> str:
        return f"BlerTable({len(self)} curves, channels={self.channels}, source={self.source!r})"

    @property
    def curves(self) -> list[BlerCurve]:
        return list(self._curves.values())

    @property
    def channels(self) -> list[str]:
        """Channel names present, sorted."""
        return sorted({k[0] for k in self._curves})

    def tables(self, channel: str) -> list[str]:
        """MCS tables simulated for ``channel``."""
        self._check_channel(channel)
        return sorted({k[1] for k in self._curves if k[0] == channel})

    def block_sizes(self, channel: str, table: str, mcs: int | None = None) -> list[int]:
        """``block_bits`` values simulated for (channel, table[, mcs])."""
        return list(self._sizes.get((channel, table, mcs), ()))

    def _check_channel(self, channel: str) -> None:
        if channel not in self._channel_set:
            raise ValueError(
                f"channel {channel!r} has no BLER curve in {self._where()}; available channels: "
                f"{self.channels}"
            )

    def _sizes_of(self, mcs: MCS, channel: str) -> list[int]:
        if not isinstance(mcs, MCS):
            raise TypeError(f"mcs must be an MCS, got {type(mcs).__name__}")
        self._check_channel(channel)
        if mcs.table == "custom":
            raise ValueError(
                f"mcs {mcs.name} is a custom MCS; BLER curves exist only for the "
                f"{list(MCS_TABLES)} tables"
            )
        return self.block_sizes(channel, mcs.table, mcs.index)

    @staticmethod
    def _default_size(sizes: list[int], block_bits: int | None) -> int | None:
        if block_bits is not None:
            if isinstance(block_bits, bool) or not isinstance(block_bits, (int, np.integer)) \
                    or block_bits < 1:
                raise ValueError(f"block_bits must be None or an int >= 1, got {block_bits!r}")
            return int(block_bits)
        if not sizes:
            return None
        return sizes[0] if len(sizes) == 1 else DEFAULT_BLOCK_BITS

    def has_curve(self, mcs: MCS, channel: str) -> bool:
        """Whether ``mcs`` was simulated on ``channel`` (at any block size)."""
        return bool(self._sizes_of(mcs, channel))

    def find(self, mcs: MCS, channel: str, block_bits: int | None = None) -> BlerCurve | None:
        """The simulated curve of ``mcs`` on ``channel`` at exactly ``block_bits`` (``None``:
        the only simulated size, or ``DEFAULT_BLOCK_BITS`` where there are several), or
        ``None`` where there is none. :meth:`bler_at` also interpolates between sizes."""
        sizes = self._sizes_of(mcs, channel)
        k = self._default_size(sizes, block_bits)
        return None if k is None else self._curves.get((channel, mcs.table, mcs.index, k))

    def curve(self, mcs: MCS, channel: str, block_bits: int | None = None) -> BlerCurve:
        """Like :meth:`find` but raises :class:`ValueError` if the curve is missing."""
        c = self.find(mcs, channel, block_bits)
        if c is None:
            sizes = self.block_sizes(channel, mcs.table, mcs.index)
            extra = f" (simulated block_bits: {sizes})" if sizes else ""
            raise ValueError(
                f"no BLER curve for {mcs.name} on channel {channel!r} with block_bits="
                f"{block_bits!r} in {self._where()}{extra}"
            )
        return c

    def bler_at(self, mcs: MCS, snr_db: float | np.ndarray | torch.Tensor,
                channel: str = "awgn", block_bits: int | None = None) -> float | np.ndarray:
        """BLER of ``mcs`` on ``channel`` at ``snr_db`` (:math:`E_s/N_0`, dB) for blocks of
        ``block_bits`` information bits, interpolated between simulated sizes (module doc)."""
        sizes = self._sizes_of(mcs, channel)
        if not sizes:
            raise ValueError(f"no BLER curve for {mcs.name} on channel {channel!r} in "
                             f"{self._where()}")
        k = self._default_size(sizes, block_bits)
        key = (channel, mcs.table, mcs.index)
        if k <= sizes[0] or k >= sizes[-1] or k in sizes:
            near = min(sizes, key=lambda v: abs(math.log(v / k)))
            return self._curves[(*key, near)].bler_at(snr_db)
        hi = next(v for v in sizes if v > k)
        lo = sizes[sizes.index(hi) - 1]
        w = math.log(k / lo) / math.log(hi / lo)
        b_lo = np.asarray(self._curves[(*key, lo)].bler_at(snr_db), dtype=np.float64)
        b_hi = np.asarray(self._curves[(*key, hi)].bler_at(snr_db), dtype=np.float64)
        logb = ((1 - w) * np.log10(np.maximum(b_lo, BLER_FLOOR))
                + w * np.log10(np.maximum(b_hi, BLER_FLOOR)))
        out = np.where((b_lo == 0) & (b_hi == 0), 0.0, np.clip(10.0 ** logb, 0.0, 1.0))
        return float(out) if out.ndim == 0 else out


    def snr_at_bler(self, mcs: MCS, target_bler: float, channel: str = "awgn",
                    block_bits: int | None = None, *, tol_db: float = 1e-3) -> float:
        """The lowest SNR (dB) at which the looked-up BLER is at most ``target_bler``, to
        ``tol_db`` (bisection on the non-increasing lookup); ``inf`` if it never gets there."""
        if not 0.0 < float(target_bler) < 1.0:
            raise ValueError(f"target_bler must lie in (0, 1), got {target_bler!r}")
        sizes = self._sizes_of(mcs, channel)
        if not sizes:
            raise ValueError(f"no BLER curve for {mcs.name} on channel {channel!r} in "
                             f"{self._where()}")
        curves = [self._curves[(channel, mcs.table, mcs.index, k)] for k in sizes]
        lo = min(float(c.snr_db[0]) for c in curves) - 1.0
        hi = max(float(c.snr_db[-1]) for c in curves) + 60.0
        if self.bler_at(mcs, hi, channel, block_bits) > target_bler:
            return math.inf
        while hi - lo > tol_db:
            mid = 0.5 * (lo + hi)
            if self.bler_at(mcs, mid, channel, block_bits) <= target_bler:
                hi = mid
            else:
                lo = mid
        return hi


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _default_bler_path() -> Path:
    return Path(str(importlib.resources.files("phy") / "data" / "bler_table.csv"))


def _field(row: dict, col: str, where: str, lineno: int, allowed: str) -> ValueError:
    return ValueError(
        f"BLER table {where}, line {lineno}: column {col!r} must be {allowed}, "
        f"got {row.get(col)!r}"
    )


def _number(row: dict, col: str, where: str, lineno: int, integer: bool) -> float:
    raw = (row.get(col) or "").strip()
    try:
        v = float(raw)
    except ValueError:
        raise _field(row, col, where, lineno, "a number") from None
    if not math.isfinite(v):
        raise _field(row, col, where, lineno, "finite")
    if integer and v != int(v):
        raise _field(row, col, where, lineno, "an integer")
    return v


def _parse_row(row: dict, where: str, lineno: int) -> tuple[tuple[str, str, int, int],
                                                             tuple[float, float, int, int]]:
    channel = (row.get("channel") or "").strip()
    if not channel:
        raise _field(row, "channel", where, lineno, "a non-empty name")
    table = (row.get("table") or "").strip()
    if table not in MCS_TABLES:
        raise _field(row, "table", where, lineno, f"one of {list(MCS_TABLES)}")
    mcs = int(_number(row, "mcs", where, lineno, integer=True))
    if not 0 <= mcs < MCS_TABLES[table][1]:
        raise _field(row, "mcs", where, lineno,
                     f"an index in [0, {MCS_TABLES[table][1] - 1}] for {table}")
    snr = _number(row, "snr_db", where, lineno, integer=False)
    bler = _number(row, "bler", where, lineno, integer=False)
    if not 0.0 <= bler <= 1.0:
        raise _field(row, "bler", where, lineno, "in [0, 1]")
    block_bits = int(_number(row, "block_bits", where, lineno, integer=True))
    if block_bits < 1:
        raise _field(row, "block_bits", where, lineno, "an integer >= 1")
    num_blocks = int(_number(row, "num_blocks", where, lineno, integer=True))
    if num_blocks < 1:
        raise _field(row, "num_blocks", where, lineno, "an integer >= 1")
    return (channel, table, mcs, block_bits), (snr, bler, num_blocks, lineno)


def _parse_rows(text: str, where: str) -> list[BlerCurve]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"BLER table {where} is empty; expected a header "
                         f"{','.join(BLER_TABLE_COLUMNS)}")
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in lines)))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in BLER_TABLE_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"BLER table {where} lacks column(s) {missing}; required columns: "
            f"{list(BLER_TABLE_COLUMNS)}, found: {header}"
        )
    groups: dict[tuple[str, str, int, int], list[tuple[float, float, int, int]]] = {}
    for (lineno, _), row in zip(lines[1:], reader, strict=True):
        key, point = _parse_row(row, where, lineno)
        groups.setdefault(key, []).append(point)
    if not groups:
        raise ValueError(f"BLER table {where} has a header but no data rows")
    curves = []
    for (channel, table, mcs, block_bits), pts in groups.items():
        pts.sort()
        for a, b in itertools.pairwise(pts):
            if a[0] == b[0]:
                raise ValueError(
                    f"BLER table {where}, lines {a[3]} and {b[3]}: two points at snr_db={a[0]} "
                    f"for channel={channel}, table={table}, mcs={mcs}, block_bits={block_bits}"
                )
        curves.append(BlerCurve(
            channel=channel, table=table, mcs=mcs, block_bits=block_bits,
            snr_db=np.array([p[0] for p in pts]), bler=np.array([p[1] for p in pts]),
            num_blocks=np.array([p[2] for p in pts], dtype=np.int64),
        ))
    return curves


def load_bler_table(path: str | os.PathLike | None = None) -> BlerTable:
    """Read BLER-vs-SNR curves from a CSV (format in the module docstring).

    Args:
        path: the CSV file; ``None`` reads the table shipped with the package,
            ``phy/data/bler_table.csv``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a column is missing or a value is invalid (the message names the line).
    """
    p = _default_bler_path() if path is None else Path(path)
    if not p.is_file():
        hint = (" (the shipped table is written by the project's BLER simulation script)"
                if path is None else "")
        raise FileNotFoundError(f"BLER table not found: {p}{hint}")
    return BlerTable(_parse_rows(p.read_text(encoding="utf-8"), str(p)), source=str(p))


@functools.lru_cache(maxsize=1)
def _shipped_table() -> BlerTable:
    return load_bler_table(None)


def _resolve_table(bler_table: BlerTable | None, path: str | os.PathLike | None) -> BlerTable:
    if bler_table is not None and path is not None:
        raise ValueError("pass either bler_table= or path=, not both")
    if bler_table is not None:
        if not isinstance(bler_table, BlerTable):
            raise TypeError(f"bler_table must be a BlerTable, got {type(bler_table).__name__}")
        return bler_table
    return _shipped_table() if path is None else load_bler_table(path)


def bler_at(mcs: MCS, snr_db: float | np.ndarray | torch.Tensor, channel: str = "awgn", *,
            block_bits: int | None = None, bler_table: BlerTable | None = None,
            path: str | os.PathLike | None = None) -> float | np.ndarray:
    """BLER of ``mcs`` on ``channel`` at ``snr_db`` (:math:`E_s/N_0`, dB).

    Uses ``bler_table``, else the CSV at ``path``, else the shipped table (read once). A float
    for a scalar SNR, else an array of the same shape. Lookup model: see the module docstring.
    """
    return _resolve_table(bler_table, path).bler_at(mcs, snr_db, channel, block_bits)
