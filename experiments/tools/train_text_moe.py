"""Train the text MoE shipped in ``wdmoe_link/data/text_moe/`` on the standard library's source.

A Mixtral-architecture model (:data:`wdmoe_link.tiny.TEXT_CONFIG`: byte ids, 6 layers, 8
experts, top-2, 7.5 M parameters) learns next-byte prediction on the ``train`` modules of
:func:`wdmoe_link.text.stdlib_files` (random windows of ``--length`` bytes), with Mixtral's
load-balancing loss so that every expert is used. The held-out ``val`` modules are scored
every ``--eval_every`` steps, the ``test`` modules at the end: bits per byte and next-byte
accuracy with the router's top-2, and with every token keeping only its best expert (top-1).

CPU, a fixed number of steps, seeded. A checkpoint (model, optimiser, step, RNG states) is
written atomically at every evaluation; ``--resume FOLDER`` continues from it and gives the
same trajectory (same settings; ``--steps`` may grow). At the end the model is saved with
``save_pretrained`` and ``training.json`` (each file replaced atomically, ``training.json``
last).

:func:`fit_text_moe` turns a :class:`TrainTextMoEConfig` into the trained model and its scores
(:class:`TextMoETraining`); :func:`train_text_moe`, the command, keeps the run in a results
folder and saves the model.

    semcom train-text-moe                                          # the shipped model (CPU hours)
    semcom train-text-moe --steps 20 --eval_every 10 --out /tmp/text   # a check

(``python -m experiments.tools.train_text_moe`` is the same command.)
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.reporting.results import ResultsDir
from experiments.tools.moe_training import adamw, finish_run, save_model_dir, train_loop
from phy.checks import check_number, check_positive_int
from wdmoe_link.routing import TopNDispatcher
from wdmoe_link.split import SplitMoE
from wdmoe_link.text import TextCorpus, evaluate_text
from wdmoe_link.tiny import TEXT_CONFIG, TEXT_DIR, tiny_config

__all__ = ["TextMoETraining", "TrainTextMoEConfig", "fit_text_moe", "main", "train_text_moe"]


def _scores(model: Any, corpus: TextCorpus, windows: int, length: int) -> dict[str, float]:
    clean = evaluate_text(model, corpus, length=length, max_windows=windows)
    with SplitMoE(model, TopNDispatcher(1)) as split:
        top1 = evaluate_text(model, corpus, length=length, max_windows=windows,
                             dispatcher=split.dispatcher)
    return {"bits_per_byte": round(clean.bits_per_byte, 4),
            "accuracy": round(clean.accuracy, 4),
            "bits_per_byte_top1": round(top1.bits_per_byte, 4),
            "accuracy_top1": round(top1.accuracy, 4), "bytes": clean.num_bytes}


@dataclass(frozen=True)
class TrainTextMoEConfig:
    """What ``semcom train-text-moe`` trains (checked when built).

    Attributes:
        steps: optimiser steps.
        batch_size: windows per step.
        length: bytes per window.
        lr: peak learning rate.
        warmup: warm-up steps.
        weight_decay: AdamW weight decay of the matrices.
        seed: seed of the weights and the sampled windows.
        threads: torch CPU threads (recorded with the run: a resumed run must use the same).
        eval_every: steps between validation scores (and checkpoints).
        eval_windows: validation windows scored.
        test_windows: test windows scored.
    """

    steps: int = 2000
    batch_size: int = 32
    length: int = 256
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.05
    seed: int = 0
    threads: int = 2
    eval_every: int = 250
    eval_windows: int = 64
    test_windows: int = 512

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "length", "warmup", "eval_every", "eval_windows",
                     "test_windows", "threads"):
            check_positive_int(name, getattr(self, name))
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        limit = TEXT_CONFIG["max_position_embeddings"]
        if self.length + 1 > limit:
            raise ValueError(f"length must be < {limit} (the model's positions), got "
                             f"{self.length}")

    def run_config(self, out: Path, train: TextCorpus, val: TextCorpus) -> dict[str, Any]:
        """The settings the results folder records (and a resumed run must match; the seed
        apart), with the model folder ``out`` and the sizes of the corpus splits."""
        return {"steps": self.steps, "batch_size": self.batch_size, "length": self.length,
                "lr": self.lr, "warmup": self.warmup, "weight_decay": self.weight_decay,
                "threads": self.threads, "eval_every": self.eval_every,
                "eval_windows": self.eval_windows, "test_windows": self.test_windows,
                "out": str(out), "model": tiny_config(**TEXT_CONFIG).to_dict(),
                "python": platform.python_version(),
                "corpus": {"train_bytes": len(train), "train_files": train.num_files,
                           "val_bytes": len(val), "val_files": val.num_files}}


@dataclass
class TextMoETraining:
    """The training of a :class:`TrainTextMoEConfig`.

    Attributes:
        config: what was trained.
        model: the trained model (eval mode).
        history: the validation rows (``step``, ``elapsed_s``, ``loss``, ``val_*`` scores).
        record: what ``training.json`` records: the corpus, the settings, the training time,
            the ``test`` scores (bits per byte and accuracy, top-2 and top-1) and the
            parameters.
    """

    config: TrainTextMoEConfig
    model: Any
    history: list[dict[str, Any]]
    record: dict[str, Any]

    @property
    def test(self) -> dict[str, float]:
        return self.record["test"]


def fit_text_moe(cfg: TrainTextMoEConfig, run: ResultsDir, *, resuming: bool = False,
                 train: TextCorpus | None = None, val: TextCorpus | None = None
                 ) -> TextMoETraining:
    """Train the text MoE (checkpoints in ``run``'s folder; ``resuming``: continue from its
    checkpoint) and score it on the test modules; the model is not saved. ``train``, ``val``:
    the corpus splits, if already loaded."""
    from transformers import MixtralForCausalLM

    steps, batch_size, length, lr = cfg.steps, cfg.batch_size, cfg.length, cfg.lr
    torch.manual_seed(cfg.seed)
    model = MixtralForCausalLM(tiny_config(**TEXT_CONFIG))
    opt = adamw(model, lr, cfg.weight_decay, betas=(0.9, 0.95))
    train = TextCorpus("train") if train is None else train
    val = TextCorpus("val") if val is None else val
    gen = torch.Generator().manual_seed(cfg.seed)

    def forward() -> Any:
        ids = train.sample(batch_size, length, gen)
        return model(input_ids=ids, labels=ids, output_router_logits=True)

    def evaluate(last: Any, loss_avg: float) -> dict[str, Any]:
        return {"loss": round(loss_avg, 4),
                **{f"val_{k}": v
                   for k, v in _scores(model, val, cfg.eval_windows, length).items()}}

    history, train_s = train_loop(
        model, opt, run, resuming=resuming, steps=steps, lr=lr, warmup=cfg.warmup,
        eval_every=cfg.eval_every, forward=forward, evaluate=evaluate,
        sampler_state=gen.get_state, set_sampler_state=gen.set_state,
        smoothing=(0.98, 0.02), postfix=lambda o, avg: {"loss": f"{avg:.3f}"})
    model.eval()
    test = TextCorpus("test")
    scores = _scores(model, test, cfg.test_windows, length)
    record = {
        "corpus": {"source": "Python standard library .py files, split by module "
                             "(wdmoe_link.text.stdlib_files)",
                   "python": platform.python_version(),
                   "train_bytes": len(train), "test_bytes": len(test),
                   "test_files": test.num_files},
        "training": {"steps": steps, "batch_size": batch_size, "length": length, "lr": lr,
                     "warmup": cfg.warmup, "weight_decay": cfg.weight_decay, "seed": cfg.seed,
                     "threads": cfg.threads},
        "train_time_s": round(train_s, 1),
        "test": scores,
        "parameters": sum(p.numel() for p in model.parameters()),
        "command": "semcom train-text-moe",
    }
    return TextMoETraining(cfg, model, history, record)


def train_text_moe(cfg: TrainTextMoEConfig | None = None, *, out: Path = TEXT_DIR,
                   results: str | Path = "results", resume: Path | None = None,
                   **settings: Any) -> ResultsDir:
    """Train the standard-library text MoE and save it to ``out`` (settings checked before
    any work).

    Args:
        cfg: what to train; or give its fields as keywords (``settings``).
        out: model folder to (re)write.
        results: root folder of the results.
        resume: results folder of an interrupted run to continue.
    """
    cfg = resolve_config(TrainTextMoEConfig, cfg, settings)
    out = Path(out)
    torch.set_num_threads(cfg.threads)
    train, val = TextCorpus("train"), TextCorpus("val")
    config = cfg.run_config(out, train, val)
    run = ResultsDir.create("train_text_moe", config, cfg.seed, root=results) \
        if resume is None else ResultsDir.resume(resume, "train_text_moe", config, cfg.seed,
                                                 extendable=("steps",))
    with run:
        fit = fit_text_moe(cfg, run, resuming=resume is not None, train=train, val=val)
        # shards of < 8 MB each (30 MB of fp32 weights in all)
        save_model_dir(fit.model, out, fit.record, max_shard_size="7MB")
        finish_run(run, fit.record, fit.history, "text MoE training")
    return run


#: ``python -m experiments.tools.train_text_moe``: ``semcom train-text-moe``
main = entry_point("train-text-moe")


if __name__ == "__main__":
    raise SystemExit(main())
