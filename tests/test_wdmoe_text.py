"""The standard-library text corpus, its scores and the text model's resumable training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from wdmoe_link.text import TextCorpus, evaluate_text, stdlib_files
from wdmoe_link.tiny import build_tiny_model


def test_splits_are_disjoint_by_module_and_stable() -> None:
    split = {s: {p.as_posix() for p in stdlib_files(s)} for s in ("train", "val", "test")}
    assert split["train"] and split["val"] and split["test"]
    assert not (split["train"] & split["test"]) and not (split["train"] & split["val"])
    assert not (split["val"] & split["test"])
    assert all("/test/" not in p and "/idlelib/" not in p for p in split["train"])
    assert {p.as_posix() for p in stdlib_files("test")} == split["test"]
    n = sum(len(v) for v in split.values())
    assert 0.02 < len(split["test"]) / n < 0.10  # about 5 % of the modules


def test_corpus_windows_and_untrained_model_scores() -> None:
    corpus = TextCorpus("test", max_bytes=20_000)
    assert len(corpus) == 20_000 and int(corpus.ids.max()) <= 257
    g = torch.Generator().manual_seed(0)
    batch = corpus.sample(3, 32, g)
    assert batch.shape == (3, 33) and bool((batch[:, 0] == 256).all())
    w = corpus.windows(64, max_windows=5)
    assert torch.equal(w[1, 1:], corpus.ids[64:128].long())
    # an untrained model predicts close to uniformly over 259 ids: about log2(259) bits
    score = evaluate_text(build_tiny_model(seed=1, num_hidden_layers=1), corpus, length=64,
                          max_windows=4)
    assert score.num_bytes == 4 * 64
    assert abs(score.bits_per_byte - math.log2(259)) < 1.0
    assert 0.0 <= score.accuracy < 0.1


def test_text_training_resumes_on_the_same_trajectory(tmp_path: Path) -> None:
    from experiments.tools.train_text_moe import main

    common = ["--batch-size", "2", "--length", "32", "--eval-every", "2", "--eval-windows",
              "1", "--test-windows", "1", "--threads", "1"]
    main(["--steps", "4", "--out", str(tmp_path / "a"), "--results", str(tmp_path / "ra"),
          *common])
    main(["--steps", "2", "--out", str(tmp_path / "b"), "--results", str(tmp_path / "rb"),
          *common])
    run_b = next((tmp_path / "rb" / "train_text_moe").iterdir())
    # continue the 2-step run to 4 steps (the schedule is that of a 4-step run from here on)
    main(["--steps", "4", "--out", str(tmp_path / "b"), "--resume", str(run_b), *common])
    a = json.loads((tmp_path / "a" / "training.json").read_text())
    b = json.loads((tmp_path / "b" / "training.json").read_text())
    assert a["test"] == b["test"] and a["parameters"] == b["parameters"] < 10_000_000


def test_text_training_config_refuses_bad_settings_before_any_work(tmp_path: Path) -> None:
    """A bad setting of the text MoE's training names its field when the config is built,
    before any corpus, model, results folder or model folder."""
    import pytest

    from experiments.tools.train_text_moe import TrainTextMoEConfig, train_text_moe

    for field, bad, message in (("steps", 0, "steps must be an int >= 1"),
                                ("lr", 0.0, "lr must be finite and > 0"),
                                ("weight_decay", -0.1, "weight_decay must be finite and >= 0"),
                                ("length", 512, "length must be < 512")):
        with pytest.raises(ValueError, match=message):
            TrainTextMoEConfig(**{field: bad})
        with pytest.raises(ValueError, match=message):
            train_text_moe(**{field: bad}, out=tmp_path / "m", results=tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_shipped_text_model_responds_to_dropping_experts() -> None:
    """The shipped text model on held-out modules: well below the untrained ~8 bits per byte,
    and keeping only each token's best expert costs measurably more than top-2 (>= 0.05 bit
    per byte over 16 windows of 128 bytes; about 0.1 in its card)."""
    from wdmoe_link.routing import TopNDispatcher
    from wdmoe_link.split import SplitMoE, load_moe
    from wdmoe_link.tiny import TEXT_DIR

    record = json.loads((TEXT_DIR / "training.json").read_text())
    assert record["parameters"] <= 10_000_000
    size = sum(f.stat().st_size for f in TEXT_DIR.iterdir())
    assert size <= 40 * 2**20
    model = load_moe("text")
    corpus = TextCorpus("test")
    top2 = evaluate_text(model, corpus, length=128, max_windows=16)
    with SplitMoE(model, TopNDispatcher(1)) as split:
        top1 = evaluate_text(model, corpus, length=128, max_windows=16,
                             dispatcher=split.dispatcher)
    assert top2.bits_per_byte < 3.0
    assert top1.bits_per_byte > top2.bits_per_byte + 0.05
    assert top1.accuracy < top2.accuracy


def test_wdmoe_sweep_on_the_text_model_reports_bits_per_byte(tmp_path: Path) -> None:
    """``semcom wdmoe --model text``: one bits-per-byte row per configuration, a summary table
    of the text metrics only, and keeping one expert per token (wlr:1) scores worse than top-2
    on the same 4 held-out windows (0.14 bit/byte apart over 16 windows at 20 dB)."""
    import csv

    from experiments.recipes.wdmoe import run_wdmoe

    res = run_wdmoe(model="text", policies=["topk", "wlr:1"], transports=["ideal"],
                    snr_db=[20.0], limit=4, out=tmp_path, progress=False)
    folder = Path(res.path)
    with (folder / "results.csv").open() as f:
        rows = {r["policy_spec"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"topk", "wlr:1"}
    assert float(rows["wlr:1"]["bits_per_byte"]) > float(rows["topk"]["bits_per_byte"])
    assert float(rows["wlr:1"]["experts_per_token_mean"]) == 1.0
    summary = (folder / "summary.md").read_text()
    assert "bits/byte" in summary and "latency/token mean" not in summary
    assert "nan" not in summary
    assert (folder / "accuracy_vs_snr.png").is_file()


def test_tiny_training_resumes_on_the_same_trajectory(tmp_path: Path) -> None:
    """``semcom train-tiny-moe``: 2 steps then a resume to 4 equal 4 uninterrupted steps
    (the same test accuracy and validation history); a resume with other settings is
    refused with the differing key named."""
    from experiments.cli import main

    common = ["--batch_size", "4", "--eval_every", "2", "--val_size", "4", "--test_size", "4",
              "--hidden", "16", "--ffn", "16", "--layers", "1"]
    assert main(["train-tiny-moe", "--steps", "4", "--out", str(tmp_path / "a"),
                 "--results", str(tmp_path / "ra"), *common]) == 0
    assert main(["train-tiny-moe", "--steps", "2", "--out", str(tmp_path / "b"),
                 "--results", str(tmp_path / "rb"), *common]) == 0
    run_b = next((tmp_path / "rb" / "train_tiny_moe").iterdir())
    assert main(["train-tiny-moe", "--steps", "4", "--out", str(tmp_path / "b"),
                 "--resume", str(run_b), *common, "--lr", "1e-3"]) == 2  # lr differs
    assert main(["train-tiny-moe", "--steps", "4", "--out", str(tmp_path / "b"),
                 "--resume", str(run_b), *common]) == 0
    a, b = (json.loads((tmp_path / d / "training.json").read_text()) for d in "ab")
    assert a["test_accuracy"] == b["test_accuracy"]
    assert a["expert_share"] == b["expert_share"]
    hist_a = json.loads((next((tmp_path / "ra" / "train_tiny_moe").iterdir())
                         / "history.json").read_text())
    hist_b = json.loads((run_b / "history.json").read_text())
    assert [r["loss"] for r in hist_a] == [r["loss"] for r in hist_b]


def test_tiny_training_config_refuses_bad_settings_before_any_work(tmp_path: Path) -> None:
    """A bad setting of the tiny MoE's training (its task and model too) names its field
    when the config is built, before any model, results folder or model folder."""
    import pytest

    from experiments.tools.train_tiny_moe import TrainTinyMoEConfig, train_tiny_moe

    assert TrainTinyMoEConfig(digits=2).task_kwargs()["min_digits"] == 2
    for field, bad, message in (("eval_every", 0, "eval_every must be an int >= 1"),
                                ("lr", -1.0, "lr must be finite and > 0"),
                                ("aux_coef", -0.5, "aux_coef must be finite and >= 0"),
                                ("hidden", 18, "hidden must be a multiple of the 4"),
                                ("ops", "*", "ops must be a non-empty string"),
                                ("min_digits", 5, "min_digits must be an int in")):
        with pytest.raises(ValueError, match=message):
            TrainTinyMoEConfig(**{field: bad})
        with pytest.raises(ValueError, match=message):
            train_tiny_moe(**{field: bad}, out=tmp_path / "m", results=tmp_path / "r")
    assert list(tmp_path.iterdir()) == []
