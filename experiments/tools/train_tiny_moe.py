"""Train the tiny Mixtral-architecture model shipped in ``wdmoe_link/data/tiny_moe/``.

The model (:data:`wdmoe_link.tiny.TINY_CONFIG`: byte vocabulary, 8 experts, top-2) learns
:class:`wdmoe_link.tasks.ArithmeticTask` with :data:`wdmoe_link.tiny.TINY_TASK` settings from
examples generated on the fly (the held-out ``val`` / ``test`` problems are never drawn). The
loss is the cross-entropy of the answer and EOS tokens plus Mixtral's load-balancing loss
(``router_aux_loss_coef``), so that all experts are used and dropping one changes the output.

CPU only, a fixed number of steps (results do not depend on machine load), seeded. A checkpoint
(model, optimiser, step, RNG states) is written atomically every ``--eval-every`` steps into the
results folder; ``--resume FOLDER`` continues from it. At the end the model is evaluated on the
``test`` split (clean, and with every token keeping only its best expert) and saved with
``save_pretrained`` together with ``training.json`` (each file replaced atomically,
``training.json`` last; other files in ``--out`` are kept).

    python -m experiments.tools.train_tiny_moe                       # ~9 min on one CPU core
    python -m experiments.tools.train_tiny_moe --steps 200 --out /tmp/tiny   # a quick check
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from experiments.reporting.results import ResultsDir, atomic_write_bytes, atomic_write_text
from wdmoe_link.routing import TopNDispatcher
from wdmoe_link.split import SplitMoE
from wdmoe_link.tasks import ArithmeticTask, ByteTokenizer, Example, evaluate_accuracy
from wdmoe_link.tiny import TINY_CONFIG, TINY_DIR, TINY_TASK, tiny_config

TOK = ByteTokenizer()


def make_batch(examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    """Right-padded ``BOS prompt answer EOS`` sequences; labels only on answer and EOS tokens."""
    seqs, labels = [], []
    for ex in examples:
        prompt = TOK.encode(ex.prompt, add_bos=True)
        answer = TOK.encode(ex.answer, add_bos=False, add_eos=True)
        seqs.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), TOK.pad_id, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, y) in enumerate(zip(seqs, labels, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(y)] = torch.tensor(y)
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "labels": lab, "attention_mask": mask}


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10 % of ``lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))


def expert_usage(model: Any, batch: dict[str, torch.Tensor]) -> list[float]:
    """Share of top-k picks per expert over all layers on ``batch`` (sums to 1)."""
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    output_router_logits=True)
    k = model.config.num_experts_per_tok
    mask = batch["attention_mask"].reshape(-1).bool()
    counts = torch.zeros(model.config.num_local_experts)
    for logits in out.router_logits:
        idx = logits[mask].topk(k, dim=-1).indices.reshape(-1)
        counts += torch.bincount(idx, minlength=counts.numel()).float()
    return (counts / counts.sum()).tolist()


def save_checkpoint(path: Path, model: Any, opt: torch.optim.Optimizer, step: int,
                    rng: random.Random, history: list[dict[str, Any]]) -> None:
    buf = io.BytesIO()
    torch.save({
        "model": model.state_dict(), "opt": opt.state_dict(), "step": step,
        "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "history": history,
    }, buf)
    atomic_write_bytes(path, buf.getvalue())


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


def top1_accuracy(model: Any, task: ArithmeticTask, batch_size: int) -> float:
    with SplitMoE(model, TopNDispatcher(1)):
        return evaluate_accuracy(model, task, progress=False, batch_size=batch_size).accuracy


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps (default 3000)")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per step")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--aux-coef", type=float, default=TINY_CONFIG["router_aux_loss_coef"],
                   help="weight of the router load-balancing loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between val evaluations")
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--digits", type=int, default=TINY_TASK["digits"], help="operand digits")
    p.add_argument("--ops", default=TINY_TASK["ops"], help="operators, over '+-'")
    p.add_argument("--min-digits", type=int, default=None,
                   help="shortest operand (default: --digits, fixed width)")
    p.add_argument("--hidden", type=int, default=TINY_CONFIG["hidden_size"])
    p.add_argument("--ffn", type=int, default=TINY_CONFIG["intermediate_size"])
    p.add_argument("--layers", type=int, default=TINY_CONFIG["num_hidden_layers"])
    p.add_argument("--out", type=Path, default=TINY_DIR, help="model folder to (re)write")
    p.add_argument("--results", default="results", help="results root folder")
    p.add_argument("--resume", type=Path, default=None,
                   help="results folder of an interrupted run to continue")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "warmup", "eval_every", "val_size", "test_size",
                 "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm.auto import tqdm
    from transformers import MixtralForCausalLM

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    overrides = {"hidden_size": args.hidden, "intermediate_size": args.ffn,
                 "num_hidden_layers": args.layers, "router_aux_loss_coef": args.aux_coef}
    model = MixtralForCausalLM(tiny_config(**overrides))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    task_kwargs = {**TINY_TASK, "digits": args.digits, "ops": args.ops,
                   "min_digits": args.digits if args.min_digits is None else args.min_digits}
    train_task = ArithmeticTask(split="train", size=0, seed=args.seed, **task_kwargs)
    val_task = ArithmeticTask(split="val", size=args.val_size, seed=args.seed, **task_kwargs)
    test_task = ArithmeticTask(split="test", size=args.test_size, seed=args.seed, **task_kwargs)
    rng = random.Random(f"train-{args.seed}")
    usage_batch = make_batch(ArithmeticTask(split="val", size=256, seed=args.seed + 1,
                                            **task_kwargs).examples)

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.update(model=tiny_config(**overrides).to_dict(), task=task_kwargs)
    step, history = 0, []
    rd = ResultsDir.create("train_tiny_moe", config, seed=args.seed, root=args.results) \
        if args.resume is None else None
    run_dir = Path(rd.path) if rd is not None else args.resume
    ckpt = run_dir / "checkpoint.pt"
    if args.resume is not None:
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, history = state["step"], state["history"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {ckpt} at step {step}", file=sys.stderr)

    t0 = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="train", unit="step")
    loss_avg = float("nan")
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        batch = make_batch(train_task.sample(rng, args.batch_size))
        out = model(**batch, output_router_logits=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss = float(out.loss.detach())
        loss_avg = loss if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * loss
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.4f}", aux=f"{float(out.aux_loss):.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            acc = evaluate_accuracy(model, val_task, progress=False, batch_size=500).accuracy
            usage = expert_usage(model, usage_batch)
            model.train()
            row = {"step": step, "elapsed_s": round(time.perf_counter() - t0, 1),
                   "loss": round(loss_avg, 5), "aux_loss": round(float(out.aux_loss), 5),
                   "val_accuracy": acc, "max_expert_share": round(max(usage), 4),
                   "min_expert_share": round(min(usage), 4)}
            history.append(row)
            bar.write(json.dumps(row))
            save_checkpoint(ckpt, model, opt, step, rng, history)
    bar.close()
    train_s = time.perf_counter() - t0

    model.eval()
    clean = evaluate_accuracy(model, test_task, batch_size=500).accuracy
    top1 = top1_accuracy(model, test_task, batch_size=500)
    usage = expert_usage(model, usage_batch)
    record = {
        "task": {**task_kwargs, "train_split": "train", "test_split": "test",
                 "test_size": args.test_size, "test_seed": args.seed},
        "training": {k: config[k] for k in ("steps", "batch_size", "lr", "warmup",
                                             "weight_decay", "aux_coef", "seed", "threads")},
        "train_time_s": round(train_s, 1),
        "test_accuracy": clean,
        "test_accuracy_top1": top1,
        "expert_share": [round(u, 4) for u in usage],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    others = save_model_dir(model, args.out, record)
    if others:
        print(f"note: {args.out} also holds {others}, made for the previous weights",
              file=sys.stderr)
    size = sum((args.out / n).stat().st_size
               for n in ("config.json", "model.safetensors", "training.json"))
    record["model_bytes"] = size
    atomic_write_text(run_dir / "training.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(run_dir / "history.json", json.dumps(history, indent=1) + "\n")
    lines = [f"{k}: {v}" for k, v in record.items()]
    print("\n".join(lines))
    if rd is not None:
        rd.write_csv("history.csv", history)
        rd.write_summary("# tiny MoE training\n\n" + "\n".join(f"- {x}" for x in lines) + "\n")
        rd.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
