"""Measure the accuracy of the shipped models at each weight precision and cache the table
that edge nodes read their quantization levels from (``wdmoe_link/data/quant_levels.csv``).

Each model is quantized with :func:`wdmoe_link.edge.quantize_weights` (torchao; 16, 8 and 4
bits per weight) and scored on its held-out task: the arithmetic model on ``--tiny-examples``
problems (exact match), the text model on ``--text-windows`` windows of 256 bytes of held-out
standard-library modules (next-byte accuracy, bits per byte).

    python -m experiments.tools.make_quant_table            # about 4 minutes on two CPU cores
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from experiments.reporting.results import atomic_write_text
from wdmoe_link.edge.quantization import LEVELS_CSV, WEIGHT_BITS, measure_levels

COMMAND = "python -m experiments.tools.make_quant_table"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny-examples", type=int, default=2000)
    p.add_argument("--text-windows", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=LEVELS_CSV)
    args = p.parse_args(argv)
    for name in ("tiny_examples", "text_windows", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    rows = []
    for model, n in (("tiny", args.tiny_examples), ("text", args.text_windows)):
        for r in measure_levels(model, WEIGHT_BITS, examples=n):
            r["value"] = round(r["value"], 5)
            rows.append({**r, "command": COMMAND})
            print(r, file=sys.stderr)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.out, buf.getvalue())
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
