"""Routing decisions, expert weights and the dispatch interface of a split MoE layer.

A sparse-MoE layer split between a base station (BS) and devices is cut into three parts:

* the router (at the BS) produces a :class:`Routing` for the ``N`` tokens of the layer call;
* the expert FFNs of the layer are wrapped by an :class:`ExpertBank`, so that expert ``e`` can
  be run on any subset of token rows (on the device that holds it);
* a :class:`Dispatcher` decides which experts actually run, where, and how their outputs are
  combined. :class:`LocalDispatcher` is the unsplit reference: it reproduces the model's own
  top-k mixture.

Recent ``transformers`` versions (5.x) store all experts of a layer as fused 3-D tensors
(``gate_up_proj [E, 2F, D]``, ``down_proj [E, D, F]``) and run them through a selectable kernel
(``config._experts_implementation``). None of these kernels evaluates one expert on a chosen set
of rows, which split execution needs, so :class:`ExpertBank` evaluates the FFN of one expert
directly from the fused tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
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
        probs: ``[N, E]`` float32, softmax over all ``E`` experts' router logits.
        top_idx: ``[N, k]`` int64, experts picked by the model's own router (descending prob).
        top_w: ``[N, k]`` float32, the model's own combination weights for ``top_idx``
            (Mixtral: the top-k probabilities renormalised to sum 1; OLMoE / Qwen2-MoE with
            ``norm_topk_prob=False``: the raw probabilities).
    """

    probs: Tensor
    top_idx: Tensor
    top_w: Tensor

    def __post_init__(self) -> None:
        if self.probs.dim() != 2:
            raise ValueError(f"probs must be [N, E], got shape {tuple(self.probs.shape)}")
        if self.top_idx.dim() != 2 or self.top_idx.shape != self.top_w.shape:
            raise ValueError(
                f"top_idx and top_w must both be [N, k], got {tuple(self.top_idx.shape)} and "
                f"{tuple(self.top_w.shape)}"
            )
        if self.top_idx.shape[0] != self.probs.shape[0]:
            raise ValueError(
                f"probs has {self.probs.shape[0]} rows but top_idx has {self.top_idx.shape[0]}"
            )

    @property
    def num_tokens(self) -> int:
        """``N``, tokens in the layer call."""
        return int(self.probs.shape[0])

    @property
    def num_experts(self) -> int:
        """``E``, experts of the layer."""
        return int(self.probs.shape[1])

    @property
    def top_k(self) -> int:
        """``k``, experts per token picked by the router."""
        return int(self.top_idx.shape[1])

    def loads(self) -> Tensor:
        """``[E]`` int64: number of tokens routed to each expert (top-k picks)."""
        return torch.bincount(self.top_idx.reshape(-1), minlength=self.num_experts)


def _default_gate_fn() -> object | None:
    try:
        from transformers.integrations.moe import _default_apply_gate
    except ImportError:  # older layouts without the experts-implementation hook
        return None
    return _default_apply_gate


class ExpertBank:
    """The routed experts of one MoE layer, callable one expert at a time.

    Wraps a fused ``transformers`` experts module (Mixtral, Qwen2-MoE, OLMoE, ...) with
    ``gate_up_proj [E, 2F, D]`` (gate rows first, then up rows), ``down_proj [E, D, F]`` and
    ``act_fn``; expert ``e`` computes ``down_e(act(gate_e x) * up_e x)``. The weights are used
    in place, never copied.

    Raises:
        UnsupportedMoEError: a layout that is not the one above (transposed, interleaved,
            biased, ungated, post-expert norm or a custom gating function); the message names
            the class.
    """

    def __init__(self, experts: nn.Module) -> None:
        name = type(experts).__name__
        gate_up = getattr(experts, "gate_up_proj", None)
        down = getattr(experts, "down_proj", None)
        if not isinstance(gate_up, Tensor) or not isinstance(down, Tensor):
            raise UnsupportedMoEError(
                f"{name}: expected fused expert tensors 'gate_up_proj' and 'down_proj'"
            )
        flags = {
            "is_transposed": (getattr(experts, "is_transposed", False), False),
            "is_concatenated": (getattr(experts, "is_concatenated", True), True),
            "has_bias": (getattr(experts, "has_bias", False), False),
            "has_gate": (getattr(experts, "has_gate", True), True),
            "has_post_expert_norm": (getattr(experts, "has_post_expert_norm", False), False),
        }
        bad = [f"{k}={v!r}" for k, (v, want) in flags.items() if bool(v) != want]
        if bad:
            raise UnsupportedMoEError(f"{name}: unsupported expert layout ({', '.join(bad)})")
        custom_gate = type(experts).__dict__.get("_apply_gate")
        if custom_gate is not None and custom_gate is not _default_gate_fn():
            raise UnsupportedMoEError(f"{name}: custom gating function '_apply_gate'")
        if gate_up.dim() != 3 or down.dim() != 3:
            raise UnsupportedMoEError(
                f"{name}: gate_up_proj and down_proj must be 3-D, got "
                f"{tuple(gate_up.shape)} and {tuple(down.shape)}"
            )
        e, two_f, d = gate_up.shape
        if two_f % 2 or tuple(down.shape) != (e, d, two_f // 2):
            raise UnsupportedMoEError(
                f"{name}: gate_up_proj {tuple(gate_up.shape)} and down_proj {tuple(down.shape)} "
                "are not [E, 2F, D] and [E, D, F]"
            )
        if not callable(getattr(experts, "act_fn", None)):
            raise UnsupportedMoEError(f"{name}: no activation 'act_fn'")
        self.module = experts
        self.num_experts = int(e)
        self.hidden_size = int(d)
        self.intermediate_size = int(two_f // 2)

    @property
    def flops_per_token(self) -> float:
        """FLOPs of one expert on one token: ``2 * 3 * D * F`` (a multiply-add counts 2)."""
        return 6.0 * self.hidden_size * self.intermediate_size

    def weight_bytes(self, e: int) -> int:
        """Bytes of expert ``e``'s weights (gate, up and down) in their stored dtype."""
        self._check_index(e)
        m = self.module
        return int(
            m.gate_up_proj[e].numel() * m.gate_up_proj.element_size()
            + m.down_proj[e].numel() * m.down_proj.element_size()
        )

    def _check_index(self, e: int) -> None:
        if not 0 <= int(e) < self.num_experts:
            raise IndexError(f"expert index must be in [0, {self.num_experts - 1}], got {e}")

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
        m = self.module
        gate, up = F.linear(x, m.gate_up_proj[e]).chunk(2, dim=-1)
        return F.linear(m.act_fn(gate) * up, m.down_proj[e])

    def __repr__(self) -> str:
        return (
            f"ExpertBank({type(self.module).__name__}, E={self.num_experts}, "
            f"D={self.hidden_size}, F={self.intermediate_size})"
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
    """``out[i] = sum_j weights[i, j] * experts(idx[i, j], x[i])``, one expert call per expert.

    Entries with weight exactly 0 are skipped (the expert does not run for them).

    Args:
        x: ``[N, D]`` expert inputs.
        idx: ``[N, k]`` expert indices.
        weights: ``[N, k]`` combination weights (any float dtype).
        experts: the layer's experts.

    Returns:
        ``[N, D]``, dtype of ``x``.
    """
    out = torch.zeros_like(x)
    active = weights != 0
    for e in torch.unique(idx[active]).tolist():
        rows, slots = torch.nonzero((idx == e) & active, as_tuple=True)
        y = experts(e, x[rows]) * weights[rows, slots, None]
        out.index_add_(0, rows, y.to(out.dtype))
    return out


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
