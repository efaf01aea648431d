"""Split execution of Hugging Face sparse-MoE causal LMs loaded from a local directory.

:func:`load_moe` loads a local checkpoint (never downloads) and checks that it is an MoE causal
LM. :class:`SplitMoE` splits it through the official extension point of ``transformers`` 5.x,
the experts interface: every sparse-MoE family decorates its experts module with
``use_experts_implementation`` and calls it as ``experts(hidden_states [T, D],
top_k_index [T, k], top_k_weights [T, k])``, dispatched on ``config._experts_implementation``
through ``ALL_EXPERTS_FUNCTIONS``. This module registers a ``"wdmoe"`` implementation that hands
each call to ``dispatcher.moe_layer``; :class:`SplitMoE` switches the model to it with
``model.set_experts_implementation`` and back. The router (its bias, group-limited routing and
scaling factors), shared experts, norms, attention, the KV cache and the LM head all run as the
model's own code, at the base station; only the routed experts are dispatched.

A family whose MoE layer does not go through the interface (Llama-4 text, JetMoE) raises
:class:`UnsupportedMoEError` naming the class.

Usage::

    model = load_moe("tiny")
    with SplitMoE(model, LocalDispatcher()) as split:   # switched on construction
        logits = model(ids).logits                      # same as the unsplit model
    # restored here (or call split.detach())
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .routing import Dispatcher, ExpertBank, Routing, UnsupportedMoEError, is_interface_experts

__all__ = [
    "EXPERTS_IMPLEMENTATION",
    "NotMoECheckpointError",
    "SplitMoE",
    "UnsupportedMoEError",
    "find_moe_blocks",
    "load_moe",
]

#: Name of the experts implementation registered in ``transformers``' ``ExpertsInterface``.
EXPERTS_IMPLEMENTATION = "wdmoe"

_MARK = "_wdmoe_split_owner"
_ROUTER_NAMES = ("gate", "router")


class NotMoECheckpointError(ValueError):
    """A checkpoint or model without any sparse-MoE block."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _resolve_dir(path_or_name: str | Path) -> Path:
    if isinstance(path_or_name, str) and path_or_name in ("tiny", "text"):
        from .tiny import TEXT_DIR, TINY_DIR

        path = TINY_DIR if path_or_name == "tiny" else TEXT_DIR
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
        path_or_name: ``"tiny"`` (the shipped arithmetic model, :data:`wdmoe_link.tiny.TINY_DIR`),
            ``"text"`` (the shipped text model, :data:`wdmoe_link.tiny.TEXT_DIR`) or a local
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
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(
            f"{str(path / 'config.json')!r} is not a readable transformers config "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(
            f"checkpoint {str(path)!r} (model_type={config.model_type!r}) is not a causal "
            "language model"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype,
                                                     local_files_only=True)
    except Exception as exc:  # truncated or foreign weight files raise many kinds of errors
        raise ValueError(
            f"cannot load the weights of checkpoint {str(path)!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); expected model.safetensors "
            "(or shards with an index) written by save_pretrained"
        ) from None
    model = model.to(device).eval()
    find_moe_blocks(model, where=str(path))  # raises if not an MoE model
    return model


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


def _is_moe_candidate(module: nn.Module) -> bool:
    """A module that looks like an MoE layer or an expert bank by its class name."""
    name = type(module).__name__.lower()
    return "experts" in name or ("moe" in name and name.endswith(("block", "moe"))) or (
        "experts" in dict(module.named_children())
    )


def find_moe_blocks(model: nn.Module, where: str | None = None) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every sparse-MoE block, in model order.

    A block is the parent of an experts module of the ``transformers`` experts interface.

    Raises:
        NotMoECheckpointError: none found.
        UnsupportedMoEError: an MoE layer that does not use the experts interface (the class
            is named).
    """
    named = dict(model.named_modules())
    experts = [n for n, m in named.items() if is_interface_experts(m)]
    for name, module in named.items():
        if not _is_moe_candidate(module) or is_interface_experts(module):
            continue
        inside = name == "" or any(e == name or e.startswith(name + ".") for e in experts)
        below = any(name.startswith(e + ".") for e in experts)
        if not inside and not below and not (name == "" and experts):
            raise UnsupportedMoEError(
                f"{type(module).__name__} ({name or 'the model'}) is a sparse-MoE layer that "
                "does not use the transformers experts interface (@use_experts_implementation); "
                "split execution supports the families that do (Mixtral, Qwen-MoE, OLMoE, "
                "DeepSeek-V3, gpt-oss, GLM-4.5, Granite-MoE, Phi-MoE, ERNIE-4.5-MoE, ...)"
            )
    if not experts:
        what = f"checkpoint {where!r}" if where else f"model {type(model).__name__}"
        raise NotMoECheckpointError(
            f"{what} is not an MoE checkpoint: no sparse-MoE block found in "
            f"{type(model).__name__}"
        )
    blocks = []
    for name in experts:
        parent = name.rpartition(".")[0]
        blocks.append((parent, named[parent]))
    return blocks


def _router_of(block: nn.Module, experts: nn.Module) -> nn.Module | None:
    for name in _ROUTER_NAMES:
        child = getattr(block, name, None)
        if isinstance(child, nn.Module) and child is not experts:
            return child
    return None


def _top_k_of(block: nn.Module, router: nn.Module | None, config: Any) -> int:
    for obj in (router, block):
        k = getattr(obj, "top_k", None)
        if isinstance(k, int) and not isinstance(k, bool) and k >= 1:
            return k
    for key in ("num_experts_per_tok", "moe_k", "top_k"):
        k = getattr(config, key, None)
        if isinstance(k, int) and not isinstance(k, bool) and k >= 1:
            return k
    raise UnsupportedMoEError(f"{type(block).__name__}: cannot tell the router's top-k")


# --------------------------------------------------------------------------------------------
# The "wdmoe" experts implementation
# --------------------------------------------------------------------------------------------


def wdmoe_experts_forward(self: nn.Module, hidden_states: Tensor, top_k_index: Tensor,
                          top_k_weights: Tensor) -> Tensor:
    """The ``"wdmoe"`` experts implementation: hands the call to the owning :class:`SplitMoE`.

    Args:
        self: the experts module.
        hidden_states: ``[T, D]`` post-norm expert inputs.
        top_k_index: ``[T, k]`` experts the model's router picked.
        top_k_weights: ``[T, k]`` the model's combination weights (after its own
            normalization and scaling).

    Returns:
        ``[T, D]`` routed-expert mixture, dtype of ``hidden_states``.
    """
    owner = getattr(self, _MARK, None)
    if owner is None:
        raise RuntimeError(
            f"{type(self).__name__} is configured with experts implementation "
            f"{EXPERTS_IMPLEMENTATION!r} but no SplitMoE owns it; build a SplitMoE (or "
            "WDMoESystem) on the model, or call model.set_experts_implementation('grouped_mm')"
        )
    split, layer = owner
    return split._layer_call(layer, hidden_states, top_k_index, top_k_weights)


def _register() -> None:
    from transformers.integrations.moe import ExpertsInterface

    ExpertsInterface.register(EXPERTS_IMPLEMENTATION, wdmoe_experts_forward)


_register()


# --------------------------------------------------------------------------------------------
# Split execution
# --------------------------------------------------------------------------------------------


class SplitMoE:
    """Routes the experts of every sparse-MoE layer of ``model`` through ``dispatcher``.

    On construction (:meth:`attach`) the model is switched to the ``"wdmoe"`` experts
    implementation; :meth:`detach` (or leaving the ``with`` block) restores the one it had. In
    each layer call the model's own router has already run; a
    :class:`~wdmoe_link.routing.Routing` is built from its top-k indices and weights (and the
    softmax of its logits, read by a forward hook on the router), and
    ``dispatcher.moe_layer(layer, x, routing, experts)`` returns the routed-expert mixture. Shared
    experts and everything else stay the model's own code.

    Args:
        model: a ``transformers`` model containing sparse-MoE layers (e.g. from
            :func:`load_moe`).
        dispatcher: implements :class:`~wdmoe_link.routing.Dispatcher`.

    Attributes:
        blocks: the MoE blocks (parents of the experts modules), in order (MoE layer ``i`` is
            ``blocks[i]``).
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
        if not callable(getattr(model, "set_experts_implementation", None)):
            raise UnsupportedMoEError(
                f"{type(model).__name__} is not a transformers PreTrainedModel with "
                "set_experts_implementation (transformers >= 5)"
            )
        self.model = model
        self.dispatcher = dispatcher
        self.block_names = [name for name, _ in found]
        self.blocks = [block for _, block in found]
        modules = [block.experts if isinstance(getattr(block, "experts", None), nn.Module)
                   else next(m for m in block.children() if is_interface_experts(m))
                   for block in self.blocks]
        self.experts = [ExpertBank(m) for m in modules]
        self._routers = [_router_of(b, m) for b, m in zip(self.blocks, modules, strict=True)]
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
        self._top_k = _top_k_of(self.blocks[0], self._routers[0], modules[0].config)
        self._logits: list[Tensor | None] = [None] * len(self.blocks)
        self._hooks: list[Any] = []
        self._saved_impl: dict[str, str | None] | None = None
        self._attached = False
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
        """Whether the model currently runs its experts through the dispatcher."""
        return self._attached

    # -- the layer call --------------------------------------------------------------------

    def _layer_call(self, layer: int, x: Tensor, top_k_index: Tensor,
                    top_k_weights: Tensor) -> Tensor:
        bank = self.experts[layer]
        logits, self._logits[layer] = self._logits[layer], None
        probs = None
        if logits is not None:
            logits = logits.reshape(-1, logits.shape[-1])
            if tuple(logits.shape) == (x.shape[0], bank.num_experts):
                probs = torch.softmax(logits.float(), dim=-1)
        routing = Routing(probs=probs, top_idx=top_k_index.long(), top_w=top_k_weights.float(),
                          expert_count=bank.num_experts)
        out = self.dispatcher.moe_layer(layer, x, routing, bank)
        if out.shape != x.shape:
            raise RuntimeError(
                f"dispatcher.moe_layer returned shape {tuple(out.shape)} for layer {layer}, "
                f"expected {tuple(x.shape)}"
            )
        return out.to(x.dtype)

    def _router_hook(self, layer: int) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            logits = output[0] if isinstance(output, tuple) else output
            self._logits[layer] = logits.detach() if isinstance(logits, Tensor) else None

        return hook

    # -- switching -------------------------------------------------------------------------

    def attach(self) -> SplitMoE:
        """Switch the model to the dispatcher (no-op if already attached by this object)."""
        if self._attached:
            return self
        for name, bank in zip(self.block_names, self.experts, strict=True):
            owner = getattr(bank.module, _MARK, None)
            if owner is not None and owner[0] is not self:
                raise RuntimeError(f"block {name} is already split by another SplitMoE")
        self._saved_impl = self.model.get_experts_implementation()
        for layer, bank in enumerate(self.experts):
            setattr(bank.module, _MARK, (self, layer))
        for layer, router in enumerate(self._routers):
            if router is not None:
                self._hooks.append(router.register_forward_hook(self._router_hook(layer)))
        self._attached = True
        try:
            self.model.set_experts_implementation(EXPERTS_IMPLEMENTATION)
            stray = [name for name, bank in zip(self.block_names, self.experts, strict=True)
                     if getattr(bank.module.config, "_experts_implementation", None)
                     != EXPERTS_IMPLEMENTATION]
            if stray:
                raise UnsupportedMoEError(
                    f"{type(self.model).__name__}: set_experts_implementation did not reach the "
                    f"experts of {stray[0]} (their config is not the model's)"
                )
        except Exception:
            self.detach()
            raise
        return self

    def detach(self) -> None:
        """Restore the model's own experts implementation (no-op if not attached)."""
        if not self._attached:
            return
        if self._saved_impl is not None:
            self.model.set_experts_implementation(self._saved_impl)
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for bank in self.experts:
            if getattr(bank.module, _MARK, None) is not None:
                delattr(bank.module, _MARK)
        self._logits = [None] * len(self.blocks)
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
