"""Write the offline lm-eval tasks of the shipped tiny model (``wdmoe_link/data/lm_eval_tasks``).

Two tasks on the held-out ``test`` split of the tiny model's arithmetic (the problems
:func:`wdmoe_link.tiny.tiny_task` gives, seed 0):

* ``wdmoe_arith``: greedy generation until a newline, exact match;
* ``wdmoe_arith_mc``: log-likelihood choice between the answer and three near misses
  (answer + 1, - 1, + 10), accuracy.

:func:`lm_eval_task_rows` turns an :class:`LMEvalTasksConfig` into the task's rows
(:class:`LMEvalTasks`); :func:`make_lm_eval_tasks`, the command, writes them.

Run: ``semcom make-lm-eval-tasks [--size 200]`` (or ``python -m
experiments.tools.make_lm_eval_tasks``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.reporting.results import atomic_write_text
from experiments.values import PositiveInt
from wdmoe_link.harness import TASKS_DIR
from wdmoe_link.tiny import tiny_task

__all__ = ["LMEvalTasks", "LMEvalTasksConfig", "lm_eval_task_rows", "make_lm_eval_tasks"]


@dataclass(frozen=True)
class LMEvalTasksConfig:
    """What ``semcom make-lm-eval-tasks`` writes (checked when built).

    Attributes:
        size: held-out problems.
    """

    size: PositiveInt = 200

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be an int >= 1 (problems), got {self.size!r}")


@dataclass
class LMEvalTasks:
    """The rows of an :class:`LMEvalTasksConfig`.

    Attributes:
        config: what was built.
        rows: one per problem: ``question``, ``answer``, ``choices`` (the answer first, then
            the near misses) and ``label`` (0).
    """

    config: LMEvalTasksConfig
    rows: list[dict[str, Any]]

    def jsonl(self) -> str:
        """The rows as the JSON lines of ``arith_test.jsonl``."""
        return "".join(json.dumps(r) + "\n" for r in self.rows)


def lm_eval_task_rows(cfg: LMEvalTasksConfig) -> LMEvalTasks:
    """The held-out problems of ``cfg`` with their choices (writes nothing)."""
    rows = []
    for ex in tiny_task("test", size=cfg.size, seed=0):
        a = int(ex.answer)
        choices = [str(a), str(a + 1), str(a - 1), str(a + 10)]
        rows.append({"question": ex.prompt, "answer": ex.answer, "choices": choices,
                     "label": 0})
    return LMEvalTasks(cfg, rows)


def make_lm_eval_tasks(cfg: LMEvalTasksConfig | None = None, *,
                       out: str = str(TASKS_DIR / "arith_test.jsonl"), **settings: Any) -> Path:
    """Write the task file (default ``arith_test.jsonl`` in :data:`TASKS_DIR`); returns its
    path.

    Args:
        cfg: what to write; or give its fields as keywords (``settings``).
        out: the JSON lines file.
    """
    cfg = resolve_config(LMEvalTasksConfig, cfg, settings)
    return atomic_write_text(out, lm_eval_task_rows(cfg).jsonl())


#: ``python -m experiments.tools.make_lm_eval_tasks`` = ``semcom make-lm-eval-tasks``.
main = entry_point("make-lm-eval-tasks")


if __name__ == "__main__":
    raise SystemExit(main())
