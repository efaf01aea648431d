"""``semcom train-cddm``: CDDM stages 2 and 3 with LightningCLI from a YAML config.

``semcom train-cddm --config experiments/configs/cddm/cddm_stage2_cpu.yaml`` trains the noise
predictor (:class:`cddm.lightning.CDDMModule`); a config whose ``model.class_path`` is
:class:`cddm.lightning.DecoderStage3Module` re-trains the JSCC decoder with CDDM in the loop.
Stage 1 is ``semcom train-jscc`` with the codec trained 3 dB above the test SNR
(``experiments/configs/cddm/cddm_stage1_cpu.yaml``). Any LightningCLI option can follow
(``--trainer.max_steps 200``); ``--ckpt_path <run>/checkpoints/last.ckpt`` resumes a run.
The run folder receives Lightning's ``config.yaml``, ``metrics.csv``, checkpoints (the last one
is always kept), ``manifest.json`` and a validation plot.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from experiments.recipes.lightning_cli import (
    FinalCheckpoint,
    ResultsCallback,
    build_cli,
    run_lightning_cli,
)

__all__ = ["main"]


def main(args: list[str] | None = None) -> None:
    """Run LightningCLI ``fit`` over any CDDM stage module and data module."""
    run_lightning_cli(args, _run_cli, command="train-cddm")


def _run_cli(args: list[str]) -> None:
    build_cli(pl.LightningModule, pl.LightningDataModule, args, root="results/train_cddm",
              callbacks=[ModelCheckpoint(save_last=True), FinalCheckpoint(),
                         ResultsCallback(prefix="val/mse_cddm_",
                                         ylabel="channel MSE after CDDM (dB)",
                                         filename="val_mse.png")],
              subclass_mode=True, gradient_clip_val=1.0)
