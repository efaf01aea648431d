"""Modulation and coding schemes (3GPP TS 38.214) and BLER-based link adaptation.

Two pieces live here:

* :class:`MCS` -- one modulation and coding scheme: QAM order :math:`Q_m` (bits per complex
  symbol) and target code rate :math:`R`. Entries of the PDSCH tables of TS 38.214 are built
  from Sionna's copy of the tables (:func:`sionna.phy.nr.utils.decode_mcs_index`):

  ============  ==========================  =========  ==========================
  ``table``     TS 38.214 table             indices    modulations
  ============  ==========================  =========  ==========================
  ``"qam64"``   Table 5.1.3.1-1             0 .. 28    QPSK, 16QAM, 64QAM
  ``"qam256"``  Table 5.1.3.1-2             0 .. 27    QPSK, 16QAM, 64QAM, 256QAM
  ``"custom"``  none (:meth:`MCS.custom`)   --         any Qm in {2, 4, 6, 8}
  ============  ==========================  =========  ==========================

  Indices 29..31 of the tables (reserved, retransmission only) are not MCSs of their own.

* Link adaptation from BLER-vs-SNR curves: :func:`load_bler_table` reads the curves that the
  project's own link simulation writes to ``phy/data/bler_table.csv``; :func:`bler_at` looks a
  BLER up; :func:`select_mcs` picks the MCS with the highest spectral efficiency whose BLER at
  a given SNR meets a target.

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
from typing import Literal

import numpy as np
import torch
from sionna.phy.nr.utils import decode_mcs_index

__all__ = [
    "MCS",
    "MCS_TABLES",
    "BlerCurve",
    "BlerTable",
    "bler_at",
    "load_bler_table",
    "mcs_table",
    "select_mcs",
]

#: MCS table name -> (Sionna/TS 38.214 PDSCH table index, number of MCS indices).
MCS_TABLES: dict[str, tuple[int, int]] = {
    "qam64": (1, 29),  # TS 38.214 Table 5.1.3.1-1, I_MCS 0..28
    "qam256": (2, 28),  # TS 38.214 Table 5.1.3.1-2, I_MCS 0..27
}

_MODULATION_NAMES: dict[int, str] = {2: "QPSK", 4: "16QAM", 6: "64QAM", 8: "256QAM"}

#: Largest code rate accepted by :meth:`MCS.custom` (exclusive).
CUSTOM_MAX_CODE_RATE: float = 0.95

BLER_TABLE_COLUMNS: tuple[str, ...] = (
    "channel", "table", "mcs", "snr_db", "bler", "block_bits", "num_blocks",
)


def _check_table_name(table: object, *, allow_custom: bool = False) -> str:
    allowed = [*MCS_TABLES, "custom"] if allow_custom else list(MCS_TABLES)
    if not isinstance(table, str) or table not in allowed:
        raise ValueError(f"table must be one of {allowed}, got {table!r}")
    return table


def _check_index(index: object, table: str) -> int:
    num = MCS_TABLES[table][1]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(
            f"index must be an int in [0, {num - 1}] for table {table!r}, "
            f"got {type(index).__name__} {index!r}"
        )
    index = int(index)
    if not 0 <= index < num:
        raise ValueError(f"index must be in [0, {num - 1}] for table {table!r}, got {index}")
    return index


@functools.cache
def _table_entries(table: str) -> tuple[tuple[int, float], ...]:
    """(Qm, R) for every index of ``table``, read from Sionna once and cached."""
    table_index, num = MCS_TABLES[table]
    idx = torch.arange(num, dtype=torch.int32)
    qm, rate = decode_mcs_index(idx, table_index=table_index, is_pusch=False, device="cpu")
    # Sionna returns R as float32; every TS 38.214 rate is a multiple of 0.5/1024, which float32
    # holds exactly, so float() gives the exact table value (e.g. 682.5/1024).
    return tuple((int(q), float(r)) for q, r in zip(qm.tolist(), rate.tolist(), strict=True))


@dataclass(frozen=True)
class MCS:
    """One modulation and coding scheme.

    Attributes:
        index: MCS index :math:`I_{MCS}` in ``table``, or ``None`` for a custom MCS.
        table: ``"qam64"`` (TS 38.214 Table 5.1.3.1-1), ``"qam256"`` (Table 5.1.3.1-2) or
            ``"custom"``.
        modulation_order: bits per QAM symbol :math:`Q_m` (2 QPSK, 4 16QAM, 6 64QAM, 8 256QAM).
        code_rate: target code rate :math:`R` (the table's "R x 1024" divided by 1024).

    Build it with :meth:`from_index` or :meth:`custom`; direct construction is validated
    against the tables as well.
    """

    index: int | None
    table: str
    modulation_order: int
    code_rate: float

    def __post_init__(self) -> None:
        _check_table_name(self.table, allow_custom=True)
        qm = self.modulation_order
        if isinstance(qm, bool) or not isinstance(qm, (int, np.integer)) \
                or int(qm) not in _MODULATION_NAMES:
            raise ValueError(
                f"modulation_order must be one of {list(_MODULATION_NAMES)} (bits per QAM "
                f"symbol), got {qm!r}"
            )
        r = self.code_rate
        if isinstance(r, bool) or not isinstance(r, (int, float, np.floating)) \
                or not math.isfinite(r) or not 0.0 < r < 1.0:
            raise ValueError(f"code_rate must be a number in (0, 1), got {r!r}")
        object.__setattr__(self, "modulation_order", int(qm))
        object.__setattr__(self, "code_rate", float(r))
        if self.table == "custom":
            if self.index is not None:
                raise ValueError(f"index must be None for a custom MCS, got {self.index!r}")
            if not self.code_rate < CUSTOM_MAX_CODE_RATE:
                raise ValueError(
                    f"code_rate must be in (0, {CUSTOM_MAX_CODE_RATE}) for a custom MCS, "
                    f"got {self.code_rate!r}"
                )
            return
        index = _check_index(self.index, self.table)
        object.__setattr__(self, "index", index)
        qm_t, r_t = _table_entries(self.table)[index]
        if (self.modulation_order, self.code_rate) != (qm_t, r_t):
            raise ValueError(
                f"{self.table}/MCS{index} is Qm={qm_t}, R={r_t!r} in TS 38.214, got "
                f"modulation_order={self.modulation_order}, code_rate={self.code_rate!r}; "
                "use MCS.from_index() or MCS.custom()"
            )

    @classmethod
    def from_index(cls, index: int, table: str = "qam64") -> MCS:
        """The MCS with index ``index`` of ``table`` (``"qam64"``: 0..28, ``"qam256"``: 0..27)."""
        if table == "custom":
            raise ValueError(
                "table must be one of ['qam64', 'qam256'] for MCS.from_index, got 'custom'; "
                "use MCS.custom(modulation_order, code_rate) for a custom MCS"
            )
        _check_table_name(table)
        index = _check_index(index, table)
        qm, r = _table_entries(table)[index]
        return cls(index=index, table=table, modulation_order=qm, code_rate=r)

    @classmethod
    def custom(cls, modulation_order: int, code_rate: float) -> MCS:
        """An MCS outside the tables, e.g. ``MCS.custom(2, 0.5)`` for rate-1/2 QPSK.

        ``modulation_order`` must be in {2, 4, 6, 8} and ``code_rate`` in (0, 0.95).
        """
        return cls(index=None, table="custom", modulation_order=modulation_order,
                   code_rate=code_rate)

    @property
    def spectral_efficiency(self) -> float:
        """Information bits per channel use (complex symbol): :math:`Q_m R`."""
        return self.modulation_order * self.code_rate

    @property
    def modulation(self) -> str:
        """Modulation name: ``"QPSK"``, ``"16QAM"``, ``"64QAM"`` or ``"256QAM"``."""
        return _MODULATION_NAMES[self.modulation_order]

    @property
    def name(self) -> str:
        """Short label, e.g. ``"qam64/MCS10 (16QAM, R=0.332)"`` or ``"custom (QPSK, R=0.500)"``."""
        what = f"{self.modulation}, R={self.code_rate:.3f}"
        if self.table == "custom":
            return f"custom ({what})"
        return f"{self.table}/MCS{self.index} ({what})"

    def __str__(self) -> str:
        return self.name


def mcs_table(table: str = "qam64") -> list[MCS]:
    """All MCSs of ``table`` (``"qam64"`` or ``"qam256"``), in index order."""
    _check_table_name(table)
    return [MCS.from_index(i, table) for i in range(MCS_TABLES[table][1])]


# --------------------------------------------------------------------------------------------
# BLER curves
# --------------------------------------------------------------------------------------------


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

    def _lookup(self, s: np.ndarray) -> np.ndarray:
        x, env = self.snr_db, self._envelope
        pos = np.flatnonzero(env > 0)
        out = np.zeros_like(s)
        if pos.size == 0:  # no block error anywhere: 0 from the first point on
            out[s < x[0]] = 1.0
            return out
        last = int(pos[-1])  # env > 0 exactly on x[0..last] (the envelope is non-increasing)
        logb = np.log10(env[: last + 1])
        xs = x[: last + 1]
        # Interpolation inside [x0, x_last]; np.interp clamps outside, fixed below.
        out = 10.0 ** np.interp(s, xs, logb)
        slope = 0.0
        if last >= 1:
            slope = min(0.0, (logb[last] - logb[last - 1]) / (xs[last] - xs[last - 1]))
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
        return sorted({k[3] for k in self._curves
                       if k[0] == channel and k[1] == table and (mcs is None or k[2] == mcs)})

    def _check_channel(self, channel: str) -> None:
        if channel not in {k[0] for k in self._curves}:
            raise ValueError(
                f"channel {channel!r} has no BLER curve in {self._where()}; available channels: "
                f"{self.channels}"
            )

    def find(self, mcs: MCS, channel: str, block_bits: int | None = None) -> BlerCurve | None:
        """The curve of ``mcs`` on ``channel``, or ``None`` if that MCS was not simulated.

        With ``block_bits=None`` the MCS must have been simulated with one block size only.
        """
        if not isinstance(mcs, MCS):
            raise TypeError(f"mcs must be an MCS, got {type(mcs).__name__}")
        self._check_channel(channel)
        if mcs.table == "custom":
            raise ValueError(
                f"mcs {mcs.name} is a custom MCS; BLER curves exist only for the "
                f"{list(MCS_TABLES)} tables"
            )
        if block_bits is not None:
            return self._curves.get((channel, mcs.table, mcs.index, block_bits))
        sizes = self.block_sizes(channel, mcs.table, mcs.index)
        if not sizes:
            return None
        if len(sizes) > 1:
            raise ValueError(
                f"{mcs.name} on {channel!r} was simulated with several block sizes {sizes}; "
                "pass block_bits= to choose one"
            )
        return self._curves[(channel, mcs.table, mcs.index, sizes[0])]

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
        """BLER of ``mcs`` on ``channel`` at ``snr_db`` (:math:`E_s/N_0`, dB)."""
        return self.curve(mcs, channel, block_bits).bler_at(snr_db)


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
        block_bits: use the curves simulated with this many information bits per block;
            ``None`` requires a single block size per MCS.
        fallback: ``"none"`` returns ``None`` when no MCS qualifies; ``"lowest"`` returns the
            lowest-spectral-efficiency simulated MCS instead (the transmission will likely fail).
        bler_table, path: where the curves come from (see :func:`bler_at`).

    Returns:
        The chosen :class:`MCS`, or ``None`` if no MCS meets the target and ``fallback="none"``.
    """
    s = _check_snr("snr_db", snr_db)
    if s.ndim != 0 and s.size != 1:
        raise ValueError(f"snr_db must be a scalar, got shape {s.shape}")
    s = float(s.reshape(()))
    if isinstance(target_bler, bool) or not isinstance(target_bler, (int, float)) \
            or not (math.isfinite(target_bler) and 0.0 < target_bler < 1.0):
        raise ValueError(f"target_bler must be a number in (0, 1), got {target_bler!r}")
    if fallback not in ("none", "lowest"):
        raise ValueError(f"fallback must be one of ['none', 'lowest'], got {fallback!r}")
    _check_table_name(table)
    bt = _resolve_table(bler_table, path)
    bt._check_channel(channel)
    if table not in bt.tables(channel):
        raise ValueError(
            f"no BLER curve for table {table!r} on channel {channel!r} in {bt._where()}; "
            f"tables available for that channel: {bt.tables(channel)}"
        )
    candidates: list[tuple[MCS, BlerCurve]] = []
    for m in mcs_table(table):
        c = bt.find(m, channel, block_bits)
        if c is not None:
            candidates.append((m, c))
    if not candidates:
        raise ValueError(
            f"no BLER curve for table {table!r} on channel {channel!r} with block_bits="
            f"{block_bits!r} in {bt._where()}; simulated block_bits: "
            f"{bt.block_sizes(channel, table)}"
        )
    best: MCS | None = None
    for m, c in candidates:
        if c.bler_at(s) <= target_bler and (
                best is None or m.spectral_efficiency > best.spectral_efficiency):
            best = m
    if best is None and fallback == "lowest":
        best = min((m for m, _ in candidates), key=lambda m: (m.spectral_efficiency, m.index))
    return best
