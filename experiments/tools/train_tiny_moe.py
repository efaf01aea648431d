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

:func:`fit_tiny_moe` turns a :class:`TrainTinyMoEConfig` into the trained model and its
accuracies (:class:`TinyMoETraining`); :func:`train_tiny_moe`, the command, keeps the run in a
results folder and saves the model.

    semcom train-tiny-moe                                  # ~9 min on one CPU core
    semcom train-tiny-moe --steps 200 --out /tmp/tiny      # a quick check

(``python -m experiments.tools.train_tiny_moe`` is the same command.)
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.reporting.results import ResultsDir, atomic_write_text
from experiments.tools.moe_training import adamw, finish_run, save_model_dir, train_loop
from phy.checks import check_number, check_positive_int
from wdmoe_link.routing import TopNDispatcher
from wdmoe_link.split import SplitMoE
from wdmoe_link.tasks import ArithmeticTask, ByteTokenizer, Example, evaluate_accuracy
from wdmoe_link.tiny import TINY_CONFIG, TINY_DIR, TINY_TASK, tiny_config

__all__ = ["TinyMoETraining", "TrainTinyMoEConfig", "fit_tiny_moe", "main", "train_tiny_moe"]

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


@dataclass(frozen=True)
class TrainTinyMoEConfig:
    """What ``semcom train-tiny-moe`` trains (checked when built).

    Attributes:
        steps: optimiser steps.
        batch_size: sequences per step.
        lr: peak learning rate.
        warmup: warm-up steps.
        weight_decay: AdamW weight decay of the matrices.
        aux_coef: weight of the router load-balancing loss.
        seed: seed of the weights, the sampled problems and the held-out splits.
        threads: torch CPU threads (recorded with the run: a resumed run must use the same).
        eval_every: steps between validation evaluations (and checkpoints).
        val_size: validation problems.
        test_size: test problems.
        digits: operand digits.
        ops: operators, over ``+-``.
        min_digits: shortest operand (default: ``digits``, fixed width).
        hidden: hidden width.
        ffn: expert FFN width.
        layers: decoder layers.
    """

    steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    aux_coef: float = TINY_CONFIG["router_aux_loss_coef"]
    seed: int = 0
    threads: int = 1
    eval_every: int = 250
    val_size: int = 500
    test_size: int = 2000
    digits: int = TINY_TASK["digits"]
    ops: str = TINY_TASK["ops"]
    min_digits: int | None = None
    hidden: int = TINY_CONFIG["hidden_size"]
    ffn: int = TINY_CONFIG["intermediate_size"]
    layers: int = TINY_CONFIG["num_hidden_layers"]

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "warmup", "eval_every", "val_size", "test_size",
                     "threads", "hidden", "ffn", "layers"):
            check_positive_int(name, getattr(self, name))
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("aux_coef", self.aux_coef, low=0.0)
        heads = TINY_CONFIG["num_attention_heads"]
        if self.hidden % heads:
            raise ValueError(f"hidden must be a multiple of the {heads} attention heads, got "
                             f"{self.hidden}")
        ArithmeticTask(split="val", size=0, seed=self.seed, **self.task_kwargs())  # the task

    def task_kwargs(self) -> dict[str, Any]:
        """The :class:`ArithmeticTask` settings (besides split, size and seed)."""
        return {**TINY_TASK, "digits": self.digits, "ops": self.ops,
                "min_digits": self.digits if self.min_digits is None else self.min_digits}

    def model_overrides(self) -> dict[str, Any]:
        """The :func:`wdmoe_link.tiny.tiny_config` overrides of the model."""
        return {"hidden_size": self.hidden, "intermediate_size": self.ffn,
                "num_hidden_layers": self.layers, "router_aux_loss_coef": self.aux_coef}

    def run_config(self, out: Path) -> dict[str, Any]:
        """The settings the results folder records (and a resumed run must match; the seed
        apart), with the model folder ``out``."""
        return {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                "warmup": self.warmup, "weight_decay": self.weight_decay,
                "aux_coef": self.aux_coef, "threads": self.threads,
                "eval_every": self.eval_every, "val_size": self.val_size,
                "test_size": self.test_size, "out": str(out),
                "model": tiny_config(**self.model_overrides()).to_dict(),
                "task": self.task_kwargs()}


@dataclass
class TinyMoETraining:
    """The training of a :class:`TrainTinyMoEConfig`.

    Attributes:
        config: what was trained.
        model: the trained model (eval mode).
        history: the validation rows (``step``, ``elapsed_s``, ``loss``, ``aux_loss``,
            ``val_accuracy``, the largest and smallest expert share).
        record: what ``training.json`` records: the task, the settings, the training time,
            ``test_accuracy`` (top-2), ``test_accuracy_top1``, ``expert_share`` and the
            parameters.
    """

    config: TrainTinyMoEConfig
    model: Any
    history: list[dict[str, Any]]
    record: dict[str, Any]

    @property
    def test_accuracy(self) -> float:
        return self.record["test_accuracy"]


def fit_tiny_moe(cfg: TrainTinyMoEConfig, run: ResultsDir, *, resuming: bool = False
                 ) -> TinyMoETraining:
    """Train the tiny arithmetic MoE (checkpoints in ``run``'s folder; ``resuming``: continue
    from its checkpoint) and evaluate it on the test split; the model is not saved."""
    from transformers import MixtralForCausalLM

    seed, steps, batch_size, lr = cfg.seed, cfg.steps, cfg.batch_size, cfg.lr
    torch.manual_seed(seed)
    model = MixtralForCausalLM(tiny_config(**cfg.model_overrides()))
    opt = adamw(model, lr, cfg.weight_decay, betas=(0.9, 0.98))
    task_kwargs = cfg.task_kwargs()
    train_task = ArithmeticTask(split="train", size=0, seed=seed, **task_kwargs)
    val_task = ArithmeticTask(split="val", size=cfg.val_size, seed=seed, **task_kwargs)
    test_task = ArithmeticTask(split="test", size=cfg.test_size, seed=seed, **task_kwargs)
    rng = random.Random(f"train-{seed}")
    usage_batch = make_batch(ArithmeticTask(split="val", size=256, seed=seed + 1,
                                            **task_kwargs).examples)

    def forward() -> Any:
        return model(**make_batch(train_task.sample(rng, batch_size)),
                     output_router_logits=True)

    def evaluate(last: Any, loss_avg: float) -> dict[str, Any]:
        acc = evaluate_accuracy(model, val_task, progress=False, batch_size=500).accuracy
        usage = expert_usage(model, usage_batch)
        return {"loss": round(loss_avg, 5), "aux_loss": round(float(last.aux_loss.detach()), 5),
                "val_accuracy": acc, "max_expert_share": round(max(usage), 4),
                "min_expert_share": round(min(usage), 4)}

    history, train_s = train_loop(
        model, opt, run, resuming=resuming, steps=steps, lr=lr, warmup=cfg.warmup,
        eval_every=cfg.eval_every, forward=forward, evaluate=evaluate,
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
                 "test_size": cfg.test_size, "test_seed": seed},
        "training": {"steps": steps, "batch_size": batch_size, "lr": lr, "warmup": cfg.warmup,
                     "weight_decay": cfg.weight_decay, "aux_coef": cfg.aux_coef, "seed": seed,
                     "threads": cfg.threads},
        "train_time_s": round(train_s, 1),
        "test_accuracy": clean,
        "test_accuracy_top1": top1,
        "expert_share": [round(u, 4) for u in usage],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return TinyMoETraining(cfg, model, history, record)


def train_tiny_moe(cfg: TrainTinyMoEConfig | None = None, *, out: Path = TINY_DIR,
                   results: str | Path = "results", resume: Path | None = None,
                   **settings: Any) -> ResultsDir:
    """Train the tiny arithmetic MoE and save it to ``out`` (settings checked before any
    work).

    Args:
        cfg: what to train; or give its fields as keywords (``settings``).
        out: model folder to (re)write.
        results: root folder of the results.
        resume: results folder of an interrupted run to continue.
    """
    cfg = resolve_config(TrainTinyMoEConfig, cfg, settings)
    out = Path(out)
    torch.set_num_threads(cfg.threads)
    config = cfg.run_config(out)
    run = ResultsDir.create("train_tiny_moe", config, cfg.seed, root=results) \
        if resume is None else ResultsDir.resume(resume, "train_tiny_moe", config, cfg.seed,
                                                 extendable=("steps",))
    with run:
        fit = fit_tiny_moe(cfg, run, resuming=resume is not None)
        record = fit.record
        others = save_model_dir(fit.model, out, record)
        if others:
            print(f"note: {out} also holds {others}, made for the previous weights",
                  file=sys.stderr)
        record["model_bytes"] = sum((out / n).stat().st_size
                                    for n in ("config.json", "model.safetensors",
                                              "training.json"))
        atomic_write_text(run.path / "history.json", json.dumps(fit.history, indent=1) + "\n")
        finish_run(run, record, fit.history, "tiny MoE training")
    return run


#: ``python -m experiments.tools.train_tiny_moe``: ``semcom train-tiny-moe``
main = entry_point("train-tiny-moe")


if __name__ == "__main__":
    raise SystemExit(main())
