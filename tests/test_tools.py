"""The artifact tools of ``experiments/tools`` without a test file of their own: a config,
a computation returning data, a command that writes; a bad setting is refused when the config
is built, before any work or file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_make_lm_eval_tasks_config_rows_and_file(tmp_path: Path) -> None:
    from experiments.tools.make_lm_eval_tasks import (
        LMEvalTasksConfig,
        lm_eval_task_rows,
        make_lm_eval_tasks,
    )

    out = tmp_path / "arith_test.jsonl"
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="size must be an int >= 1"):
            make_lm_eval_tasks(size=bad, out=str(out))
    assert not out.exists()
    rows = lm_eval_task_rows(LMEvalTasksConfig(size=3)).rows
    assert len(rows) == 3 and all(r["label"] == 0 for r in rows)
    assert all(r["choices"][0] == r["answer"] for r in rows)
    assert make_lm_eval_tasks(LMEvalTasksConfig(size=3), out=str(out)) == out
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    with pytest.raises(TypeError, match="not both"):
        make_lm_eval_tasks(LMEvalTasksConfig(size=3), size=4, out=str(out))
