"""Measure the accuracy of the shipped models at each weight precision and cache the table
that edge nodes read their quantization levels from (``wdmoe_link/data/quant_levels.csv``).

Each model is quantized with :func:`wdmoe_link.edge.quantize_weights` (torchao; 16, 8 and 4
bits per weight) and scored on its held-out task: the arithmetic model on ``--tiny-examples``
problems (exact match), the text model on ``--text-windows`` windows of 256 bytes of held-out
standard-library modules (next-byte accuracy, bits per byte). :func:`measure_quant_table`
turns a :class:`QuantTableConfig` into the rows (:class:`QuantTable`); :func:`make_quant_table`,
the command, writes them.

    python -m experiments.tools.make_quant_table            # about 4 minutes on two CPU cores
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.reporting.results import atomic_write_text
from experiments.values import PositiveInt
from phy.checks import check_positive_int
from wdmoe_link.edge.quantization import LEVELS_CSV, WEIGHT_BITS, measure_levels

__all__ = ["COMMAND", "QuantTable", "QuantTableConfig", "make_quant_table",
           "measure_quant_table"]

COMMAND = "python -m experiments.tools.make_quant_table"


@dataclass(frozen=True)
class QuantTableConfig:
    """What ``semcom make-quant-table`` measures (checked when built).

    Attributes:
        tiny_examples: held-out arithmetic problems of the tiny model (exact match).
        text_windows: held-out 256-byte windows of the text model.
    """

    tiny_examples: PositiveInt = 2000
    text_windows: PositiveInt = 512

    def __post_init__(self) -> None:
        check_positive_int("tiny_examples", self.tiny_examples)
        check_positive_int("text_windows", self.text_windows)


@dataclass
class QuantTable:
    """The measurements of a :class:`QuantTableConfig`.

    Attributes:
        config: what was measured.
        rows: one per (model, weight bits) as :func:`measure_levels` gives them, the value
            rounded to 5 decimals, and the ``command`` that made the table.
    """

    config: QuantTableConfig
    rows: list[dict[str, Any]]

    def csv(self) -> str:
        """The rows as the text of ``quant_levels.csv``."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buf.getvalue()


def measure_quant_table(cfg: QuantTableConfig, *,
                        on_row: Callable[[dict[str, Any]], Any] | None = None) -> QuantTable:
    """Measure every shipped model at every weight precision (writes nothing); ``on_row``
    gets each row as it is measured."""
    rows = []
    for model, n in (("tiny", cfg.tiny_examples), ("text", cfg.text_windows)):
        for r in measure_levels(model, WEIGHT_BITS, examples=n):
            r["value"] = round(r["value"], 5)
            rows.append({**r, "command": COMMAND})
            if on_row is not None:
                on_row(r)
    return QuantTable(cfg, rows)


def make_quant_table(cfg: QuantTableConfig | None = None, *, threads: PositiveInt = 2,
                     out: str = str(LEVELS_CSV), **settings: Any) -> Path:
    """Measure every shipped model at every weight precision and write the table; returns
    its path.

    Args:
        cfg: what to measure; or give its fields as keywords (``settings``).
        threads: torch threads.
        out: the table file.
    """
    cfg = resolve_config(QuantTableConfig, cfg, settings)
    check_positive_int("threads", threads)
    torch.set_num_threads(threads)
    table = measure_quant_table(cfg, on_row=lambda r: print(r, file=sys.stderr))
    return atomic_write_text(out, table.csv())


#: ``python -m experiments.tools.make_quant_table`` = ``semcom make-quant-table``.
main = entry_point("make-quant-table")


if __name__ == "__main__":
    raise SystemExit(main())
