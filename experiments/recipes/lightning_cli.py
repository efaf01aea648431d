"""The LightningCLI pieces the training subcommands share (``semcom train-jscc``,
``semcom train-cddm``): the callbacks every run gets, the ``fit`` entry with safe checkpoint
loading and DDP-proof ``sys.argv``, and one builder of the CLI with the project's defaults."""

from __future__ import annotations

import csv
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import lazy_instance
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger

from experiments.reporting.plots import finish_axes
from experiments.reporting.results import _git_revision, _package_versions, atomic_write_text

__all__ = ["FinalCheckpoint", "ResultsCallback", "build_cli", "run_lightning_cli"]


class FinalCheckpoint(pl.Callback):
    """Saves ``last.ckpt`` (next to the trainer's ModelCheckpoint files) when training ends.

    ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only when it checkpoints, i.e.
    after a validation; a run whose ``max_steps`` is not a multiple of ``val_check_interval``
    would leave ``last.ckpt`` behind its final step. This writes it at the final step, with the
    loop, loader and RNG states, so ``--ckpt_path last.ckpt`` with a larger ``max_steps``
    continues the run.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cb = trainer.checkpoint_callback
        dirpath = getattr(cb, "dirpath", None)
        if dirpath is None:
            return
        trainer.save_checkpoint(Path(dirpath) / "last.ckpt")


class ResultsCallback(pl.Callback):
    """Writes ``manifest.json`` at the start and a metric-vs-epoch plot at the end of ``fit``.

    Args:
        prefix: logged metrics whose names start with it are plotted, one line each.
        ylabel: the plot's y label.
        filename: the PNG written into the run folder.
    """

    def __init__(self, prefix: str = "val/psnr_", ylabel: str = "validation PSNR (dB)",
                 filename: str = "val_psnr.png") -> None:
        self.prefix, self.ylabel, self.filename = prefix, ylabel, filename

    def _dir(self, trainer: pl.Trainer) -> Path:
        """The run folder; ``trainer.log_dir`` broadcasts under DDP, so all ranks must call."""
        return Path(trainer.log_dir or trainer.default_root_dir)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        d = self._dir(trainer)  # collective under DDP: every rank asks
        if trainer.global_rank != 0:
            return
        d.mkdir(parents=True, exist_ok=True)
        manifest = {"versions": _package_versions(), "git_revision": _git_revision(),
                    "torch_num_threads": torch.get_num_threads(),
                    "seed": int(pl_module.hparams.get("seed", 0)),
                    "device": str(pl_module.device), "hparams": dict(pl_module.hparams)}
        atomic_write_text(d / "manifest.json", json.dumps(manifest, indent=2, default=str))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        d = self._dir(trainer)  # collective under DDP: every rank asks
        if trainer.global_rank != 0:
            return
        metrics = d / "metrics.csv"
        if not metrics.exists():
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with metrics.open() as f:
            rows = list(csv.DictReader(f))
        keys = [k for k in (rows[0] if rows else {}) if k.startswith(self.prefix)]
        fig, ax = plt.subplots(figsize=(6, 4))
        for k in keys:
            pts = [(int(r["epoch"]), float(r[k])) for r in rows if r.get(k)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=k[len(self.prefix):])
        finish_axes(ax, "epoch", self.ylabel, legend={"title": "SNR"})
        fig.tight_layout()
        fig.savefig(d / self.filename, dpi=120)
        plt.close(fig)


def run_lightning_cli(args: list[str] | None, run: Callable[[list[str]], None],
                      command: str | None = None) -> None:
    """``run(args)`` with ``fit`` as the default subcommand.

    LightningCLI parses ``args``. With ``command`` (``"train-jscc"``, ``"train-cddm"``) the
    process's ``sys.argv`` is set to the full ``semcom <command> ...`` line while it runs: DDP
    starts its other ranks by re-running ``sys.argv``, so every rank parses the same
    configuration. LightningCLI's warning about ``args`` next to ``sys.argv`` options is
    silenced: both hold the same options on purpose.
    """
    args = list(args or [])
    if not args or args[0] not in ("fit", "validate", "test", "predict"):
        args = ["fit", *args]
    if not any(a == "--weights_only" or a.startswith("--weights_only=") for a in args):
        # a resumed checkpoint holds tensors, numbers and strings only: load it without
        # running pickled code (a checkpoint from elsewhere cannot execute anything)
        args = [args[0], "--weights_only=true", *args[1:]]
    argv = sys.argv
    sys.argv = [argv[0], command, *args] if command else argv[:1]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
            run(args)
    finally:
        sys.argv = argv


def build_cli(model: type, data: type, args: list[str], *, root: str,
              callbacks: Sequence[pl.Callback], subclass_mode: bool = False,
              **trainer_defaults: Any) -> LightningCLI:
    """LightningCLI over ``model`` and ``data`` with the project's defaults: seed 0, the run
    folder and CSV logger under ``root``, ``callbacks`` always present (whatever a config
    adds), Lightning's ``config.yaml`` overwritten on resume; ``subclass_mode``: any
    LightningModule / LightningDataModule named by ``class_path``."""
    return LightningCLI(
        model, data, subclass_mode_model=subclass_mode, subclass_mode_data=subclass_mode,
        args=args, seed_everything_default=0, save_config_kwargs={"overwrite": True},
        trainer_defaults={"default_root_dir": root,
                          "logger": lazy_instance(CSVLogger, save_dir=root),
                          "callbacks": list(callbacks), **trainer_defaults})
