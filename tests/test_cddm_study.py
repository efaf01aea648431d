"""experiments.recipes.cddm_decoder_study on photos the test makes: every system is scored, the
results folder holds its CSV and summary, and bad arguments are refused before it exists."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.recipes.cddm_decoder_study import main


def _photos(root: Path, n: int, size: int, seed: int) -> Path:
    """Smooth random colour images (a few blobs), like small photos."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        img = np.zeros((size, size, 3))
        for _ in range(6):
            cx, cy, r = rng.uniform(0, 1, 3)
            img += rng.uniform(0, 1, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2)
                                                  / (0.05 + 0.2 * r))[..., None]
        Image.fromarray((255 * img / img.max()).astype(np.uint8)).save(root / f"p{i}.png")
    return root


def test_study_scores_every_system(tmp_path: Path) -> None:
    train = _photos(tmp_path / "train", 2, 160, 0)
    test = _photos(tmp_path / "test", 2, 256, 1)
    assert main(["--train-dir", str(train), "--test-dir", str(test), "--crops", "64",
                 "--steps", "3", "--max-images", "1", "--out", str(tmp_path / "out")]) == 0
    (run,) = (tmp_path / "out" / "cddm_decoder_study").iterdir()
    rows = list(csv.DictReader((run / "study.csv").open()))
    assert [r["system"] for r in rows] == [
        "jscc", "jscc+cddm, stage-1 decoder", "jscc+cddm, decoder re-trained on CDDM output",
        "jscc, decoder re-trained on MMSE output"]
    assert all(math.isfinite(float(r["psnr"])) and float(r["psnr"]) > 10 for r in rows)
    assert "vs jscc" in (run / "summary.md").read_text()


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--crops", "0"], ["--snr-db", "500"],
                                 ["--lr", "0"]])
def test_bad_arguments_leave_no_results_folder(tmp_path: Path, bad: list[str]) -> None:
    assert main(["--train-dir", str(tmp_path), "--test-dir", str(tmp_path), "--out",
                 str(tmp_path / "out"), *bad]) == 2
    assert not (tmp_path / "out").exists()


def test_bench_cddm_is_a_semcom_command(tmp_path: Path) -> None:
    """``semcom bench-cddm`` on a few photos with the shipped ADJSCC: channel MSE rows for
    both sampler variants with CDDM's MMSE equal to the closed form's order, the PSNR
    evaluation in a sub-folder; a resume with the same settings skips the trained stages, one
    with other settings is refused, and bad settings leave no folder."""
    from experiments.cli import main as semcom

    train = _photos(tmp_path / "train", 2, 96, 0)
    test = _photos(tmp_path / "test", 2, 64, 1)
    args = ["--jscc", "pretrained:adjscc_awgn_cbr1-12", "--train_dir", str(train),
            "--test_dir", str(test), "--crop", "32", "--crops_per_image", "2", "--steps", "2",
            "--batch_size", "2", "--width", "8", "--snr_db", "5,10", "--stage3_snr", "10",
            "--stage3_crops", "2", "--stage3_epochs", "1", "--mcs", "5", "--channels", "awgn"]
    assert semcom(["bench-cddm", *args, "--out", str(tmp_path / "out")]) == 0
    (run,) = (tmp_path / "out" / "bench_cddm").iterdir()
    (mse,) = (run / "bench_cddm_mse").iterdir()
    rows = list(csv.DictReader((mse / "channel_mse.csv").open()))
    assert [(r["variant"], r["snr_db"]) for r in rows] == [
        ("official", "5.0"), ("official", "10.0"), ("consistent", "5.0"), ("consistent", "10.0")]
    for r in rows:  # the simulated MMSE error follows the closed form within 0.5 dB
        assert abs(float(r["mse_mmse_db"]) - float(r["theory_mmse_db"])) < 0.5
    assert (run / "checkpoints" / "stage3_awgn_10dB.ckpt").is_file()
    assert any((run / "eval_cddm").iterdir())
    stamp = (run / "checkpoints" / "cddm_awgn.ckpt").stat().st_mtime_ns
    assert semcom(["bench-cddm", *args, "--resume", str(run)]) == 0
    assert (run / "checkpoints" / "cddm_awgn.ckpt").stat().st_mtime_ns == stamp
    assert semcom(["bench-cddm", *args[:-2], "--channels", "awgn,rayleigh", "--resume",
                   str(run)]) == 2
    bad = tmp_path / "bad"
    assert semcom(["bench-cddm", *args, "--encoder_snr_range", "20,0", "--out", str(bad)]) == 2
    assert semcom(["bench-cddm", *args, "--channels", "tdl-z", "--out", str(bad)]) == 2
    assert not bad.exists()


def test_bench_cddm_stage3_on_rayleigh_with_imperfect_csi(tmp_path: Path) -> None:
    """Stage 3 on per-symbol Rayleigh: a decoder per SNR, then one PSNR evaluation per
    channel-estimate error, each recording its channel and error."""
    import yaml

    from experiments.cli import main as semcom

    train = _photos(tmp_path / "train", 2, 96, 0)
    test = _photos(tmp_path / "test", 2, 64, 1)
    args = ["--jscc", "pretrained:adjscc_awgn_cbr1-12", "--train_dir", str(train),
            "--test_dir", str(test), "--crop", "32", "--crops_per_image", "2", "--steps", "2",
            "--batch_size", "2", "--width", "8", "--snr_db", "10", "--stage3_snr", "10",
            "--stage3_crops", "2", "--stage3_epochs", "1", "--channels", "rayleigh",
            "--stage3_channels", "rayleigh", "--csi_error_std", "0,0.1", "--baselines", "none"]
    assert semcom(["bench-cddm", *args, "--out", str(tmp_path / "out")]) == 0
    (run,) = (tmp_path / "out" / "bench_cddm").iterdir()
    assert (run / "checkpoints" / "stage3_rayleigh_10dB.ckpt").is_file()
    evals = sorted((run / "eval_cddm").iterdir())
    configs = [yaml.safe_load((e / "config.yaml").read_text()) for e in evals]
    assert sorted((c["channel"], c["csi_error_std"]) for c in configs) == [
        ("rayleigh", 0.0), ("rayleigh", 0.1)]
    for e in evals:
        methods = {r["method"] for r in csv.DictReader((e / "mean.csv").open())}
        assert {"jscc", "jscc+cddm", "jscc+cddm+redecoder"} <= methods
    assert semcom(["bench-cddm", *args, "--csi_error_std", "1.5",
                   "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_decoder_study_on_another_channel_needs_its_cddm() -> None:
    """The shipped CDDM is for AWGN: another channel needs a stage-2 checkpoint of its own,
    and an unknown channel is refused, both when the config is built."""
    from experiments.recipes.cddm_decoder_study import CDDMDecoderStudyConfig

    with pytest.raises(ValueError, match="cddm_checkpoint"):
        CDDMDecoderStudyConfig(train_dir="a", test_dir="b", channel="rayleigh")
    with pytest.raises(ValueError, match="channel"):
        CDDMDecoderStudyConfig(train_dir="a", test_dir="b", channel="tdl-a")
