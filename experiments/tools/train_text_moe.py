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

    semcom train-text-moe                                          # the shipped model (CPU hours)
    semcom train-text-moe --steps 20 --eval_every 10 --out /tmp/text   # a check

(``python -m experiments.tools.train_text_moe`` is the same command.)
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from experiments.cli import entry_point
from experiments.reporting.results import ResultsDir
from experiments.tools.moe_training import adamw, finish_run, save_model_dir, train_loop
from phy.checks import check_number, check_positive_int
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


def train_text_moe(*, steps: int = 2000, batch_size: int = 32, length: int = 256,
                   lr: float = 2e-3, warmup: int = 200, weight_decay: float = 0.05,
                   seed: int = 0, threads: int = 2, eval_every: int = 250,
                   eval_windows: int = 64, test_windows: int = 512, out: Path = TEXT_DIR,
                   results: str | Path = "results", resume: Path | None = None) -> ResultsDir:
    """Train the standard-library text MoE and save it to ``out`` (settings checked before
    any work).

    Args:
        steps: optimiser steps.
        batch_size: windows per step.
        length: bytes per window.
        lr: peak learning rate.
        warmup: warm-up steps.
        weight_decay: AdamW weight decay of the matrices.
        seed: seed of the weights and the sampled windows.
        threads: torch CPU threads.
        eval_every: steps between validation scores (and checkpoints).
        eval_windows: validation windows scored.
        test_windows: test windows scored.
        out: model folder to (re)write.
        results: root folder of the results.
        resume: results folder of an interrupted run to continue.
    """
    from transformers import MixtralForCausalLM

    for name, value in (("steps", steps), ("batch_size", batch_size), ("length", length),
                        ("warmup", warmup), ("eval_every", eval_every),
                        ("eval_windows", eval_windows), ("test_windows", test_windows),
                        ("threads", threads)):
        check_positive_int(name, value)
    check_number("lr", lr, low=0.0, low_open=True)
    limit = TEXT_CONFIG["max_position_embeddings"]
    if length + 1 > limit:
        raise ValueError(f"length must be < {limit} (the model's positions), got {length}")
    out = Path(out)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = MixtralForCausalLM(tiny_config(**TEXT_CONFIG))
    opt = adamw(model, lr, weight_decay, betas=(0.9, 0.95))
    train, val = TextCorpus("train"), TextCorpus("val")
    gen = torch.Generator().manual_seed(seed)
    config = {"steps": steps, "batch_size": batch_size, "length": length, "lr": lr,
              "warmup": warmup, "weight_decay": weight_decay, "threads": threads,
              "eval_every": eval_every, "eval_windows": eval_windows,
              "test_windows": test_windows, "out": str(out),
              "model": tiny_config(**TEXT_CONFIG).to_dict(),
              "python": platform.python_version(),
              "corpus": {"train_bytes": len(train), "train_files": train.num_files,
                         "val_bytes": len(val), "val_files": val.num_files}}
    run = ResultsDir.create("train_text_moe", config, seed, root=results) if resume is None \
        else ResultsDir.resume(resume, "train_text_moe", config, seed, extendable=("steps",))

    def forward() -> Any:
        ids = train.sample(batch_size, length, gen)
        return model(input_ids=ids, labels=ids, output_router_logits=True)

    def evaluate(last: Any, loss_avg: float) -> dict[str, Any]:
        return {"loss": round(loss_avg, 4),
                **{f"val_{k}": v for k, v in _scores(model, val, eval_windows, length).items()}}

    with run:
        history, train_s = train_loop(
            model, opt, run, resuming=resume is not None, steps=steps, lr=lr, warmup=warmup,
            eval_every=eval_every, forward=forward, evaluate=evaluate,
            sampler_state=gen.get_state, set_sampler_state=gen.set_state,
            smoothing=(0.98, 0.02), postfix=lambda o, avg: {"loss": f"{avg:.3f}"})
        model.eval()
        test = TextCorpus("test")
        scores = _scores(model, test, test_windows, length)
        record = {
            "corpus": {"source": "Python standard library .py files, split by module "
                                 "(wdmoe_link.text.stdlib_files)", "python": config["python"],
                       "train_bytes": len(train), "test_bytes": len(test),
                       "test_files": test.num_files},
            "training": {"steps": steps, "batch_size": batch_size, "length": length, "lr": lr,
                         "warmup": warmup, "weight_decay": weight_decay, "seed": seed,
                         "threads": threads},
            "train_time_s": round(train_s, 1),
            "test": scores,
            "parameters": sum(p.numel() for p in model.parameters()),
            "command": "semcom train-text-moe",
        }
        # shards of < 8 MB each (30 MB of fp32 weights in all)
        save_model_dir(model, out, record, max_shard_size="7MB")
        finish_run(run, record, history, "text MoE training")
    return run


#: ``python -m experiments.tools.train_text_moe``: ``semcom train-text-moe``
main = entry_point("train-text-moe")


if __name__ == "__main__":
    raise SystemExit(main())
