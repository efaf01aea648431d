"""semcom eval-images: JSCC checkpoint vs digital baselines, results folder contents."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl

from experiments.cli import main
from jscc.data import ImageDataModule
from jscc.lightning import JSCCModule


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    pl.seed_everything(0)
    model = JSCCModule(codec="adjscc:num_filters=16", cbr=1 / 12,
                       train_snr_range_db=(0.0, 20.0), val_snrs_db=(10.0,), lr=1e-3)
    trainer = pl.Trainer(max_steps=2, limit_val_batches=1, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=root, enable_checkpointing=False)
    trainer.fit(model, ImageDataModule(source="builtin", crop=32, batch_size=4))
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_eval_images_writes_curves_for_every_method(tmp_path: Path, checkpoint: Path) -> None:
    rc = main(["eval-images", "--checkpoint", str(checkpoint), "--data", "builtin",
               "--crop", "64", "--snr-db", "0,20", "--mcs", "9,22", "--max-images", "3",
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    run = next((tmp_path / "eval_images").iterdir())
    for name in ("config.yaml", "manifest.json", "per_image.csv", "mean.csv",
                 "psnr_vs_snr.png", "summary.md"):
        assert (run / name).is_file(), name
    with (run / "mean.csv").open() as f:
        rows = list(csv.DictReader(f))
    methods = {r["method"] for r in rows}
    assert methods == {"jscc", "jpeg2000+ldpc/MCS9", "jpeg2000+ldpc/MCS22",
                       "jpeg2000+ldpc/best-mcs", "jpeg2000+capacity"}
    with (run / "per_image.csv").open() as f:
        per_image = list(csv.DictReader(f))
    # 64x64 at CBR 1/12 = 1024 channel uses: one MCS-9 block (1024 bits) cannot hold the
    # ~163-byte minimum JPEG2000 stream, so it is reported as too small, never as an image.
    assert {r["status"] for r in per_image if r["method"] == "jpeg2000+ldpc/MCS9"} == \
        {"budget_too_small"}
    cap = {float(r["snr_db"]): float(r["psnr"]) for r in rows
           if r["method"] == "jpeg2000+capacity"}
    assert cap[20.0] > cap[0.0]


def test_eval_images_hevc_and_avif_baselines(tmp_path: Path) -> None:
    assert main(["eval-images", "--cbr", "0.0833", "--crop", "64", "--max-images", "2",
                 "--snr-db", "0,15", "--mcs", "13", "--baselines", "hevc+ldpc,avif+capacity",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    run = next((tmp_path / "eval_images").iterdir())
    with (run / "mean.csv").open() as f:
        rows = {(r["method"], float(r["snr_db"])): r for r in csv.DictReader(f)}
    assert {m for m, _ in rows} == {"hevc+ldpc/MCS13", "hevc+ldpc/best-mcs", "avif+capacity"}
    # 16QAM R = 0.6 fails at 0 dB and arrives at 15 dB; the capacity budget grows with SNR
    assert float(rows[("hevc+ldpc/MCS13", 0.0)]["delivered"]) == 0.0
    assert float(rows[("hevc+ldpc/MCS13", 15.0)]["delivered"]) == 1.0
    cap = [float(rows[("avif+capacity", s)]["psnr"]) for s in (0.0, 15.0)]
    assert cap[1] > cap[0]
    summary = (run / "summary.md").read_text()
    assert "hevc+ldpc/best-mcs" in summary and "avif+capacity" in summary


def test_eval_images_resume_gives_the_uninterrupted_rows(tmp_path: Path,
                                                        checkpoint: Path) -> None:
    """Rows stream per (system, SNR); a run resumed from a folder holding part of them writes
    the same per-image table as one full run."""
    common = ["eval-images", "--checkpoint", str(checkpoint), "--crop", "64",
              "--max-images", "2", "--mcs", "9", "--no-progress"]
    assert main([*common, "--snr-db", "0,10", "--out", str(tmp_path / "full")]) == 0
    assert main([*common, "--snr-db", "0", "--out", str(tmp_path / "part")]) == 0
    part = next((tmp_path / "part" / "eval_images").iterdir())
    assert main([*common, "--snr-db", "0,10", "--out", str(tmp_path / "resumed"),
                 "--resume", str(part)]) == 0

    def read(root: Path) -> list[dict]:
        with (next((root / "eval_images").iterdir()) / "per_image.csv").open() as f:
            return list(csv.DictReader(f))

    full = read(tmp_path / "full")
    assert len(full) == 2 * 2 * 3  # SNRs x images x (jscc, MCS 9, capacity)
    assert read(tmp_path / "part") == full  # resumed in place
    assert not (tmp_path / "resumed").exists()
    assert main([*common, "--out", str(tmp_path), "--resume", str(tmp_path)]) == 2
    assert main([*common, "--snr-db", "0,10", "--channel", "rayleigh", "--resume",
                 str(part)]) == 2  # another channel than the folder's run


def test_eval_images_imperfect_csi_lowers_the_curves(tmp_path: Path) -> None:
    """Rayleigh with sigma_h = 0.3: the pretrained JSCC loses PSNR at 20 dB against perfect
    CSI (same seed, 4 built-in 64x64 crops)."""
    from experiments.recipes.eval_images import run_eval_images

    def jscc_psnr(sd: float, root: Path) -> float:
        res = run_eval_images(checkpoint="pretrained:adjscc_awgn_cbr1-12", channel="rayleigh",
                              snr_db=[20.0], baselines=[], max_images=4, out=root,
                              csi_error_std=sd, progress=False)
        with (res.path / "mean.csv").open() as f:
            return float(next(csv.DictReader(f))["psnr"])

    perfect, noisy = jscc_psnr(0.0, tmp_path / "a"), jscc_psnr(0.3, tmp_path / "b")
    assert noisy < perfect - 0.5, (perfect, noisy)


def test_eval_images_errors(tmp_path: Path, capsys) -> None:
    assert main(["eval-images", "--checkpoint", str(tmp_path / "none.ckpt"),
                 "--out", str(tmp_path)]) == 2
    assert "checkpoint" in capsys.readouterr().err
    assert main(["eval-images", "--cbr", "0.0833", "--baselines", "bpg",
                 "--out", str(tmp_path)]) == 2
    assert main(["eval-images", "--out", str(tmp_path)]) == 2  # no checkpoint and no cbr


def test_eval_images_learned_baselines(tmp_path: Path) -> None:
    from experiments.tools.train_hyperprior import make_datasets, train_ladder
    from jscc.baselines.learned import save_ladder

    train, _ = make_datasets("builtin", 64, num_crops=80, seed=0)
    models = train_ladder([0.002, 0.05], train, batch_size=4, progress=False, N=16, M=16,
                          steps=20)
    ladder = tmp_path / "ladder.pt"
    save_ladder(models, ladder, lambdas=[0.002, 0.05])
    rc = main(["eval-images", "--cbr", str(1 / 6), "--data", "builtin", "--crop", "64",
               "--snr-db", "-10,30", "--mcs", "22", "--max-images", "2",
               "--baselines", "learned+ldpc,learned+capacity", "--ladder", str(ladder),
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    run = next((tmp_path / "eval_images").iterdir())
    with (run / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    status = {(r["method"], float(r["snr_db"])): r["status"] for r in rows}
    assert status[("learned+ldpc/MCS22", -10.0)] == "lost"
    assert status[("learned+ldpc/MCS22", 30.0)] == "ok"
    assert main(["eval-images", "--cbr", "0.1", "--baselines", "learned+ldpc",
                 "--out", str(tmp_path)]) == 2  # no ladder


@pytest.mark.parametrize("kwargs,message", [({"crop": 7}, "multiples of 4"),
                                            ({"snr_db": [500.0]}, "snr_db must be")])
def test_rejected_runs_leave_no_results_folder(tmp_path, kwargs, message) -> None:
    from experiments.recipes.eval_images import run_eval_images

    args = {"checkpoint": "pretrained:adjscc_awgn_cbr1-12", "crop": 32, "max_images": 1,
            "baselines": [], "out": tmp_path, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        run_eval_images(**args)
    assert not any(tmp_path.iterdir())


def test_registry_systems_beside_the_checkpoint(tmp_path: Path) -> None:
    """``--systems`` evaluates image systems of the jscc.systems registry beside the JSCC
    checkpoint: ``jscc+cddm`` is built per SNR (the stage-3 decoder nearest to it) and scores
    exactly what the registry's system scores with the same seed; a separate system keeps
    its spec as the curve's name; an unknown system is refused before any folder exists."""
    import phy
    from experiments.recipes.eval_images import load_images
    from jscc.systems import build_system

    args = ["eval-images", "--checkpoint", "pretrained:adjscc_awgn_cbr1-12", "--data",
            "builtin", "--crop", "64", "--max_images", "2", "--snr_db", "5,15",
            "--baselines", "none", "--progress", "false"]
    assert main([*args, "--systems", "jscc+cddm,hevc+capacity", "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "eval_images").iterdir()
    with open(run / "mean.csv") as f:
        mean = {(r["method"], float(r["snr_db"])): float(r["psnr"]) for r in csv.DictReader(f)}
    assert {m for m, _ in mean} == {"jscc", "jscc+cddm", "hevc+capacity"}
    images = load_images("builtin", 64, 2)
    for s in (5.0, 15.0):
        phy.set_seed(phy.derived_seed(0, "jscc+cddm", s))
        direct = build_system("jscc+cddm", channel=phy.AWGN(), cbr=1 / 12, snr_db=s)
        want = float(direct.transmit(images, s).psnr.mean())
        assert abs(mean[("jscc+cddm", s)] - want) < 1e-6
    bad = tmp_path / "bad"
    assert main([*args, "--systems", "jpeg3000+ldpc", "--out", str(bad)]) == 2
    assert not bad.exists()
