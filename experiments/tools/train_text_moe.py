"""Train the text MoE shipped in ``wdmoe_link/data/text_moe/`` on the standard library's source.

A Mixtral-architecture model (:data:`wdmoe_link.tiny.TEXT_CONFIG`: byte ids, 6 layers, 8
experts, top-2, 7.5 M parameters) learns next-byte prediction on the ``train`` modules of
:func:`wdmoe_link.text.stdlib_files` (random windows of ``--length`` bytes), with Mixtral's
load-balancing loss so that every expert is used. The held-out ``val`` modules are scored
every ``--eval-every`` steps, the ``test`` modules at the end: bits per byte and next-byte
accuracy with the router's top-2, and with every token keeping only its best expert (top-1).

CPU, a fixed number of steps, seeded. A checkpoint (model, optimiser, step, RNG states) is
written atomically at every evaluation; ``--resume FOLDER`` continues from it and gives the
same trajectory. At the end the model is saved with ``save_pretrained`` and ``training.json``
(each file replaced atomically, ``training.json`` last).

    python -m experiments.tools.train_text_moe                      # the shipped model (CPU hours)
    python -m experiments.tools.train_text_moe --steps 20 --eval-every 10 --out /tmp/text  # a check
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from experiments.reporting.results import ResultsDir, atomic_write_text
from experiments.tools.train_tiny_moe import lr_at, save_model_dir
from wdmoe_link.routing import TopNDispatcher
from wdmoe_link.split import SplitMoE
from wdmoe_link.text import TextCorpus, evaluate_text
from wdmoe_link.tiny import TEXT_CONFIG, TEXT_DIR, tiny_config


def _scores(model: Any, corpus: TextCorpus, windows: int, length: int) -> dict[str, float]:
    clean = evaluate_text(model, corpus, length=length, max_windows=windows)
    with SplitMoE(model, TopNDispatcher(1)) as split:
        top1 = evaluate_text(model, corpus, length=length, max_windows=windows,
                             dispatcher=split.dispatcher)
    return {"bits_per_byte": round(clean.bits_per_byte, 4),
            "accuracy": round(clean.accuracy, 4),
            "bits_per_byte_top1": round(top1.bits_per_byte, 4),
            "accuracy_top1": round(top1.accuracy, 4), "bytes": clean.num_bytes}


def _save(path: Path, model: Any, opt: Any, step: int, gen: torch.Generator,
          history: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "history": history}, tmp)
    tmp.replace(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps (default 2000)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per step")
    p.add_argument("--length", type=int, default=256, help="bytes per window (default 256)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between val scores")
    p.add_argument("--eval-windows", type=int, default=64, help="val windows scored")
    p.add_argument("--test-windows", type=int, default=512, help="test windows scored")
    p.add_argument("--out", type=Path, default=TEXT_DIR, help="model folder to (re)write")
    p.add_argument("--results", default="results", help="results root folder")
    p.add_argument("--resume", type=Path, default=None,
                   help="results folder of an interrupted run to continue")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "length", "warmup", "eval_every", "eval_windows",
                 "test_windows", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if args.length + 1 > TEXT_CONFIG["max_position_embeddings"]:
        p.error(f"--length must be < {TEXT_CONFIG['max_position_embeddings']}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm.auto import tqdm
    from transformers import MixtralForCausalLM

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = MixtralForCausalLM(tiny_config(**TEXT_CONFIG))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    train, val = TextCorpus("train"), TextCorpus("val")
    gen = torch.Generator().manual_seed(args.seed)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.update(model=tiny_config(**TEXT_CONFIG).to_dict(),
                  python=platform.python_version(),
                  corpus={"train_bytes": len(train), "train_files": train.num_files,
                          "val_bytes": len(val), "val_files": val.num_files})
    step, history = 0, []
    rd = ResultsDir.create("train_text_moe", config, seed=args.seed, root=args.results) \
        if args.resume is None else None
    run_dir = Path(rd.path) if rd is not None else args.resume
    ckpt = run_dir / "checkpoint.pt"
    if args.resume is not None:
        if not ckpt.is_file():
            raise SystemExit(f"--resume {args.resume}: no checkpoint.pt there")
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, history = state["step"], state["history"]
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {ckpt} at step {step}", file=sys.stderr)

    t0 = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="train", unit="step")
    loss_avg = float("nan")
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        ids = train.sample(args.batch_size, args.length, gen)
        out = model(input_ids=ids, labels=ids, output_router_logits=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss = float(out.loss.detach())
        loss_avg = loss if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * loss
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            row = {"step": step, "elapsed_s": round(time.perf_counter() - t0, 1),
                   "loss": round(loss_avg, 4),
                   **{f"val_{k}": v for k, v in _scores(model, val, args.eval_windows,
                                                         args.length).items()}}
            model.train()
            history.append(row)
            bar.write(json.dumps(row))
            _save(ckpt, model, opt, step, gen, history)
    bar.close()
    train_s = time.perf_counter() - t0

    model.eval()
    test = TextCorpus("test")
    scores = _scores(model, test, args.test_windows, args.length)
    record = {
        "corpus": {"source": "Python standard library .py files, split by module "
                             "(wdmoe_link.text.stdlib_files)", "python": config["python"],
                   "train_bytes": len(train), "test_bytes": len(test),
                   "test_files": test.num_files},
        "training": {k: config[k] for k in ("steps", "batch_size", "length", "lr", "warmup",
                                             "weight_decay", "seed", "threads")},
        "train_time_s": round(train_s, 1),
        "test": scores,
        "parameters": sum(p.numel() for p in model.parameters()),
        "command": "python -m experiments.tools.train_text_moe",
    }
    # shards of < 8 MB each (30 MB of fp32 weights in all)
    save_model_dir(model, args.out, record, max_shard_size="7MB")
    atomic_write_text(run_dir / "training.json", json.dumps(record, indent=2) + "\n")
    lines = [f"{k}: {v}" for k, v in record.items()]
    print("\n".join(lines))
    if rd is not None:
        rd.write_csv("history.csv", history)
        rd.write_summary("# text MoE training\n\n" + "\n".join(f"- {x}" for x in lines) + "\n")
        rd.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
