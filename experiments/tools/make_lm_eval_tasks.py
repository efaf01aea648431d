"""Write the offline lm-eval tasks of the shipped tiny model (``wdmoe_link/data/lm_eval_tasks``).

Two tasks on the held-out ``test`` split of the tiny model's arithmetic (the problems
:func:`wdmoe_link.tiny.tiny_task` gives, seed 0):

* ``wdmoe_arith``: greedy generation until a newline, exact match;
* ``wdmoe_arith_mc``: log-likelihood choice between the answer and three near misses
  (answer + 1, - 1, + 10), accuracy.

Run: ``semcom make-lm-eval-tasks [--size 200]`` (or ``python -m
experiments.tools.make_lm_eval_tasks``).
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments.cli import entry_point
from experiments.values import PositiveInt
from wdmoe_link.harness import TASKS_DIR
from wdmoe_link.tiny import tiny_task


def make_lm_eval_tasks(*, size: PositiveInt = 200) -> Path:
    """Write ``arith_test.jsonl`` into :data:`TASKS_DIR`; returns its path.

    Args:
        size: held-out problems.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1 (problems), got {size!r}")
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
    return path


#: ``python -m experiments.tools.make_lm_eval_tasks`` = ``semcom make-lm-eval-tasks``.
main = entry_point("make-lm-eval-tasks")


if __name__ == "__main__":
    raise SystemExit(main())
