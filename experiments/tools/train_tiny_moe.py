"""Train the tiny Mixtral-architecture model shipped in ``wdmoe_link/data/tiny_moe/``.

The model (:data:`wdmoe_link.tiny.TINY_CONFIG`: byte vocabulary, 8 experts, top-2) learns
:class:`wdmoe_link.tasks.ArithmeticTask` with :data:`wdmoe_link.tiny.TINY_TASK` settings from
examples generated on the fly (the held-out ``val`` / ``test`` problems are never drawn). The
loss is the cross-entropy of the answer and EOS tokens plus Mixtral's load-balancing loss
(``router_aux_loss_coef``), so that all experts are used and dropping one changes the output.

CPU only, a fixed number of steps (results do not depend on machine load), seeded. A checkpoint
(model, optimiser, step, RNG states) is written atomically every ``--eval_every`` steps into the
results folder; ``--resume FOLDER`` continues from it (same settings; ``--steps`` may grow). At
the end the model is evaluated on the ``test`` split (clean, and with every token keeping only
its best expert) and saved with ``save_pretrained`` together with ``training.json`` (each file
replaced atomically, ``training.json`` last; other files in ``--out`` are kept).

    semcom train-tiny-moe                                  # ~9 min on one CPU core
    semcom train-tiny-moe --steps 200 --out /tmp/tiny      # a quick check

(``python -m experiments.tools.train_tiny_moe`` is the same command.)
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from experiments.cli import entry_point
from experiments.reporting.results import ResultsDir, atomic_write_text
from experiments.tools.moe_training import adamw, finish_run, save_model_dir, train_loop
from phy.checks import check_number, check_positive_int
from wdmoe_link.routing import TopNDispatcher
from wdmoe_link.split import SplitMoE
from wdmoe_link.tasks import ArithmeticTask, ByteTokenizer, Example, evaluate_accuracy
from wdmoe_link.tiny import TINY_CONFIG, TINY_DIR, TINY_TASK, tiny_config

__all__ = ["main", "train_tiny_moe"]

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


def top1_accuracy(model: Any, task: ArithmeticTask, batch_size: int) -> float:
    with SplitMoE(model, TopNDispatcher(1)):
        return evaluate_accuracy(model, task, progress=False, batch_size=batch_size).accuracy


def train_tiny_moe(*, steps: int = 3000, batch_size: int = 256, lr: float = 3e-3,
                   warmup: int = 100, weight_decay: float = 0.01,
                   aux_coef: float = TINY_CONFIG["router_aux_loss_coef"], seed: int = 0,
                   threads: int = 1, eval_every: int = 250, val_size: int = 500,
                   test_size: int = 2000, digits: int = TINY_TASK["digits"],
                   ops: str = TINY_TASK["ops"], min_digits: int | None = None,
                   hidden: int = TINY_CONFIG["hidden_size"],
                   ffn: int = TINY_CONFIG["intermediate_size"],
                   layers: int = TINY_CONFIG["num_hidden_layers"], out: Path = TINY_DIR,
                   results: str | Path = "results", resume: Path | None = None) -> ResultsDir:
    """Train the tiny arithmetic MoE and save it to ``out`` (settings checked before any
    work).

    Args:
        steps: optimiser steps.
        batch_size: sequences per step.
        lr: peak learning rate.
        warmup: warm-up steps.
        weight_decay: AdamW weight decay of the matrices.
        aux_coef: weight of the router load-balancing loss.
        seed: seed of the weights, the sampled problems and the held-out splits.
        threads: torch CPU threads.
        eval_every: steps between validation evaluations (and checkpoints).
        val_size: validation problems.
        test_size: test problems.
        digits: operand digits.
        ops: operators, over ``+-``.
        min_digits: shortest operand (default: ``digits``, fixed width).
        hidden: hidden width.
        ffn: expert FFN width.
        layers: decoder layers.
        out: model folder to (re)write.
        results: root folder of the results.
        resume: results folder of an interrupted run to continue.
    """
    from transformers import MixtralForCausalLM

    for name, value in (("steps", steps), ("batch_size", batch_size), ("warmup", warmup),
                        ("eval_every", eval_every), ("val_size", val_size),
                        ("test_size", test_size), ("threads", threads)):
        check_positive_int(name, value)
    check_number("lr", lr, low=0.0, low_open=True)
    out = Path(out)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    overrides = {"hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
                 "router_aux_loss_coef": aux_coef}
    model = MixtralForCausalLM(tiny_config(**overrides))
    opt = adamw(model, lr, weight_decay, betas=(0.9, 0.98))
    task_kwargs = {**TINY_TASK, "digits": digits, "ops": ops,
                   "min_digits": digits if min_digits is None else min_digits}
    train_task = ArithmeticTask(split="train", size=0, seed=seed, **task_kwargs)
    val_task = ArithmeticTask(split="val", size=val_size, seed=seed, **task_kwargs)
    test_task = ArithmeticTask(split="test", size=test_size, seed=seed, **task_kwargs)
    rng = random.Random(f"train-{seed}")
    usage_batch = make_batch(ArithmeticTask(split="val", size=256, seed=seed + 1,
                                            **task_kwargs).examples)
    config = {"steps": steps, "batch_size": batch_size, "lr": lr, "warmup": warmup,
              "weight_decay": weight_decay, "aux_coef": aux_coef, "threads": threads,
              "eval_every": eval_every, "val_size": val_size, "test_size": test_size,
              "out": str(out), "model": tiny_config(**overrides).to_dict(), "task": task_kwargs}
    run = ResultsDir.create("train_tiny_moe", config, seed, root=results) if resume is None \
        else ResultsDir.resume(resume, "train_tiny_moe", config, seed, extendable=("steps",))

    def forward() -> Any:
        return model(**make_batch(train_task.sample(rng, batch_size)),
                     output_router_logits=True)

    def evaluate(last: Any, loss_avg: float) -> dict[str, Any]:
        acc = evaluate_accuracy(model, val_task, progress=False, batch_size=500).accuracy
        usage = expert_usage(model, usage_batch)
        return {"loss": round(loss_avg, 5), "aux_loss": round(float(last.aux_loss.detach()), 5),
                "val_accuracy": acc, "max_expert_share": round(max(usage), 4),
                "min_expert_share": round(min(usage), 4)}

    with run:
        history, train_s = train_loop(
            model, opt, run, resuming=resume is not None, steps=steps, lr=lr, warmup=warmup,
            eval_every=eval_every, forward=forward, evaluate=evaluate,
            sampler_state=rng.getstate, set_sampler_state=rng.setstate,
            smoothing=(0.95, 0.05),
            postfix=lambda o, avg: {"loss": f"{avg:.4f}",
                                    "aux": f"{float(o.aux_loss.detach()):.3f}"})
        model.eval()
        clean = evaluate_accuracy(model, test_task, batch_size=500).accuracy
        top1 = top1_accuracy(model, test_task, batch_size=500)
        usage = expert_usage(model, usage_batch)
        record = {
            "task": {**task_kwargs, "train_split": "train", "test_split": "test",
                     "test_size": test_size, "test_seed": seed},
            "training": {"steps": steps, "batch_size": batch_size, "lr": lr, "warmup": warmup,
                         "weight_decay": weight_decay, "aux_coef": aux_coef, "seed": seed,
                         "threads": threads},
            "train_time_s": round(train_s, 1),
            "test_accuracy": clean,
            "test_accuracy_top1": top1,
            "expert_share": [round(u, 4) for u in usage],
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        others = save_model_dir(model, out, record)
        if others:
            print(f"note: {out} also holds {others}, made for the previous weights",
                  file=sys.stderr)
        record["model_bytes"] = sum((out / n).stat().st_size
                                    for n in ("config.json", "model.safetensors",
                                              "training.json"))
        atomic_write_text(run.path / "history.json", json.dumps(history, indent=1) + "\n")
        finish_run(run, record, history, "tiny MoE training")
    return run


#: ``python -m experiments.tools.train_tiny_moe``: ``semcom train-tiny-moe``
main = entry_point("train-tiny-moe")


if __name__ == "__main__":
    raise SystemExit(main())
