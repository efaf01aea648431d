"""Routing decisions, expert weights and the dispatch interface of a split MoE layer.

A sparse-MoE layer split between a base station (BS) and devices is cut into three parts:

* the router (at the BS) produces a :class:`Routing` for the ``N`` tokens of the layer call;
* the expert FFNs of the layer are wrapped by an :class:`ExpertBank`, so that expert ``e`` can
  be run on any subset of token rows (on the device that holds it);
* a :class:`Dispatcher` decides which experts actually run, where, and how their outputs are
  combined. :class:`LocalDispatcher` is the unsplit reference: it reproduces the model's own
  top-k mixture.

``transformers`` 5.x stores all experts of a layer as 3-D tensors and runs them through a
selectable kernel (``config._experts_implementation``, the experts interface). Split execution
needs the output of one expert on the rows one device received; :class:`ExpertBank` gets it
from the same kernels, called with one expert per row and weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "Dispatcher",
    "ExpertBank",
    "LocalDispatcher",
    "Routing",
    "TopNDispatcher",
    "UnsupportedMoEError",
    "combine",
]

Phase = Literal["prefill", "decode"]


class UnsupportedMoEError(ValueError):
    """An MoE block or expert layout that split execution does not handle."""


@dataclass(frozen=True)
class Routing:
    """The router's decision for the ``N`` tokens of one MoE layer call.

    Attributes:
        probs: ``[N, E]`` float32, softmax over all ``E`` experts' router logits, or ``None``
            when the router does not expose its logits.
        top_idx: ``[N, k]`` int64, experts picked by the model's own router (descending prob).
        top_w: ``[N, k]`` float32, the model's own combination weights for ``top_idx``
            (Mixtral: the top-k probabilities renormalised to sum 1; OLMoE / Qwen2-MoE with
            ``norm_topk_prob=False``: the raw probabilities).
    """

    probs: Tensor | None
    top_idx: Tensor
    top_w: Tensor
    expert_count: int | None = None

    def __post_init__(self) -> None:
        if self.probs is None:
            if self.expert_count is None:
                raise ValueError("Routing without probs needs expert_count (the number of experts)")
        elif self.probs.dim() != 2:
            raise ValueError(f"probs must be [N, E], got shape {tuple(self.probs.shape)}")
        if self.top_idx.dim() != 2 or self.top_idx.shape != self.top_w.shape:
            raise ValueError(
                f"top_idx and top_w must both be [N, k], got {tuple(self.top_idx.shape)} and "
                f"{tuple(self.top_w.shape)}"
            )
        if self.probs is not None and self.top_idx.shape[0] != self.probs.shape[0]:
            raise ValueError(
                f"probs has {self.probs.shape[0]} rows but top_idx has {self.top_idx.shape[0]}"
            )

    @property
    def num_tokens(self) -> int:
        """``N``, tokens in the layer call."""
        return int(self.top_idx.shape[0])

    @property
    def num_experts(self) -> int:
        """``E``, experts of the layer."""
        return int(self.probs.shape[1]) if self.probs is not None else int(self.expert_count)

    @property
    def top_k(self) -> int:
        """``k``, experts per token picked by the router."""
        return int(self.top_idx.shape[1])

    def loads(self) -> Tensor:
        """``[E]`` int64: number of tokens routed to each expert (top-k picks)."""
        return torch.bincount(self.top_idx.reshape(-1), minlength=self.num_experts)


#: Experts implementations that can evaluate (row, expert) pairs; the first one that the
#: model's own configuration names is used, ``"grouped_mm"`` otherwise.
PAIR_KERNELS: tuple[str, ...] = ("grouped_mm", "batched_mm", "eager")


def is_interface_experts(module: nn.Module) -> bool:
    """Whether ``module`` is an experts layer of the ``transformers`` experts interface.

    Such a class is decorated with ``transformers.integrations.use_experts_implementation``,
    which wraps its ``forward`` and gives each instance the layout flags (``has_gate``,
    ``has_bias``, ``is_transposed``, ...), and dispatches on ``config._experts_implementation``.
    """
    forward = getattr(type(module), "forward", None)
    return (
        hasattr(forward, "__wrapped__")
        and hasattr(module, "_is_expert_parallel")
        and hasattr(module, "has_gate")
        and hasattr(module, "is_transposed")
        and hasattr(module, "config")
    )


class ExpertBank:
    """The routed experts of one MoE layer, callable one (row, expert) pair at a time.

    Wraps an experts module of the ``transformers`` experts interface (every sparse-MoE
    family of ``transformers`` 5.x: Mixtral, Qwen-MoE, OLMoE, DeepSeek-V3, gpt-oss, GLM-4.5,
    Granite-MoE, Phi-MoE, ERNIE-4.5-MoE, ...). Expert outputs come from the module's own
    kernel, called with one expert per row and weight 1, so every layout the interface knows
    (fused or interleaved gate/up, transposed, biased, non-gated, post-expert norm, a custom
    ``_apply_gate``) is computed by the model's own code. The weights are used in place.

    Args:
        experts: the experts module.
        kernel: experts implementation used for the pairs (one of :data:`PAIR_KERNELS`);
            default: the one the model is configured with if it is in that list, else
            ``"grouped_mm"``.

    Raises:
        UnsupportedMoEError: ``experts`` is not an experts-interface module, or its weights
            do not have a leading expert dimension; the message names the class.
    """

    def __init__(self, experts: nn.Module, kernel: str | None = None) -> None:
        name = type(experts).__name__
        if not is_interface_experts(experts):
            raise UnsupportedMoEError(
                f"{name} does not use the transformers experts interface "
                "(@use_experts_implementation), which split execution needs"
            )
        down = getattr(experts, "down_proj", None)
        up = getattr(experts, "gate_up_proj" if experts.has_gate else "up_proj", None)
        if not isinstance(down, Tensor) or not isinstance(up, Tensor) or down.dim() != 3:
            raise UnsupportedMoEError(f"{name}: expected 3-D expert weight tensors")
        e = int(down.shape[0])
        # down_proj is [E, D, F], or [E, F, D] when transposed
        d, f = (down.shape[2], down.shape[1]) if experts.is_transposed else down.shape[1:]
        if kernel is None:
            configured = getattr(experts.config, "_experts_implementation", None)
            kernel = configured if configured in PAIR_KERNELS else "grouped_mm"
        if kernel not in PAIR_KERNELS:
            raise ValueError(f"kernel must be one of {PAIR_KERNELS}, got {kernel!r}")
        self.module = experts
        self.kernel = kernel
        self.num_experts = e
        self.hidden_size = int(d)
        self.intermediate_size = int(f)

    @property
    def flops_per_token(self) -> float:
        """FLOPs of one expert on one token: ``2 * 3 * D * F`` for a gated FFN, ``2 * 2 * D * F``
        without a gate (a multiply-add counts 2)."""
        mats = 3 if self.module.has_gate else 2
        return 2.0 * mats * self.hidden_size * self.intermediate_size

    def weight_bytes(self, e: int) -> int:
        """Bytes of expert ``e``'s parameters (projections and biases) in their stored dtype."""
        self._check_index(e)
        return int(sum(p[e].numel() * p.element_size()
                       for p in self.module.parameters(recurse=False)
                       if p.dim() >= 1 and p.shape[0] == self.num_experts))

    def _check_index(self, e: int) -> None:
        if not 0 <= int(e) < self.num_experts:
            raise IndexError(f"expert index must be in [0, {self.num_experts - 1}], got {e}")

    def _forward(self) -> object:
        if self.kernel == "eager":
            return type(self.module).forward.__wrapped__
        from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

        return ALL_EXPERTS_FUNCTIONS[self.kernel]

    def pairs(self, x: Tensor, expert: Tensor) -> Tensor:
        """Output of expert ``expert[i]`` on row ``x[i]``, for every row (no gate weight).

        Args:
            x: ``[n, D]`` post-norm expert inputs (``n`` may be 0).
            expert: ``[n]`` integer expert indices in ``[0, E)``.

        Returns:
            ``[n, D]`` expert outputs, dtype of ``x``.
        """
        if x.dim() != 2 or x.shape[1] != self.hidden_size:
            raise ValueError(f"x must be [n, {self.hidden_size}], got shape {tuple(x.shape)}")
        expert = torch.as_tensor(expert).reshape(-1).to(device=x.device, dtype=torch.long)
        if expert.numel() != x.shape[0]:
            raise ValueError(f"expert must hold one index per row of x ({x.shape[0]}), got "
                             f"{expert.numel()}")
        if x.shape[0] == 0:
            return x.new_zeros(0, self.hidden_size)
        lo, hi = int(expert.min()), int(expert.max())
        if lo < 0 or hi >= self.num_experts:
            raise IndexError(f"expert index must be in [0, {self.num_experts - 1}], got values "
                             f"in [{lo}, {hi}]")
        ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        out = self._forward()(self.module, x, expert[:, None], ones)
        return out.to(x.dtype)

    def __call__(self, e: int | Tensor, x: Tensor) -> Tensor:
        """Output of expert ``e`` for the rows of ``x`` (no gate weight applied).

        Args:
            e: expert index in ``[0, E)``.
            x: ``[n, D]`` post-norm expert inputs (``n`` may be 0).

        Returns:
            ``[n, D]`` expert outputs, dtype of ``x``.
        """
        e = int(e)
        self._check_index(e)
        if x.dim() != 2 or x.shape[1] != self.hidden_size:
            raise ValueError(f"x must be [n, {self.hidden_size}], got shape {tuple(x.shape)}")
        return self.pairs(x, torch.full((x.shape[0],), e, dtype=torch.long))

    def __repr__(self) -> str:
        return (
            f"ExpertBank({type(self.module).__name__}, E={self.num_experts}, "
            f"D={self.hidden_size}, F={self.intermediate_size}, kernel={self.kernel!r})"
        )


@runtime_checkable
class Dispatcher(Protocol):
    """What a split sparse-MoE block calls; implemented by local and wireless systems."""

    def moe_layer(self, layer: int, x: Tensor, routing: Routing, experts: ExpertBank) -> Tensor:
        """Routed-expert output of MoE layer ``layer``.

        Args:
            layer: MoE layer index, 0-based, in model order.
            x: ``[N, D]`` post-norm expert input of every token of this layer call.
            routing: the router's decision for these tokens.
            experts: the layer's experts.

        Returns:
            ``[N, D]`` weighted sum of expert outputs (without any shared expert).
        """
        ...

    def begin_step(self, phase: Phase, num_tokens: int) -> None:
        """A forward pass starts: ``"prefill"`` of the prompt or one ``"decode"`` token."""
        ...

    def end_step(self) -> None:
        """The forward pass started by :meth:`begin_step` has finished."""
        ...


def combine(x: Tensor, idx: Tensor, weights: Tensor, experts: ExpertBank) -> Tensor:
    """``out[i] = sum_j weights[i, j] * experts(idx[i, j], x[i])``, in one kernel call.

    A dropped slot is the skip slot ``idx = E`` (:attr:`ExpertBank.num_experts`) or a zero
    weight, as in ``transformers``' experts interface: the expert does not run for it.

    Args:
        x: ``[N, D]`` expert inputs.
        idx: ``[N, k]`` expert indices in ``[0, E]``.
        weights: ``[N, k]`` combination weights (any float dtype).
        experts: the layer's experts.

    Returns:
        ``[N, D]``, dtype of ``x``.
    """
    out = torch.zeros_like(x)
    idx = idx.to(x.device)
    weights = weights.to(x.device)
    active = (weights != 0) & (idx != experts.num_experts)
    rows, slots = torch.nonzero(active, as_tuple=True)
    if rows.numel() == 0:
        return out
    y = experts.pairs(x[rows], idx[rows, slots]) * weights[rows, slots, None]
    return out.index_add_(0, rows, y.to(out.dtype))


class LocalDispatcher:
    """Unsplit reference: every token runs its router-picked experts with the router's weights.

    ``out = sum_j top_w[:, j] * experts(top_idx[:, j], x)``, which equals the model's own MoE
    block. Counts layer calls and steps (useful in tests).
    """

    def __init__(self) -> None:
        self.steps: list[tuple[Phase, int]] = []
        self.layer_calls = 0
        self.in_step = False

    def moe_layer(self, layer: int, x: Tensor, routing: Routing, experts: ExpertBank) -> Tensor:
        self.layer_calls += 1
        return combine(x, routing.top_idx, routing.top_w, experts)

    def begin_step(self, phase: Phase, num_tokens: int) -> None:
        self.steps.append((phase, int(num_tokens)))
        self.in_step = True

    def end_step(self) -> None:
        self.in_step = False


class TopNDispatcher(LocalDispatcher):
    """Keeps only each token's ``n`` best router-picked experts, weights renormalised to sum 1.

    ``n = 1`` is the "always top-1" extreme of expert dropping; ``n >= k`` equals
    :class:`LocalDispatcher`.
    """

    def __init__(self, n: int = 1) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        super().__init__()
        self.n = n

    def moe_layer(self, layer: int, x: Tensor, routing: Routing, experts: ExpertBank) -> Tensor:
        self.layer_calls += 1
        n = min(self.n, routing.top_k)
        # top_idx is not guaranteed to be sorted by weight for every router; sort here.
        w, order = torch.sort(routing.top_w, dim=-1, descending=True)
        idx = torch.gather(routing.top_idx, 1, order)[:, :n]
        w = w[:, :n]
        w = w / w.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
        return combine(x, idx, w, experts)
