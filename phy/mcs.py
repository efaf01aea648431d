"""Modulation and coding schemes (3GPP TS 38.214).

:class:`MCS` is one modulation and coding scheme: QAM order :math:`Q_m` (bits per complex
symbol) and target code rate :math:`R`. Entries of the PDSCH tables of TS 38.214 are built from
Sionna's copy of the tables (:func:`sionna.phy.nr.utils.decode_mcs_index`):

  ============  ==========================  =========  ==========================
  ``table``     TS 38.214 table             indices    modulations
  ============  ==========================  =========  ==========================
  ``"qam64"``   Table 5.1.3.1-1             0 .. 28    QPSK, 16QAM, 64QAM
  ``"qam256"``  Table 5.1.3.1-2             0 .. 27    QPSK, 16QAM, 64QAM, 256QAM
  ``"custom"``  none (:meth:`MCS.custom`)   --         any Qm in {2, 4, 6, 8}
  ============  ==========================  =========  ==========================

  Indices 29..31 of the tables (reserved, retransmission only) are not MCSs of their own.

BLER curves and their lookup live in :mod:`phy.bler`, link adaptation in :mod:`phy.adaptation`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from sionna.phy.nr.utils import decode_mcs_index

__all__ = ["MCS", "MCS_TABLES", "mcs_table"]

#: MCS table name -> (Sionna/TS 38.214 PDSCH table index, number of MCS indices).
MCS_TABLES: dict[str, tuple[int, int]] = {
    "qam64": (1, 29),  # TS 38.214 Table 5.1.3.1-1, I_MCS 0..28
    "qam256": (2, 28),  # TS 38.214 Table 5.1.3.1-2, I_MCS 0..27
}

_MODULATION_NAMES: dict[int, str] = {2: "QPSK", 4: "16QAM", 6: "64QAM", 8: "256QAM"}

#: Largest code rate accepted by :meth:`MCS.custom` (exclusive).
CUSTOM_MAX_CODE_RATE: float = 0.95


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

    @functools.cached_property  # formatted once: link code asks for it on every payload
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
