"""What the trainers of the two shipped MoE language models share (``semcom train-tiny-moe``,
``semcom train-text-moe``): the optimiser, the learning-rate schedule, the resumable training
loop and the atomic save of a ``save_pretrained`` folder.

The loop is a plain PyTorch loop rather than Lightning: the models are a few million parameters
trained on one CPU core for minutes, each step draws its batch from a seeded sampler whose state
goes into the checkpoint, and a resumed run must continue the uninterrupted trajectory exactly
(tested), which this loop guarantees with a few lines.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from experiments.reporting.results import ResultsDir, atomic_write_bytes, atomic_write_text

__all__ = ["adamw", "finish_run", "lr_at", "save_model_dir", "train_loop"]


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10 % of ``lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))


def adamw(model: torch.nn.Module, lr: float, weight_decay: float,
          betas: tuple[float, float]) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (not on embeddings, norms and biases)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas)


def train_loop(model: torch.nn.Module, opt: torch.optim.Optimizer, run: ResultsDir, *,
               resuming: bool, steps: int, lr: float, warmup: int, eval_every: int,
               forward: Callable[[], Any], evaluate: Callable[[Any, float], dict[str, Any]],
               sampler_state: Callable[[], Any], set_sampler_state: Callable[[Any], None],
               smoothing: tuple[float, float], postfix: Callable[[Any, float], dict[str, str]]
               ) -> tuple[list[dict[str, Any]], float]:
    """Train to ``steps`` optimiser steps and return ``(history, training seconds)``.

    Every step sets the learning rate (:func:`lr_at`), runs ``forward()`` (the model's output
    on the next batch, with ``.loss``), clips the gradient norm to 1 and steps. Every
    ``eval_every`` steps and at the end, ``evaluate(output, smoothed loss)`` gives the row
    appended to the history (after ``step`` and ``elapsed_s``), and the checkpoint
    ``run.path / "checkpoint.pt"`` (model, optimiser, step, history, the batch sampler's and
    torch's RNG states, the smoothed loss) is replaced atomically. ``resuming``: start from
    that checkpoint, which continues the uninterrupted run exactly. The smoothed loss is
    ``a * previous + b * loss`` with ``(a, b) = smoothing``.
    """
    from tqdm.auto import tqdm

    ckpt = run.path / "checkpoint.pt"
    step, history, loss_avg = 0, [], math.nan
    if resuming:
        if not ckpt.is_file():
            raise ValueError(f"resume {str(run.path)!r}: no checkpoint.pt there")
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, history, loss_avg = state["step"], state["history"], state["loss_avg"]
        set_sampler_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {ckpt} at step {step}", file=sys.stderr)
    t0 = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    model.train()
    bar = tqdm(total=steps, initial=step, desc="train", unit="step")
    while step < steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        out = forward()
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss = float(out.loss.detach())
        loss_avg = loss if math.isnan(loss_avg) else smoothing[0] * loss_avg + smoothing[1] * loss
        bar.update(1)
        bar.set_postfix(**postfix(out, loss_avg))
        if step % eval_every == 0 or step == steps:
            model.eval()
            row = {"step": step, "elapsed_s": round(time.perf_counter() - t0, 1),
                   **evaluate(out, loss_avg)}
            model.train()
            history.append(row)
            bar.write(json.dumps(row))
            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "sampler": sampler_state(), "torch_rng": torch.get_rng_state(),
                        "history": history, "loss_avg": loss_avg}, buf)
            atomic_write_bytes(ckpt, buf.getvalue())
    bar.close()
    return history, time.perf_counter() - t0


def finish_run(run: ResultsDir, record: dict[str, Any], history: list[dict[str, Any]],
               title: str) -> None:
    """Write the run's ``training.json`` (``record``), ``history.csv`` and summary, and print
    the record."""
    atomic_write_text(run.path / "training.json", json.dumps(record, indent=2) + "\n")
    lines = [f"{k}: {v}" for k, v in record.items()]
    print("\n".join(lines))
    run.write_csv("history.csv", history)
    run.write_summary(f"# {title}\n\n" + "\n".join(f"- {x}" for x in lines))


def save_model_dir(model: Any, out: Path, record: dict[str, Any],
                   max_shard_size: str | None = None) -> list[str]:
    """``save_pretrained`` into a temporary sibling folder, then move its files into ``out``.

    Each file is replaced atomically; ``training.json`` goes last, so it is present only next
    to complete weights. Weight files of an earlier save that this one does not rewrite (a
    single file replaced by shards, or the reverse) are removed; other files in ``out`` (e.g.
    a denoiser trained on this model's hidden states) are kept and their names returned, since
    they were made for the previous weights. ``max_shard_size`` (e.g. ``"7MB"``) splits the
    weights into shards with an index, as ``save_pretrained`` does.
    """
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
        model.save_pretrained(tmp, safe_serialization=True, **kwargs)
        (tmp / "generation_config.json").unlink(missing_ok=True)
        (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        names = sorted(f.name for f in tmp.iterdir() if f.name != "training.json")
        (out / "training.json").unlink(missing_ok=True)
        for old in out.glob("model*.safetensors*"):
            if old.name not in names:
                old.unlink()
        for name in [*names, "training.json"]:
            (tmp / name).chmod(0o644)
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(f.name for f in out.iterdir() if f.name not in {*names, "training.json"})
