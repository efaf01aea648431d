"""Train the 1-D CDDM that denoises a split MoE model's hidden states on the analog link.

``python -m experiments.tools.train_hidden_cddm --model tiny --out wdmoe_link/data/tiny_moe``

1. Run the model on training prompts of its task and record what would cross the air: every
   expert input row (downlink) and every expert output row (uplink) of every MoE layer.
2. Train :class:`cddm.lightning.CDDMModule` (``net="mlp"``, AWGN) on those rows, each
   power-normalized as :class:`phy.AnalogLink` sends it.
3. Measure the channel MSE of MMSE alone and MMSE + CDDM on held-out rows, and save the EMA
   weights with the sampler settings (:func:`wdmoe_link.denoise.save_hidden_cddm`); the file
   is what ``--transport analog+cddm`` loads.
"""

from __future__ import annotations

import argparse
import json
import time

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

import phy
from cddm.lightning import CDDMModule
from wdmoe_link import ArithmeticTask, SplitMoE, evaluate_accuracy, load_moe, tiny_task
from wdmoe_link.denoise import save_hidden_cddm
from wdmoe_link.routing import ExpertBank, LocalDispatcher, Routing

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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--examples", type=int, default=300, help="training prompts to record")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="wdmoe_link/data/tiny_moe")
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    model = load_moe(a.model)
    task = (tiny_task("train", size=a.examples, seed=a.seed) if a.model == "tiny"
            else ArithmeticTask("train", size=a.examples, seed=a.seed, few_shot=3))
    rows = collect_rows(model, task)
    rows = rows[torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(a.seed))]
    n_test = min(4096, rows.shape[0] // 5)
    test, train = rows[:n_test], rows[n_test:]
    d = rows.shape[1]
    print(f"recorded {rows.shape[0]} rows of size {d}: {train.shape[0]} train, {n_test} test")
    pl.seed_everything(a.seed, verbose=False)
    m = CDDMModule(net={"name": "mlp", "width": a.width}, latent_shape=(d,), channel="awgn",
                   lr=a.lr, ema_decay=0.995, seed=a.seed, **SAMPLER)
    t0 = time.perf_counter()
    pl.Trainer(max_steps=a.steps, max_epochs=-1, accelerator="cpu", logger=False,
               enable_checkpointing=False, gradient_clip_val=1.0, limit_val_batches=0,
               enable_model_summary=False).fit(
        m, DataLoader(TensorDataset(train), batch_size=a.batch_size, shuffle=True,
                      drop_last=True))
    train_s = time.perf_counter() - t0
    m.eval()
    m.build_link()
    mse = {}
    for s in (0.0, 5.0, 10.0, 15.0, 20.0):
        phy.set_seed(a.seed + 1)
        mse[s] = m.channel_mse(test, s)
        print(f"{s:4.0f} dB: MMSE {mse[s]['mmse']:.2f} dB, MMSE + CDDM {mse[s]['cddm']:.2f} dB")
    info = {"model": a.model, "rows_train": int(train.shape[0]), "rows_test": n_test,
            "steps": a.steps, "train_time_s": round(train_s, 1),
            "channel_mse_db": {f"{k:g}": v for k, v in mse.items()}}
    save_hidden_cddm(a.out, m.denoiser, SAMPLER, info)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
