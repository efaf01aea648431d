"""Split execution of Hugging Face sparse-MoE causal LMs loaded from a local directory.

:func:`load_moe` loads a local checkpoint (never downloads) and checks that it is an MoE causal
LM. :class:`SplitMoE` replaces the ``forward`` of every sparse-MoE block of the model: the
router (and a shared expert, as in Qwen2-MoE) still runs in place, i.e. at the base station,
while the routed experts are handed to ``dispatcher.moe_layer``, which decides where they run
and how their outputs are combined. Embeddings, attention, norms, the residual stream, the KV
cache and the LM head are untouched.

Supported block layouts (``transformers`` 5.x, fused expert weights): a block with children
``gate`` (a top-k router returning ``(logits, top-k weights, top-k indices)``) and ``experts``
(see :class:`~wdmoe_link.routing.ExpertBank`), optionally ``shared_expert`` and
``shared_expert_gate`` (sigmoid-gated). This covers ``MixtralSparseMoeBlock``,
``Qwen2MoeSparseMoeBlock`` and ``OlmoeSparseMoeBlock``. ``transformers`` has no hook that
exposes the routed experts of a block separately from the router, so the block forward is
rewritten here.

Usage::

    model = load_moe("tiny")
    with SplitMoE(model, LocalDispatcher()) as split:   # patched on construction
        logits = model(ids).logits                      # same as the unsplit model
    # restored here (or call split.detach())
"""

from __future__ import annotations

import re
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .routing import Dispatcher, ExpertBank, Routing, UnsupportedMoEError

__all__ = [
    "KNOWN_MOE_BLOCKS",
    "NotMoECheckpointError",
    "SplitMoE",
    "UnsupportedMoEError",
    "find_moe_blocks",
    "load_moe",
]

#: Block classes whose forward :class:`SplitMoE` reproduces exactly.
KNOWN_MOE_BLOCKS: frozenset[str] = frozenset(
    {"MixtralSparseMoeBlock", "Qwen2MoeSparseMoeBlock", "OlmoeSparseMoeBlock"}
)

_ALLOWED_CHILDREN = {"gate", "experts", "shared_expert", "shared_expert_gate"}
_MARK = "_wdmoe_split_owner"


class NotMoECheckpointError(ValueError):
    """A checkpoint or model without any sparse-MoE block."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _resolve_dir(path_or_name: str | Path) -> Path:
    if isinstance(path_or_name, str) and path_or_name == "tiny":
        from .tiny import TINY_DIR

        path = TINY_DIR
    else:
        path = Path(path_or_name).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"model checkpoint directory {str(path)!r} does not exist (give 'tiny' or a local "
            "directory with config.json and weights; nothing is downloaded)"
        )
    if not path.is_dir():
        raise NotADirectoryError(f"model checkpoint {str(path)!r} is not a directory")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in model checkpoint directory {str(path)!r}")
    return path


def load_moe(
    path_or_name: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Any:
    """Load a local sparse-MoE causal LM in eval mode.

    Args:
        path_or_name: ``"tiny"`` (the shipped model, :data:`wdmoe_link.tiny.TINY_DIR`) or a local
            checkpoint directory (``config.json`` + weights). Nothing is downloaded.
        dtype: parameter dtype (e.g. ``torch.float32``, ``torch.bfloat16``).
        device: where to put the model.

    Returns:
        The ``PreTrainedModel`` (``AutoModelForCausalLM``).

    Raises:
        FileNotFoundError / NotADirectoryError: missing directory or ``config.json``.
        ValueError: the checkpoint is not a causal LM.
        NotMoECheckpointError: the model has no sparse-MoE block.
        UnsupportedMoEError: it has MoE blocks of a layout split execution cannot handle.
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = _resolve_dir(path_or_name)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(
            f"checkpoint {str(path)!r} (model_type={config.model_type!r}) is not a causal "
            "language model"
        )
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    model = model.to(device).eval()
    find_moe_blocks(model, where=str(path))  # raises if not an MoE model
    return model


# --------------------------------------------------------------------------------------------
# Block discovery
# --------------------------------------------------------------------------------------------


def _looks_like_moe(module: nn.Module) -> bool:
    name = type(module).__name__.lower()
    children = dict(module.named_children())
    return ("moe" in name and name.endswith("block")) or "experts" in children


def _check_block(block: nn.Module) -> ExpertBank:
    name = type(block).__name__
    children = dict(block.named_children())
    missing = {"gate", "experts"} - children.keys()
    extra = children.keys() - _ALLOWED_CHILDREN
    if missing or extra:
        detail = f"missing {sorted(missing)}" if missing else f"unknown children {sorted(extra)}"
        raise UnsupportedMoEError(f"unsupported sparse-MoE block layout {name}: {detail}")
    if ("shared_expert" in children) != ("shared_expert_gate" in children):
        raise UnsupportedMoEError(
            f"unsupported sparse-MoE block layout {name}: shared_expert without its gate"
        )
    gate = children["gate"]
    weight = getattr(gate, "weight", None)
    if not isinstance(weight, Tensor) or weight.dim() != 2 or not hasattr(gate, "top_k"):
        raise UnsupportedMoEError(
            f"unsupported sparse-MoE block layout {name}: router {type(gate).__name__} is not a "
            "top-k router with a [E, D] weight"
        )
    try:
        bank = ExpertBank(children["experts"])
    except UnsupportedMoEError as err:
        raise UnsupportedMoEError(f"unsupported sparse-MoE block layout {name}: {err}") from None
    if tuple(weight.shape) != (bank.num_experts, bank.hidden_size):
        raise UnsupportedMoEError(
            f"unsupported sparse-MoE block layout {name}: router weight {tuple(weight.shape)} "
            f"does not match {bank.num_experts} experts of width {bank.hidden_size}"
        )
    if name not in KNOWN_MOE_BLOCKS:
        warnings.warn(
            f"{name} is not a known sparse-MoE block; split by its layout "
            "(router + fused experts), check the logits against the unsplit model",
            stacklevel=3,
        )
    return bank


def find_moe_blocks(model: nn.Module, where: str | None = None) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every sparse-MoE block, in model order.

    Raises:
        NotMoECheckpointError: none found.
        UnsupportedMoEError: a block whose layout is not supported (the class is named).
    """
    blocks: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix, _ in blocks):
            continue
        if _looks_like_moe(module):
            _check_block(module)
            blocks.append((name, module))
    if not blocks:
        what = f"checkpoint {where!r}" if where else f"model {type(model).__name__}"
        raise NotMoECheckpointError(
            f"{what} is not an MoE checkpoint: no sparse-MoE block found in "
            f"{type(model).__name__}"
        )
    return blocks


# --------------------------------------------------------------------------------------------
# Split execution
# --------------------------------------------------------------------------------------------


def _make_forward(split: SplitMoE, layer: int, bank: ExpertBank) -> Callable[..., Tensor]:
    def forward(self: nn.Module, hidden_states: Tensor) -> Tensor:
        shape = hidden_states.shape
        jitter = float(getattr(self, "jitter_noise", 0.0) or 0.0)
        if self.training and jitter > 0:  # Mixtral's training-time input jitter
            hidden_states = hidden_states * torch.empty_like(hidden_states).uniform_(
                1.0 - jitter, 1.0 + jitter
            )
        x = hidden_states.reshape(-1, shape[-1])
        logits, top_w, top_idx = self.gate(x)
        routing = Routing(
            probs=torch.softmax(logits.float(), dim=-1),
            top_idx=top_idx.long(),
            top_w=top_w.float(),
        )
        out = split.dispatcher.moe_layer(layer, x, routing, bank)
        if out.shape != x.shape:
            raise RuntimeError(
                f"dispatcher.moe_layer returned shape {tuple(out.shape)} for layer {layer}, "
                f"expected {tuple(x.shape)}"
            )
        out = out.to(x.dtype)
        if hasattr(self, "shared_expert"):
            out = out + F.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)
        return out.reshape(shape)

    return forward


class SplitMoE:
    """Routes the experts of every sparse-MoE block of ``model`` through ``dispatcher``.

    The blocks are patched on construction (:meth:`attach`); :meth:`detach` (or leaving the
    ``with`` block) restores the original forwards. In each patched block the router runs as
    before, a :class:`~wdmoe_link.routing.Routing` is built from its outputs, and
    ``dispatcher.moe_layer(layer, x, routing, experts)`` returns the routed-expert mixture; a
    Qwen2-MoE shared expert is added afterwards at the BS.

    Args:
        model: a model containing sparse-MoE blocks (e.g. from :func:`load_moe`).
        dispatcher: implements :class:`~wdmoe_link.routing.Dispatcher`.

    Attributes:
        blocks: the patched modules, in order (MoE layer ``i`` is ``blocks[i]``).
        block_names: their qualified names (e.g. ``"model.layers.3.mlp"``).
        experts: one :class:`ExpertBank` per MoE layer.
        decoder_layers: decoder-layer index of each MoE layer (``None`` if not parsable).
    """

    def __init__(self, model: nn.Module, dispatcher: Dispatcher) -> None:
        for attr in ("moe_layer", "begin_step", "end_step"):
            if not callable(getattr(dispatcher, attr, None)):
                raise TypeError(
                    f"dispatcher {type(dispatcher).__name__} has no method {attr!r} "
                    "(see wdmoe_link.routing.Dispatcher)"
                )
        found = find_moe_blocks(model)
        self.model = model
        self.dispatcher = dispatcher
        self.block_names = [name for name, _ in found]
        self.blocks = [block for _, block in found]
        self.experts = [ExpertBank(block.experts) for block in self.blocks]
        self.decoder_layers: list[int | None] = []
        for name in self.block_names:
            m = re.search(r"(?:^|\.)(\d+)(?:\.|$)", name)
            self.decoder_layers.append(int(m.group(1)) if m else None)
        first = self.experts[0]
        for i, bank in enumerate(self.experts):
            if (bank.num_experts, bank.hidden_size) != (first.num_experts, first.hidden_size):
                raise UnsupportedMoEError(
                    f"MoE layer {i} has {bank.num_experts} experts of width {bank.hidden_size}, "
                    f"layer 0 has {first.num_experts} of width {first.hidden_size}"
                )
        self._top_k = int(self.blocks[0].gate.top_k)
        self._attached = False
        self._saved: list[tuple[bool, Any]] = []
        self.attach()

    # -- shape ---------------------------------------------------------------------------

    @property
    def num_layers(self) -> int:
        """Number of sparse-MoE layers."""
        return len(self.blocks)

    @property
    def num_experts(self) -> int:
        """Routed experts per MoE layer."""
        return self.experts[0].num_experts

    @property
    def top_k(self) -> int:
        """Experts per token picked by the router."""
        return self._top_k

    @property
    def hidden_size(self) -> int:
        """Width ``D`` of the expert inputs and outputs (elements)."""
        return self.experts[0].hidden_size

    @property
    def intermediate_size(self) -> int:
        """Expert FFN width ``F`` (elements)."""
        return self.experts[0].intermediate_size

    @property
    def attached(self) -> bool:
        """Whether the blocks are currently patched."""
        return self._attached

    # -- patching ------------------------------------------------------------------------

    def attach(self) -> SplitMoE:
        """Patch every block (no-op if already attached by this object)."""
        if self._attached:
            return self
        for name, block in zip(self.block_names, self.blocks, strict=True):
            owner = getattr(block, _MARK, None)
            if owner is not None and owner is not self:
                raise RuntimeError(f"block {name} is already split by another SplitMoE")
        self._saved = []
        for layer, (block, bank) in enumerate(zip(self.blocks, self.experts, strict=True)):
            had_own = "forward" in block.__dict__
            self._saved.append((had_own, block.__dict__.get("forward")))
            block.forward = types.MethodType(_make_forward(self, layer, bank), block)
            setattr(block, _MARK, self)
        self._attached = True
        return self

    def detach(self) -> None:
        """Restore the original block forwards (no-op if not attached)."""
        if not self._attached:
            return
        for block, (had_own, fwd) in zip(self.blocks, self._saved, strict=True):
            if had_own:
                block.forward = fwd
            else:
                del block.forward
            delattr(block, _MARK)
        self._saved = []
        self._attached = False

    def __enter__(self) -> SplitMoE:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        return (
            f"SplitMoE({type(self.model).__name__}, layers={self.num_layers}, "
            f"experts={self.num_experts}, top_k={self.top_k}, hidden={self.hidden_size}, "
            f"attached={self._attached})"
        )
