"""JSCCModule and the train-jscc command: training through the PHY, checkpoints, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from jscc.data import ImageDataModule
from jscc.lightning import JSCCModule


def _trainer(root: Path, max_epochs: int) -> pl.Trainer:
    return pl.Trainer(max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=1,
                      accelerator="cpu", devices=1, default_root_dir=root,
                      logger=pl.loggers.CSVLogger(root), enable_progress_bar=False,
                      callbacks=[pl.callbacks.ModelCheckpoint(dirpath=root / "ckpt",
                                                              save_last=True)],
                      enable_model_summary=False, deterministic=True, log_every_n_steps=1)


def _module(**kw) -> JSCCModule:
    return JSCCModule(codec="deepjscc:num_filters=16", cbr=1 / 12,
                      val_snrs_db=(0.0, 20.0), lr=1e-3, **kw)


def _data() -> ImageDataModule:
    return ImageDataModule(source="builtin", crop=32, batch_size=8, crops_per_image=1)


def test_training_updates_weights_and_logs_metrics_per_snr(tmp_path: Path) -> None:
    """Plumbing of a short fit (learning itself is tested on a fixed batch in test_jscc_models)."""
    pl.seed_everything(0)
    model = _module(train_snr_range_db=(0.0, 20.0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _trainer(tmp_path, max_epochs=4)
    trainer.fit(model, _data())
    assert model.link is not None and model.link.channel.device == "cpu"
    metrics_file = next(tmp_path.rglob("metrics.csv"))
    with metrics_file.open() as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 12 and all(0 < x < 1 for x in losses)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("encoder" in k for k in changed) and any("decoder" in k for k in changed)
    val = [r for r in rows if r.get("val/psnr_20dB")]
    assert len(val) == 4 and all(r.get("val/psnr_0dB") and r.get("val/msssim_20dB") for r in val)


def test_resume_continues_from_the_saved_step(tmp_path: Path) -> None:
    pl.seed_everything(0)
    trainer = _trainer(tmp_path, max_epochs=2)
    trainer.fit(_module(), _data())
    saved = trainer.global_step
    assert saved == 6
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == saved

    steps_seen: list[int] = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            steps_seen.append(trainer.global_step)

    resumed = _trainer(tmp_path, max_epochs=3)
    resumed.callbacks.append(Probe())
    resumed.fit(_module(), _data(), ckpt_path=str(ckpt))
    assert steps_seen[0] == saved
    assert resumed.global_step == saved + 3


def test_checkpoint_round_trip_and_errors(tmp_path: Path) -> None:
    model = _module()
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(model, _data())
    loaded = JSCCModule.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not any("ldpc" in k.lower() for k in loaded.state_dict())
    with pytest.raises(ValueError, match="train_snr_range_db"):
        JSCCModule(train_snr_range_db=(10.0, 0.0))
    with pytest.raises(ValueError, match="unknown channel"):
        JSCCModule(channel="rician")
    with pytest.raises(ValueError, match="unknown codec"):
        JSCCModule(codec="bpg")


def test_train_jscc_cli_writes_a_run_folder(tmp_path: Path) -> None:
    from experiments.recipes.train_jscc import main

    root = tmp_path / "run"
    cfg = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1,
                    "accelerator": "cpu", "enable_progress_bar": False,
                    "default_root_dir": str(root),
                    "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger",
                               "init_args": {"save_dir": str(root)}}},
        "model": {"codec": {"name": "adjscc", "num_filters": 16}, "cbr": 1 / 12,
                  "train_snr_range_db": [0.0, 20.0], "val_snrs_db": [5.0, 15.0]},
        "data": {"source": "builtin", "crop": 32, "batch_size": 4, "crops_per_image": 1},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    main(["--config", str(path)])
    run = next(p.parent for p in root.rglob("metrics.csv"))
    for name in ("config.yaml", "hparams.yaml", "manifest.json", "val_psnr.png"):
        assert (run / name).is_file(), name
    assert list(run.rglob("*.ckpt"))


def test_init_from_starts_from_another_runs_codec_weights(tmp_path: Path) -> None:
    pl.seed_everything(0)
    trainer = _trainer(tmp_path, max_epochs=1)
    first = _module()
    trainer.fit(first, _data())
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    second = _module(init_from=str(ckpt))
    for k, v in first.codec.state_dict().items():
        assert torch.equal(second.codec.state_dict()[k], v), k
    with pytest.raises(ValueError, match="does not fit this codec"):
        JSCCModule(codec="deepjscc:num_filters=8", cbr=1 / 12,
                   init_from=str(ckpt))
    with pytest.raises(ValueError, match="does not exist"):
        _module(init_from=str(tmp_path / "missing.ckpt"))


def test_codec_spec_forms_build_the_same_codec() -> None:
    """A codec spec string, its YAML object form and the codec_kwargs of older checkpoints
    build the same architecture; an option given twice is refused by name."""
    forms = [dict(codec="adjscc:num_filters=8"),
             dict(codec={"name": "adjscc", "num_filters": 8}),
             dict(codec="adjscc", codec_kwargs={"num_filters": 8})]
    shapes = []
    for kw in forms:
        torch.manual_seed(0)
        m = JSCCModule(cbr=1 / 12, **kw)
        shapes.append({k: tuple(v.shape) for k, v in m.codec.state_dict().items()})
    assert shapes[0] == shapes[1] == shapes[2]
    with pytest.raises(ValueError, match=r"both set \['num_filters'\]"):
        JSCCModule(codec="adjscc:num_filters=8", codec_kwargs={"num_filters": 16})
    with pytest.raises(ValueError, match="key=value"):
        JSCCModule(codec="adjscc:8")
