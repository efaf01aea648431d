"""The tiny Mixtral-architecture model shipped with the package, and its task.

``wdmoe_link/data/tiny_moe/`` holds a :class:`transformers.MixtralForCausalLM` with a byte-level
vocabulary (:class:`~wdmoe_link.tasks.ByteTokenizer`, 259 ids, so no tokenizer files), trained by
``experiments/tools/train_tiny_moe.py`` on :class:`~wdmoe_link.tasks.ArithmeticTask` with
:data:`TINY_TASK` settings. ``training.json`` in the same folder records how it was trained and
its accuracies.

Usage::

    model = load_moe("tiny")                   # wdmoe_link.split.load_moe
    task = tiny_task("test", size=200)
    config = tiny_config(num_hidden_layers=2)  # a randomly initialised variant for tests
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .tasks import ArithmeticTask, ByteTokenizer, Split

__all__ = ["TEXT_CONFIG", "TEXT_DIR", "TINY_CONFIG", "TINY_DIR", "TINY_TASK",
           "build_tiny_model", "tiny_config", "tiny_task", "tiny_training_record"]

#: Folder of the shipped checkpoint (``config.json``, ``model.safetensors``, ``training.json``).
TINY_DIR: Path = Path(__file__).resolve().parent / "data" / "tiny_moe"

#: ArithmeticTask arguments the shipped model was trained on (besides split, size and seed).
TINY_TASK: dict[str, Any] = {"digits": 3, "ops": "+-", "min_digits": 3}

#: MixtralConfig arguments of the shipped model.
TINY_CONFIG: dict[str, Any] = {
    "vocab_size": ByteTokenizer.vocab_size,
    "hidden_size": 64,
    "intermediate_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 64,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": ByteTokenizer.bos_id,
    "eos_token_id": ByteTokenizer.eos_id,
    "pad_token_id": ByteTokenizer.pad_id,
    "router_aux_loss_coef": 0.02,
    "output_router_logits": False,
}


#: Folder of the shipped text model (a Mixtral on the standard library's source, byte ids;
#: ``experiments/tools/train_text_moe.py``).
TEXT_DIR: Path = Path(__file__).resolve().parent / "data" / "text_moe"

#: MixtralConfig arguments of the text model (7.5 M parameters): :data:`TINY_CONFIG` with
#: these overrides.
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 512,
    "router_aux_loss_coef": 0.02,
}


def tiny_config(**overrides: Any) -> Any:
    """A :class:`transformers.MixtralConfig` with :data:`TINY_CONFIG` values, then ``overrides``."""
    from transformers import MixtralConfig

    return MixtralConfig(**{**TINY_CONFIG, **overrides})


def build_tiny_model(seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised tiny ``MixtralForCausalLM`` (fp32, eval mode), seeded."""
    from transformers import MixtralForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MixtralForCausalLM(tiny_config(**overrides))
    return model.eval()


def tiny_task(split: Split = "test", size: int = 200, seed: int = 0) -> ArithmeticTask:
    """The task the shipped tiny model was trained on (held-out ``test`` split by default)."""
    return ArithmeticTask(split=split, size=size, seed=seed, **TINY_TASK)


def tiny_training_record() -> dict[str, Any]:
    """Contents of the shipped ``training.json`` (settings, training time, accuracies)."""
    path = TINY_DIR / "training.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; train the model with `semcom train-tiny-moe`"
        )
    return json.loads(path.read_text())
