"""Train the 1-D CDDM that denoises a split MoE model's hidden states on the analog link.

``semcom train-hidden-cddm --model tiny`` (writes into the shipped tiny model's folder)

1. Run the model on training prompts of its task and record what would cross the air: every
   expert input row (downlink) and every expert output row (uplink) of every MoE layer.
2. Train :class:`cddm.lightning.CDDMModule` (``net="mlp"``, AWGN) on those rows, each
   power-normalized as :class:`phy.AnalogLink` sends it.
3. Measure the channel MSE of MMSE alone and MMSE + CDDM on held-out rows, and save the EMA
   weights with the sampler settings (:func:`wdmoe_link.denoise.save_hidden_cddm`); the file
   is what ``--transport analog+cddm`` loads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

import phy
from cddm.lightning import CDDMModule
from experiments.cli import entry_point
from experiments.values import PositiveInt
from wdmoe_link import ArithmeticTask, SplitMoE, evaluate_accuracy, load_moe, tiny_task
from wdmoe_link.denoise import save_hidden_cddm
from wdmoe_link.routing import ExpertBank, LocalDispatcher, Routing
from wdmoe_link.tiny import TINY_DIR

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


def train_hidden_cddm(*, model: str = "tiny", examples: PositiveInt = 300,
                      steps: PositiveInt = 3000, batch_size: PositiveInt = 256,
                      width: PositiveInt = 256, lr: float = 1e-3, seed: int = 0,
                      out: str = str(TINY_DIR)) -> Path:
    """Record the model's expert rows, train the 1-D CDDM on them and save it; returns the
    folder it was saved in.

    Args:
        model: ``tiny`` (the shipped arithmetic model) or a local HF MoE checkpoint folder.
        examples: training prompts whose expert rows are recorded.
        steps: training steps.
        batch_size: rows per step.
        width: width of the MLP noise predictor.
        lr: Adam learning rate.
        seed: seed of the prompts, the split and the training.
        out: folder of ``cddm.safetensors`` and ``cddm.json`` (what ``analog+cddm`` loads).
    """
    for name, v in (("examples", examples), ("steps", steps), ("batch_size", batch_size),
                    ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
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
    m = CDDMModule(net={"name": "mlp", "width": width}, latent_shape=(d,), channel="awgn",
                   lr=lr, ema_decay=0.995, seed=seed, **SAMPLER)
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
    save_hidden_cddm(out, m.denoiser, SAMPLER, info)
    print(json.dumps(info, indent=2))
    return Path(out)


#: ``python -m experiments.tools.train_hidden_cddm`` = ``semcom train-hidden-cddm``.
main = entry_point("train-hidden-cddm")


if __name__ == "__main__":
    raise SystemExit(main())
