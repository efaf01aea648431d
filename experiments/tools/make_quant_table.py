"""Measure the accuracy of the shipped models at each weight precision and cache the table
that edge nodes read their quantization levels from (``wdmoe_link/data/quant_levels.csv``).

Each model is quantized with :func:`wdmoe_link.edge.quantize_weights` (torchao; 16, 8 and 4
bits per weight) and scored on its held-out task: the arithmetic model on ``--tiny-examples``
problems (exact match), the text model on ``--text-windows`` windows of 256 bytes of held-out
standard-library modules (next-byte accuracy, bits per byte).

    python -m experiments.tools.make_quant_table            # about 4 minutes on two CPU cores
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import torch

from experiments.cli import entry_point
from experiments.reporting.results import atomic_write_text
from experiments.values import PositiveInt
from wdmoe_link.edge.quantization import LEVELS_CSV, WEIGHT_BITS, measure_levels

COMMAND = "python -m experiments.tools.make_quant_table"


def make_quant_table(*, tiny_examples: PositiveInt = 2000, text_windows: PositiveInt = 512,
                     threads: PositiveInt = 2, out: str = str(LEVELS_CSV)) -> Path:
    """Measure every shipped model at every weight precision and write the table; returns
    its path.

    Args:
        tiny_examples: held-out arithmetic problems of the tiny model (exact match).
        text_windows: held-out 256-byte windows of the text model.
        threads: torch threads.
        out: the table file.
    """
    for name, v in (("tiny_examples", tiny_examples), ("text_windows", text_windows),
                    ("threads", threads)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    torch.set_num_threads(threads)
    rows = []
    for model, n in (("tiny", tiny_examples), ("text", text_windows)):
        for r in measure_levels(model, WEIGHT_BITS, examples=n):
            r["value"] = round(r["value"], 5)
            rows.append({**r, "command": COMMAND})
            print(r, file=sys.stderr)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(out, buf.getvalue())


#: ``python -m experiments.tools.make_quant_table`` = ``semcom make-quant-table``.
main = entry_point("make-quant-table")


if __name__ == "__main__":
    raise SystemExit(main())
