"""Benchmark: training throughput of the Lightning paths against bare PyTorch loops.

    semcom bench-train [--steps 60] [--reps 3] [--out results]

(``python -m experiments.bench_train`` is the same command.)

Two pairs, each measured side by side in one process, alternating (bare, Lightning) ``reps``
times so that machine load hits both alike; the figure is images (or latents) per second in
steady state (the first ``warmup`` steps of every run are not timed):

* **JSCC**: ``semcom train-jscc`` (LightningCLI, :class:`jscc.lightning.JSCCModule`,
  :class:`jscc.data.ImageDataModule` with its in-memory crop batches) against a bare loop over
  the same codec, the same :class:`jscc.batches.CropBatchLoader` batches and the same
  :class:`phy.AnalogLink` (Adam, MSE, per-image SNR in 0–20 dB).
* **CDDM stage 2**: :class:`cddm.lightning.CDDMModule` under a Lightning ``Trainer`` against a
  bare loop of the same ``diffusion_loss``, AdamW, gradient clipping, cosine schedule and EMA.

Goal: Lightning ≥ 0.9× the bare loop. Writes ``bench_train.csv`` and ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

import phy
from experiments.cli import entry_point
from experiments.recipes.config import config_dict, resolve_config
from experiments.reporting.results import ResultsDir
from phy.checks import check_positive_int

__all__ = ["BenchTrainConfig", "BenchTrainResult", "StepTimer", "main", "run", "run_bench_train"]


class StepTimer(pl.Callback):
    """Records the wall time of every training step after ``warmup`` (class attribute, read
    by the benchmark after an in-process LightningCLI run)."""

    last: ClassVar[list[float]] = []

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self._t = 0.0
        StepTimer.last = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step > self.warmup:
            StepTimer.last.append(time.perf_counter() - self._t)


def _jscc_config(root: Path, steps: int, batch: int) -> dict:
    return {"seed_everything": 0,
            "trainer": {"max_steps": steps, "max_epochs": -1, "limit_val_batches": 0,
                        "num_sanity_val_steps": 0, "accelerator": "cpu", "logger": False,
                        "enable_progress_bar": False, "enable_model_summary": False,
                        "default_root_dir": str(root)},
            "model": {"codec": {"name": "adjscc", "num_filters": 64}, "cbr": 1 / 12,
                      "train_snr_range_db": [0.0, 20.0], "lr": 1e-3},
            "data": {"source": "builtin", "crop": 64, "batch_size": batch,
                     "batches_per_epoch": 1000}}


def _lightning_jscc(root: Path, steps: int, batch: int, warmup: int) -> list[float]:
    from experiments.recipes.train_jscc import main as train_main

    cfg = root / "bench_jscc.yaml"
    cfg.write_text(yaml.safe_dump(_jscc_config(root, steps, batch)))
    timer = {"class_path": "experiments.bench_train.StepTimer", "init_args": {"warmup": warmup}}
    train_main(["--config", str(cfg), f"--trainer.callbacks+={json.dumps(timer)}"])
    # the CLI imports the callback by its module path, which is not __main__ when this file runs
    # as a script
    from experiments.bench_train import StepTimer as imported

    return list(imported.last)


def _bare_jscc(steps: int, batch: int, warmup: int) -> list[float]:
    from jscc.data import ImageDataModule
    from jscc.models import build_codec

    pl.seed_everything(0, verbose=False)
    phy.set_seed(0)
    codec = build_codec("adjscc", cbr=1 / 12, num_filters=64).train()
    link = phy.AnalogLink(phy.AWGN())
    opt = torch.optim.Adam(codec.parameters(), lr=1e-3)
    loader = ImageDataModule(source="builtin", crop=64, batch_size=batch,
                             batches_per_epoch=1000).train_dataloader()
    times = []
    for i, x in enumerate(loader):
        if i == steps:
            break
        t = time.perf_counter()
        snr = 20.0 * torch.rand(x.shape[0])
        loss = torch.nn.functional.mse_loss(codec(x, link, snr), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def _cddm_module() -> Any:
    from cddm.lightning import CDDMModule

    return CDDMModule(net="unet-small:ch=16", latent_shape=(8, 16, 16),
                      channel="awgn", lr=5e-4, ema_decay=0.995, T=100, val_snrs_db=(10.0,))


def _lightning_cddm(root: Path, bank: torch.Tensor, steps: int, batch: int,
                    warmup: int) -> list[float]:
    pl.seed_everything(0, verbose=False)
    timer = StepTimer(warmup)
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, gradient_clip_val=1.0,
                         callbacks=[timer], default_root_dir=root)
    trainer.fit(_cddm_module(), DataLoader(TensorDataset(bank), batch_size=batch, shuffle=True,
                                           drop_last=True))
    return list(StepTimer.last)


def _bare_cddm(bank: torch.Tensor, steps: int, batch: int, warmup: int) -> list[float]:
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    pl.seed_everything(0, verbose=False)
    m = _cddm_module()
    m.build_link()
    ema = AveragedModel(m.net, multi_avg_fn=get_ema_multi_avg_fn(0.995), use_buffers=True)
    opt = torch.optim.AdamW(m.net.parameters(), lr=5e-4, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loader = DataLoader(TensorDataset(bank), batch_size=batch, shuffle=True, drop_last=True)
    times, i = [], 0
    while i < steps:
        for (z,) in loader:
            if i == steps:
                break
            t = time.perf_counter()
            loss = m.diffusion_loss(z)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.net.parameters(), 1.0)
            opt.step()
            sched.step()
            ema.update_parameters(m.net)
            if i >= warmup:
                times.append(time.perf_counter() - t)
            i += 1
    return times


@dataclass(frozen=True)
class BenchTrainConfig:
    """What ``semcom bench-train`` times (checked when built).

    Attributes:
        steps: training steps per run.
        warmup: first steps of every run not timed (< steps).
        reps: alternating (bare, Lightning) runs.
        jscc_batch: JSCC crops per batch.
        cddm_batch: CDDM latents per batch.
    """

    steps: int = 60
    warmup: int = 10
    reps: int = 3
    jscc_batch: int = 16
    cddm_batch: int = 32

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_positive_int(f.name, getattr(self, f.name))
        if self.steps <= self.warmup:
            raise ValueError(f"steps must exceed warmup ({self.warmup}), got {self.steps}")


@dataclass
class BenchTrainResult:
    """The timings of a :class:`BenchTrainConfig`: one row per (rep, path) with the steps
    timed, the median step time (s) and the items per second."""

    config: BenchTrainConfig
    rows: list[dict[str, Any]]

    def items_per_s(self, path: str) -> float:
        """Median over the reps of ``path``'s items/s (``jscc/bare``, ``cddm/lightning``...)."""
        return statistics.median(r["items_per_s"] for r in self.rows if r["path"] == path)


def run(cfg: BenchTrainConfig, workdir: Path, *, progress: bool = True) -> BenchTrainResult:
    """Alternate bare and Lightning training of JSCC and CDDM stage 2 ``cfg.reps`` times
    (Lightning's run folders go under ``workdir``)."""
    bank = torch.randn(1024, 8, 16, 16)
    rows = []
    steps, warmup = cfg.steps, cfg.warmup
    for rep in range(cfg.reps):
        for kind, fn in (
            ("jscc/bare", lambda: _bare_jscc(steps, cfg.jscc_batch, warmup)),
            ("jscc/lightning", lambda: _lightning_jscc(workdir, steps, cfg.jscc_batch, warmup)),
            ("cddm/bare", lambda: _bare_cddm(bank, steps, cfg.cddm_batch, warmup)),
            ("cddm/lightning", lambda: _lightning_cddm(workdir, bank, steps, cfg.cddm_batch,
                                                       warmup)),
        ):
            times = fn()
            batch = cfg.jscc_batch if kind.startswith("jscc") else cfg.cddm_batch
            rows.append({"rep": rep, "path": kind, "steps_timed": len(times),
                         "median_step_s": statistics.median(times),
                         "items_per_s": batch / statistics.median(times)})
            if progress:
                print(rows[-1])
    return BenchTrainResult(cfg, rows)


def _summary(result: BenchTrainResult) -> str:
    lines = ["# Training throughput: Lightning vs bare PyTorch (median of reps)", "",
             "| model | bare (items/s) | Lightning (items/s) | ratio |", "|---|---|---|---|"]
    for model in ("jscc", "cddm"):
        bare = result.items_per_s(f"{model}/bare")
        lit = result.items_per_s(f"{model}/lightning")
        lines.append(f"| {model} | {bare:.1f} | {lit:.1f} | {lit / bare:.3f} |")
    return "\n".join(lines) + "\n"


def run_bench_train(cfg: BenchTrainConfig | None = None, *, out: str | Path = "results",
                    progress: bool = True, **settings: Any) -> ResultsDir:
    """``semcom bench-train``: :func:`run` into ``bench_train.csv`` and ``summary.md``
    (settings checked before any folder exists).

    Args:
        cfg: what to time; or give its fields as keywords (``settings``).
        out: root folder of the results.
        progress: print each run's row and the summary.
    """
    cfg = resolve_config(BenchTrainConfig, cfg, settings)
    res = ResultsDir.create("bench_train", config_dict(cfg), 0, root=out)
    with res:
        result = run(cfg, res.path, progress=progress)
        res.write_csv("bench_train.csv", result.rows)
        text = _summary(result)
        res.write_summary(text)
    if progress:
        print(text)
    return res


#: ``python -m experiments.bench_train``: ``semcom bench-train``
main = entry_point("bench-train")


if __name__ == "__main__":
    raise SystemExit(main())
