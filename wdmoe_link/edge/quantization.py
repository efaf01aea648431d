"""Weight quantization of a served model, and the measured accuracy of each level.

An edge node stores its model at one of a few weight precisions; fewer bits free memory for the
KV cache and speed up memory-bound decoding, at some cost in accuracy. That cost is measured
here on real models, not assumed:

* :func:`quantize_weights` quantizes a transformers model in place with torchao: every
  ``nn.Linear`` through ``torchao.quantization.quantize_`` with ``IntxWeightOnlyConfig``
  (symmetric; int8 per output channel, int4 per group of 32 inputs), and the fused expert
  banks of the experts interface (3-D parameters that ``quantize_`` does not reach) with the
  same scheme through torchao's affine primitives (quantize, then dequantize back: the
  accuracy is that of the quantized weights). 16 bits rounds the weights to bf16.
* :func:`measure_levels` scores the quantized model on its held-out task: exact match of the
  arithmetic model (``"tiny"``), next-byte accuracy and bits per byte of the text model
  (``"text"``), or a scorer of your own for a local checkpoint.
* ``wdmoe_link/data/quant_levels.csv`` caches the table of the shipped models
  (``python -m experiments.tools.make_quant_table``); :func:`measured_levels` reads it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .node import QuantLevel

__all__ = ["LEVELS_CSV", "WEIGHT_BITS", "level_table", "measure_levels", "measured_levels",
           "quantize_weights"]

#: Where the measured table of the shipped models lives.
LEVELS_CSV: Path = Path(__file__).resolve().parents[1] / "data" / "quant_levels.csv"
#: The weight precisions measured (bits per weight).
WEIGHT_BITS: tuple[int, ...] = (16, 8, 4)
#: Group size of int4 scales (inputs per scale).
INT4_GROUP_SIZE: int = 32


def _is_expert_bank(module: nn.Module) -> bool:
    return hasattr(module, "has_gate") and hasattr(module, "is_transposed")


def _fake_quant_(w: torch.Tensor, bits: int, input_dim: int, group: int | None) -> None:
    """Quantize the 3-D expert weights ``w`` in place (symmetric, per output channel or per
    group of ``group`` inputs along ``input_dim``) and store the dequantized values."""
    from torchao.quantization.quant_primitives import (
        MappingType,
        choose_qparams_affine,
        dequantize_affine,
        quantize_affine,
    )

    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    size = w.shape[input_dim]
    block = [1] * w.dim()
    block[input_dim] = size if group is None or size % group else group
    block = tuple(block)
    x = w.detach().float()
    scale, zero = choose_qparams_affine(x, MappingType.SYMMETRIC, block, torch.int8,
                                        quant_min=qmin, quant_max=qmax)
    q = quantize_affine(x, block, scale, zero, torch.int8, quant_min=qmin, quant_max=qmax)
    deq = dequantize_affine(q, block, scale, zero, torch.int8, quant_min=qmin, quant_max=qmax,
                            output_dtype=torch.float32)
    with torch.no_grad():
        w.copy_(deq.to(w.dtype))


def quantize_weights(model: nn.Module, weight_bits: int) -> nn.Module:
    """Quantize ``model``'s weights in place to ``weight_bits`` (16, 8 or 4) and return it.

    Embeddings and norms stay as they are (weight-only quantization of the matrices).
    """
    if weight_bits not in WEIGHT_BITS:
        raise ValueError(f"weight_bits must be one of {list(WEIGHT_BITS)}, got {weight_bits!r}")
    banks = [m for m in model.modules() if _is_expert_bank(m)]
    if weight_bits == 16:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear) or m in banks:
                    for p in m.parameters(recurse=False):
                        if p.dim() >= 2:
                            p.copy_(p.to(torch.bfloat16).to(p.dtype))
        return model
    try:
        from torchao.quantization import IntxWeightOnlyConfig, quantize_
        from torchao.quantization.granularity import PerAxis, PerGroup
    except ImportError:
        raise ImportError("int8/int4 weights need torchao: pip install -e '.[eval]'") from None

    group = INT4_GROUP_SIZE if weight_bits == 4 else None
    for bank in banks:
        for p in bank.parameters(recurse=False):
            if p.dim() == 3:
                # [E, out, in] (or [E, in, out] when transposed): scales along the inputs
                _fake_quant_(p, weight_bits, 1 if bank.is_transposed else 2, group)

    def linear_with_groups(m: nn.Module, fqn: str) -> bool:
        return isinstance(m, nn.Linear) and (group is None or m.in_features % group == 0)

    dtype = torch.int8 if weight_bits == 8 else torch.int4
    granularity = PerAxis(0) if group is None else PerGroup(group)
    quantize_(model, IntxWeightOnlyConfig(weight_dtype=dtype, granularity=granularity),
              filter_fn=linear_with_groups)
    return model


# ------------------------------------------------------------------------------------------
# measurement


def _score_tiny(model: Any, examples: int) -> dict[str, float]:
    from ..tasks import evaluate_accuracy
    from ..tiny import tiny_task

    res = evaluate_accuracy(model, tiny_task("test", size=examples), progress=False,
                            batch_size=64)
    return {"accuracy": res.accuracy}


def _score_text(model: Any, examples: int) -> dict[str, float]:
    from ..text import TextCorpus, evaluate_text

    res = evaluate_text(model, TextCorpus("test"), length=256, max_windows=examples,
                        batch_size=16)
    return {"accuracy": res.accuracy, "bits_per_byte": res.bits_per_byte}


def measure_levels(model: str | Path = "text", bits: Sequence[int] = WEIGHT_BITS, *,
                   examples: int = 128,
                   scorer: Callable[[Any, int], dict[str, float]] | None = None,
                   ) -> list[dict[str, Any]]:
    """Quantize a fresh copy of ``model`` to each precision and score it.

    Args:
        model: ``"tiny"``, ``"text"`` or a local checkpoint folder (then ``scorer`` is needed).
        bits: weight precisions.
        examples: problems (``tiny``) or 256-byte windows (``text``) scored.
        scorer: ``scorer(model, examples) -> {metric: value}`` (default per shipped model).

    Returns:
        Rows ``{"model", "weight_bits", "metric", "value", "examples"}``.
    """
    from ..split import load_moe

    name = str(model)
    if scorer is None:
        if name not in ("tiny", "text"):
            raise ValueError("give scorer=... to measure a local checkpoint (the shipped "
                             "'tiny' and 'text' models have their own)")
        scorer = _score_tiny if name == "tiny" else _score_text
    rows = []
    for b in bits:
        m = quantize_weights(load_moe(model), int(b))
        with torch.inference_mode():
            scores = scorer(m, examples)
        rows += [{"model": name, "weight_bits": int(b), "metric": k, "value": float(v),
                  "examples": examples} for k, v in scores.items()]
    return rows


def level_table(path: Path | None = None) -> list[dict[str, Any]]:
    """Rows of the cached table (``model``, ``weight_bits``, ``metric``, ``value``,
    ``examples``, ``command``), values as numbers."""
    path = path or LEVELS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; make it with "
                                "`python -m experiments.tools.make_quant_table`")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["weight_bits"], r["value"] = int(r["weight_bits"]), float(r["value"])
        r["examples"] = int(r["examples"])
    return rows


def measured_levels(model: str = "text", metric: str = "accuracy",
                    path: Path | None = None) -> tuple[QuantLevel, ...]:
    """The quantization levels of a shipped model from the cached table, most bits first
    (``metric`` must be a score in [0, 1], e.g. ``"accuracy"``)."""
    rows = [r for r in level_table(path) if r["model"] == model and r["metric"] == metric]
    if not rows:
        raise ValueError(f"no rows for model {model!r}, metric {metric!r} in "
                         f"{path or LEVELS_CSV}")
    levels = [QuantLevel(weight_bits=r["weight_bits"], accuracy=r["value"]) for r in rows]
    return tuple(sorted(levels, key=lambda lv: -lv.weight_bits))
