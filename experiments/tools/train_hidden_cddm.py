"""Train the 1-D CDDM that denoises a split MoE model's hidden states on the analog link.

``semcom train-hidden-cddm --model tiny`` (writes into the shipped tiny model's folder)

1. Run the model on training prompts of its task and record what would cross the air: every
   expert input row (downlink) and every expert output row (uplink) of every MoE layer.
2. Train :class:`cddm.lightning.CDDMModule` (``net="mlp"``, AWGN) on those rows, each
   power-normalized as :class:`phy.AnalogLink` sends it.
3. Measure the channel MSE of MMSE alone and MMSE + CDDM on held-out rows, and save the EMA
   weights with the sampler settings (:func:`wdmoe_link.denoise.save_hidden_cddm`); the file
   is what ``--transport analog+cddm`` loads.

:func:`fit_hidden_cddm` turns a :class:`TrainHiddenCDDMConfig` into the trained denoiser and
its measurements (:class:`HiddenCDDMTraining`); :func:`train_hidden_cddm`, the command, saves
them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

import phy
from cddm.lightning import CDDMModule
from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.values import PositiveInt
from wdmoe_link import ArithmeticTask, SplitMoE, evaluate_accuracy, load_moe, tiny_task
from wdmoe_link.denoise import save_hidden_cddm
from wdmoe_link.routing import ExpertBank, LocalDispatcher, Routing
from wdmoe_link.tiny import TINY_DIR

__all__ = ["HiddenCDDMTraining", "TrainHiddenCDDMConfig", "collect_rows", "fit_hidden_cddm",
           "train_hidden_cddm"]

SAMPLER = {"convention": "consistent", "floor_db": None}


class RecordingDispatcher(LocalDispatcher):
    """The unsplit model, recording every expert input and output row it computes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Tensor] = []

    def moe_layer(self, layer: int, x: Tensor, routing: Routing, experts: ExpertBank) -> Tensor:
        self.layer_calls += 1
        out = torch.zeros_like(x)
        for j in range(routing.top_idx.shape[1]):
            for e in routing.top_idx[:, j].unique().tolist():
                tok = (routing.top_idx[:, j] == e).nonzero().squeeze(1)
                y = experts(int(e), x[tok])
                out.index_add_(0, tok, routing.top_w[tok, j, None].to(y.dtype) * y)
                self.rows += [x[tok].detach().float(), y.detach().float()]
        return out


def collect_rows(model: torch.nn.Module, task: ArithmeticTask) -> Tensor:
    """Expert input and output rows ``[M, D]`` of the model on ``task``."""
    rec = RecordingDispatcher()
    with SplitMoE(model, rec):
        evaluate_accuracy(model, task, dispatcher=rec, progress=True)
    return torch.cat(rec.rows)


@dataclass(frozen=True)
class TrainHiddenCDDMConfig:
    """What ``semcom train-hidden-cddm`` trains (checked when built).

    Attributes:
        model: ``tiny`` (the shipped arithmetic model) or a local HF MoE checkpoint folder.
        examples: training prompts whose expert rows are recorded.
        steps: training steps.
        batch_size: rows per step.
        width: width of the MLP noise predictor.
        lr: Adam learning rate.
        seed: seed of the prompts, the split and the training.
    """

    model: str = "tiny"
    examples: PositiveInt = 300
    steps: PositiveInt = 3000
    batch_size: PositiveInt = 256
    width: PositiveInt = 256
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("examples", "steps", "batch_size", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) \
                or not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.model, str) or not (
                self.model in ("tiny", "text") or (Path(self.model) / "config.json").is_file()):
            raise ValueError(f"model must be 'tiny', 'text' or a local checkpoint folder "
                             f"(with config.json), got {self.model!r}")


@dataclass
class HiddenCDDMTraining:
    """The training of a :class:`TrainHiddenCDDMConfig`.

    Attributes:
        config: what was trained.
        denoiser: the trained noise predictor (EMA weights).
        info: what ``cddm.json`` records: the model, the rows of the training and test split,
            the steps, the training time and ``channel_mse_db`` (per SNR in dB: the channel
            MSE in dB of MMSE alone, ``mmse``, and of MMSE + CDDM, ``cddm``).
    """

    config: TrainHiddenCDDMConfig
    denoiser: torch.nn.Module
    info: dict[str, Any]


def fit_hidden_cddm(cfg: TrainHiddenCDDMConfig) -> HiddenCDDMTraining:
    """Record the model's expert rows, train the 1-D CDDM on them and measure its channel MSE
    on held-out rows (writes nothing).

    Raises:
        ValueError: the recorded training rows are fewer than ``cfg.batch_size``.
    """
    model, examples, steps, batch_size = cfg.model, cfg.examples, cfg.steps, cfg.batch_size
    seed = cfg.seed
    torch.manual_seed(seed)
    lm = load_moe(model)
    task = (tiny_task("train", size=examples, seed=seed) if model == "tiny"
            else ArithmeticTask("train", size=examples, seed=seed, few_shot=3))
    rows = collect_rows(lm, task)
    rows = rows[torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(seed))]
    n_test = min(4096, rows.shape[0] // 5)
    test, train = rows[:n_test], rows[n_test:]
    d = rows.shape[1]
    if train.shape[0] < batch_size:
        raise ValueError(f"{train.shape[0]} training rows are fewer than batch_size="
                         f"{batch_size}; record more examples")
    print(f"recorded {rows.shape[0]} rows of size {d}: {train.shape[0]} train, {n_test} test")
    pl.seed_everything(seed, verbose=False)
    m = CDDMModule(net={"name": "mlp", "width": cfg.width}, latent_shape=(d,), channel="awgn",
                   lr=cfg.lr, ema_decay=0.995, seed=seed, **SAMPLER)
    t0 = time.perf_counter()
    pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False,
               enable_checkpointing=False, gradient_clip_val=1.0, limit_val_batches=0,
               enable_model_summary=False, enable_progress_bar=False).fit(
        m, DataLoader(TensorDataset(train), batch_size=batch_size, shuffle=True,
                      drop_last=True))
    train_s = time.perf_counter() - t0
    m.eval()
    m.build_link()
    mse = {}
    for s in (0.0, 5.0, 10.0, 15.0, 20.0):
        phy.set_seed(seed + 1)
        mse[s] = m.channel_mse(test, s)
        print(f"{s:4.0f} dB: MMSE {mse[s]['mmse']:.2f} dB, MMSE + CDDM {mse[s]['cddm']:.2f} dB")
    info = {"model": model, "rows_train": int(train.shape[0]), "rows_test": n_test,
            "steps": steps, "train_time_s": round(train_s, 1),
            "channel_mse_db": {f"{k:g}": v for k, v in mse.items()}}
    return HiddenCDDMTraining(cfg, m.denoiser, info)


def train_hidden_cddm(cfg: TrainHiddenCDDMConfig | None = None, *, out: str = str(TINY_DIR),
                      **settings: Any) -> Path:
    """Record the model's expert rows, train the 1-D CDDM on them and save it; returns the
    folder it was saved in.

    Args:
        cfg: what to train; or give its fields as keywords (``settings``).
        out: folder of ``cddm.safetensors`` and ``cddm.json`` (what ``analog+cddm`` loads).
    """
    cfg = resolve_config(TrainHiddenCDDMConfig, cfg, settings)
    fit = fit_hidden_cddm(cfg)
    save_hidden_cddm(out, fit.denoiser, SAMPLER, fit.info)
    print(json.dumps(fit.info, indent=2))
    return Path(out)


#: ``python -m experiments.tools.train_hidden_cddm`` = ``semcom train-hidden-cddm``.
main = entry_point("train-hidden-cddm")


if __name__ == "__main__":
    raise SystemExit(main())
