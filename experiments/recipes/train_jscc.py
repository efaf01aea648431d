"""``semcom train-jscc``: train a JSCC codec with LightningCLI from a YAML config.

``semcom train-jscc --config experiments/configs/images/jscc_adjscc_cpu.yaml`` runs ``fit``; any
LightningCLI option can follow (``--trainer.max_epochs 5``; ``--ckpt_path
<run>/checkpoints/last.ckpt`` resumes a run: weights, optimizer, step and elapsed time).
The run folder (``trainer.default_root_dir``) receives Lightning's ``config.yaml``,
``metrics.csv`` (CSV logger), checkpoints, and our
``manifest.json`` (versions, seed, git revision) and ``val_psnr.png``.
"""

from __future__ import annotations

from pytorch_lightning.callbacks import ModelCheckpoint

from experiments.recipes.lightning_cli import (
    FinalCheckpoint,
    ResultsCallback,
    build_cli,
    run_lightning_cli,
)
from jscc.data import ImageDataModule
from jscc.lightning import JSCCModule

__all__ = ["FinalCheckpoint", "ResultsCallback", "main", "run_lightning_cli"]


def main(args: list[str] | None = None) -> None:
    """Run LightningCLI ``fit`` with our module, data module and defaults."""
    run_lightning_cli(args, _run_cli, command="train-jscc")


def _run_cli(args: list[str]) -> None:
    build_cli(JSCCModule, ImageDataModule, args, root="results/train_jscc",
              callbacks=[ModelCheckpoint(monitor="val/psnr", mode="max", save_last=True),
                         FinalCheckpoint(), ResultsCallback()],
              deterministic=True)
