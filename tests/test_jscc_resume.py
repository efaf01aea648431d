"""train-jscc runs that stop and resume follow the uninterrupted trajectory step for step."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
import yaml


def _config(root: Path, max_steps: int, **trainer) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {"max_steps": max_steps, "max_epochs": -1, "val_check_interval": 6,
                    "check_val_every_n_epoch": None, "limit_val_batches": 1,
                    "num_sanity_val_steps": 0, "log_every_n_steps": 1,
                    "accelerator": "cpu", "enable_progress_bar": False,
                    "enable_model_summary": False, "default_root_dir": str(root),
                    "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger",
                               "init_args": {"save_dir": str(root)}}, **trainer},
        "model": {"codec": {"name": "adjscc", "num_filters": 8}, "cbr": 1 / 12,
                  "train_snr_range_db": [0.0, 20.0], "val_snrs_db": [10.0], "lr": 1e-3,
                  "lr_schedule": "cosine", "lr_min": 1e-4, "lr_steps": 14},
        # 5 batches per epoch: the runs cross epoch boundaries at steps 5 and 10
        "data": {"source": "builtin", "crop": 32, "batch_size": 4, "batches_per_epoch": 5,
                 "val_max_images": 2},
    }


def _train(tmp_path: Path, name: str, max_steps: int, ckpt: Path | None = None) -> Path:
    from experiments.recipes.train_jscc import main

    root = tmp_path / name
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(_config(root, max_steps)))
    main(["--config", str(cfg)] + (["--ckpt_path", str(ckpt)] if ckpt else []))
    return root


def _losses(root: Path) -> dict[int, float]:
    out = {}
    for f in root.rglob("metrics.csv"):
        with f.open() as fh:
            for r in csv.DictReader(fh):
                if r.get("train/loss"):
                    out[int(r["step"])] = float(r["train/loss"])
    return out


def _last(root: Path) -> Path:
    return next(root.rglob("last.ckpt"))


def test_last_ckpt_holds_the_final_step_and_resumes_match(tmp_path: Path) -> None:
    full = _train(tmp_path, "full", 14)
    ck = torch.load(_last(full), map_location="cpu", weights_only=False)
    assert ck["global_step"] == 14  # not 12, the last validation
    ref = _losses(full)
    assert sorted(ref) == list(range(14))

    # stopped at step 8 (between validations, mid-epoch), then resumed to 14
    part = _train(tmp_path, "part", 8)
    assert torch.load(_last(part), map_location="cpu", weights_only=False)["global_step"] == 8
    resumed = _train(tmp_path, "resumed", 14, ckpt=_last(part))
    got = {**_losses(part), **_losses(resumed)}
    assert sorted(got) == list(range(14))
    for step in range(14):
        # same batches, SNRs, noise and learning rates: equal up to float reordering
        assert abs(got[step] - ref[step]) <= 1e-5 * ref[step], (step, got[step], ref[step])

    # resumed from the checkpoint written after the validation at step 6
    at6 = next(p for p in (part).rglob("*.ckpt") if "step=6" in p.name)
    resumed6 = _train(tmp_path, "resumed6", 14, ckpt=at6)
    got6 = _losses(resumed6)
    assert sorted(got6) == list(range(6, 14))
    for step in range(6, 14):
        assert abs(got6[step] - ref[step]) <= 1e-5 * ref[step], (step, got6[step], ref[step])
