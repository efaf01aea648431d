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


def test_make_quant_table_config_rows_and_file(tmp_path: Path, monkeypatch) -> None:
    import experiments.tools.make_quant_table as tool

    out = tmp_path / "quant_levels.csv"
    for field in ("tiny_examples", "text_windows", "threads"):
        with pytest.raises(ValueError, match=f"{field} must be an int >= 1"):
            tool.make_quant_table(**{field: 0}, out=str(out))
    assert not out.exists()
    asked = []

    def measure_levels(model, bits, examples):  # the models' scores, without the models
        asked.append((model, examples))
        return [{"model": model, "weight_bits": b, "metric": "accuracy", "value": 1 / 3,
                 "examples": examples} for b in bits]

    monkeypatch.setattr(tool, "measure_levels", measure_levels)
    cfg = tool.QuantTableConfig(tiny_examples=3, text_windows=2)
    table = tool.measure_quant_table(cfg)
    assert asked == [("tiny", 3), ("text", 2)] and not out.exists()
    assert {r["value"] for r in table.rows} == {0.33333}
    assert all(r["command"] == tool.COMMAND for r in table.rows)
    monkeypatch.setattr(tool.torch, "set_num_threads", lambda n: asked.append(n))
    assert tool.make_quant_table(cfg, threads=1, out=str(out)) == out
    assert asked[-3] == 1  # torch threads set before the measurements
    lines = out.read_text().splitlines()
    assert lines[0] == "model,weight_bits,metric,value,examples,command"
    assert len(lines) == 1 + len(table.rows) and out.read_text() == table.csv()


def test_make_pretrained_cddm_config_refuses_bad_settings_before_any_work(
        tmp_path: Path, monkeypatch) -> None:
    """A bad setting of ``semcom make-pretrained-cddm`` names its field when the config is
    built: no work folder, no training, nothing stored."""
    import experiments.tools.make_pretrained_cddm as tool
    from jscc.pretrained import WeightStore

    monkeypatch.setattr(tool, "cddm_store", WeightStore(tmp_path / "store", kind="cddm"))
    monkeypatch.setattr(tool, "decoder_store",
                        WeightStore(tmp_path / "store", kind="cddm-decoder"))
    good = {"jscc": "adjscc_awgn_cbr1-12", "train_dir": str(tmp_path)}
    cfg = tool.PretrainedCDDMConfig(**good, stage3_snrs_db="5,10")
    assert cfg.name == "adjscc_awgn_cbr1-12_cddm" and cfg.stage3_snrs_db == (5.0, 10.0)
    work = tmp_path / "work"
    for field, bad, message in (("jscc", "nope", "no pretrained jscc model named 'nope'"),
                                ("train_dir", str(tmp_path / "none"), "train_dir .* not a"),
                                ("test_dir", str(tmp_path / "none"), "test_dir .* not a"),
                                ("steps", 0, "steps must be an int >= 1"),
                                ("stage3_lr", 0.0, "stage3_lr must be finite and > 0"),
                                ("stage3_snrs_db", [float("inf")], "stage3_snrs_db must be"),
                                ("entry", "a/b", "entry must be a name")):
        with pytest.raises(ValueError, match=message):
            tool.make_pretrained_cddm(**{**good, field: bad}, work=str(work))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
