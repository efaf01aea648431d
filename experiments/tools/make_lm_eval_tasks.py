"""Write the offline lm-eval tasks of the shipped tiny model (``wdmoe_link/data/lm_eval_tasks``).

Two tasks on the held-out ``test`` split of the tiny model's arithmetic (the problems
:func:`wdmoe_link.tiny.tiny_task` gives, seed 0):

* ``wdmoe_arith``: greedy generation until a newline, exact match;
* ``wdmoe_arith_mc``: log-likelihood choice between the answer and three near misses
  (answer + 1, - 1, + 10), accuracy.

Run: ``python -m experiments.tools.make_lm_eval_tasks [--size 200]``.
"""

from __future__ import annotations

import argparse
import json

from wdmoe_link.harness import TASKS_DIR
from wdmoe_link.tiny import tiny_task


def write(size: int = 200) -> None:
    """Write ``arith_test.jsonl`` (``size`` problems) into :data:`TASKS_DIR`."""
    if size < 1:
        raise ValueError(f"size must be >= 1 problem, got {size}")
    rows = []
    for ex in tiny_task("test", size=size, seed=0):
        a = int(ex.answer)
        choices = [str(a), str(a + 1), str(a - 1), str(a + 10)]
        rows.append({"question": ex.prompt, "answer": ex.answer, "choices": choices,
                     "label": 0})
    path = TASKS_DIR / "arith_test.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
    print(f"{len(rows)} problems -> {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=200, help="problems (default 200)")
    write(ap.parse_args().size)
