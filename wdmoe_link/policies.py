"""Expert-selection and bandwidth policies of a WDMoE layer.

A policy looks at the router output of one MoE layer call (:class:`~wdmoe_link.routing.Routing`),
the expert-to-device map and the per-device latency model (:class:`~wdmoe_link.latency.DeviceCost`)
and returns a :class:`Decision`: which of the router's top-k experts each token keeps, their
combination weights and the bandwidth split.

* :class:`TopK`: the model's own top-k, equal split (vanilla baseline).
* :class:`WLR`: weight-to-latency-ratio dropping with an equal split. For token ``j`` and its
  top-k slot ``s`` (expert ``e``, device ``k = expert_map[e]``) the score is
  ``WLR = w / t_k`` with ``t_k`` the latency of device ``k`` serving one row. Rules:

  - ``"share"`` (A): ``rho = WLR / sum_s WLR``; drop slots with ``rho < theta``, never the
    arg-max-WLR slot.
  - ``"ratio"`` (B): drop slots with ``WLR < theta * max_s WLR``.
  - ``"gated"`` (C): drop a slot if its weight ``w < theta`` and its device is slower than the
    device of the token's highest-weight slot.

  Every rule keeps at least one expert per token and keeps everything at ``theta = 0``.
* :class:`Joint`: alternating bandwidth allocation (min-max, :func:`optimal_bandwidth`) and
  selection (a WLR rule or greedy dropping under a capability floor ``gamma``).

Policies are found by name with :func:`parse_policy` (``"topk"``, ``"wlr:0.2"``,
``"wlr:0.2:ratio"``, ``"joint"``, ``"joint:0.2"``, ``"joint:gamma=0.8"``); other modules add
theirs with :func:`register_policy`. WDMoE's selection rules and its joint optimisation exist in
no library, hence the code here.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from phy import Registry, format_spec
from phy.checks import check_bool, check_choice, check_number, check_positive_int, value_range

from .checks import check_expert_map, check_routing
from .latency import DeviceCost, equal_split, optimal_bandwidth

if TYPE_CHECKING:
    from .routing import Routing

__all__ = [
    "DEFAULT_THETA",
    "POLICIES",
    "RULES",
    "WEIGHT_MODES",
    "WLR",
    "Decision",
    "Joint",
    "JointConfig",
    "Policy",
    "TopK",
    "WLRConfig",
    "available_policies",
    "combine_weights",
    "device_loads",
    "parse_policy",
    "register_policy",
    "score_weights",
    "wlr_keep",
]

RULES: tuple[str, ...] = ("share", "ratio", "gated")
WEIGHT_MODES: tuple[str, ...] = ("renorm", "raw")
#: Threshold used by ``"wlr"`` and ``"joint"`` when none is given.
DEFAULT_THETA: float = 0.2

Rule = Literal["share", "ratio", "gated"]
WeightMode = Literal["renorm", "raw"]
_F64 = torch.float64


# --------------------------------------------------------------------------------------------
# decision


@dataclass
class Decision:
    """What a policy decided for one MoE layer call of ``N`` tokens with top-``k`` routing.

    ``keep`` and ``weights`` live on the device of the router's tensors; ``beta`` and the
    numbers in ``info`` on the CPU.

    Attributes:
        keep: bool ``[N, k]``, which of the router's top-k slots each token keeps (>= 1 per row).
        weights: float ``[N, k]`` combination weights, 0 where dropped. With renormalisation a
            row keeps the total weight of the router's own top-k weights (1 for routers that
            renormalise their top-k, e.g. Mixtral); rows that drop nothing are the router's
            weights unchanged.
        beta: float64 ``[K]`` bandwidth fractions (>= 0, sum <= 1).
        info: extra numbers (loads, estimated layer latency in s, optimisation history, ...).
        transports: ``(downlink, uplink)`` transport per device chosen by the policy
            (``None``: the system's own), e.g. by ``"link-aware"``.
    """

    keep: torch.Tensor
    weights: torch.Tensor
    beta: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    transports: list[tuple[Any, Any]] | None = None

    def __post_init__(self) -> None:
        if self.keep.dtype != torch.bool or self.keep.dim() != 2:
            raise ValueError(f"keep must be a bool tensor [N, k], got dtype {self.keep.dtype} "
                             f"shape {tuple(self.keep.shape)}")
        if self.weights.shape != self.keep.shape:
            raise ValueError(f"weights must have the shape of keep {tuple(self.keep.shape)}, "
                             f"got {tuple(self.weights.shape)}")
        if self.keep.shape[0] and not bool(self.keep.any(-1).all()):
            raise ValueError("keep must keep at least one expert for every token")
        if self.beta.dim() != 1:
            raise ValueError(f"beta must have shape [K], got {tuple(self.beta.shape)}")
        if not value_range(self.beta)[0] >= 0 or float(self.beta.sum()) > 1.0 + 1e-9:
            raise ValueError(f"beta must be >= 0 and sum to <= 1, got {self.beta.tolist()}")

    @property
    def experts_per_token(self) -> float:
        """Mean number of kept experts per token."""
        return float(self.keep.sum(-1).to(_F64).mean())

    @property
    def dropped(self) -> int:
        """Number of (token, expert) pairs dropped by the policy."""
        return int((~self.keep).sum())


# --------------------------------------------------------------------------------------------
# building blocks (also usable by other policies)




def score_weights(routing: Routing, weight: WeightMode = "renorm") -> torch.Tensor:
    """Gate weights used in the score, float64 ``[N, k]``.

    ``"renorm"``: the router's top-k weights rescaled to sum to 1 per token; ``"raw"``: the
    softmax probabilities over all experts (``routing.probs``) of the top-k experts.
    """
    check_choice("weight", weight, WEIGHT_MODES)
    top_idx, top_w = check_routing(routing)
    if weight == "raw":
        if routing.probs is None:
            raise ValueError("weight='raw' needs the router's probabilities over all experts, "
                             "which this router does not expose; use weight='renorm'")
        probs = routing.probs
        return probs.detach().cpu().to(_F64).gather(1, top_idx.cpu())
    w = top_w.detach().cpu().to(_F64)
    s = w.sum(-1, keepdim=True)
    return torch.where(s > 0, w / s.clamp_min(1e-300), torch.full_like(w, 1.0 / w.shape[1]))


def wlr_keep(w: torch.Tensor, t: torch.Tensor, theta: float, rule: Rule = "share") -> torch.Tensor:
    """Which top-k slots to keep under a weight-to-latency rule (bool ``[N, k]``).

    Args:
        w: gate weights ``[N, k]`` (>= 0).
        t: latency in s of the device of each slot serving one row ``[N, k]`` (> 0; +inf for
            a device without bandwidth).
        theta: threshold in [0, 1]; 0 keeps every slot.
        rule: ``"share"``, ``"ratio"`` or ``"gated"`` (see the module docstring).

    Never drops every slot of a token: ``"share"`` and ``"ratio"`` keep the arg-max-WLR slot,
    ``"gated"`` the highest-weight slot.
    """
    theta = check_number("theta", theta, low=0.0, high=1.0)
    check_choice("rule", rule, RULES)
    w = w.to(_F64)
    t = t.to(_F64)
    if theta == 0.0:
        return torch.ones(w.shape, dtype=torch.bool)
    if rule == "gated":
        first = w.argmax(-1, keepdim=True)
        t_first = t.gather(1, first)
        drop = (w < theta) & (t > t_first)
        drop.scatter_(1, first, False)
        return ~drop
    score = w / t  # +inf latency -> 0
    best = score.argmax(-1, keepdim=True)
    if rule == "share":
        total = score.sum(-1, keepdim=True)
        # A token whose scores are all 0 (every device without bandwidth) falls back to weights.
        w_total = w.sum(-1, keepdim=True).clamp_min(1e-300)
        rho = torch.where(total > 0, score / total.clamp_min(1e-300), w / w_total)
        keep = rho >= theta
    else:
        keep = score >= theta * score.gather(1, best)
    keep.scatter_(1, best, True)
    return keep


def combine_weights(top_w: torch.Tensor, keep: torch.Tensor,
                    renormalize: bool = True) -> torch.Tensor:
    """Combination weights ``[N, k]`` (dtype of ``top_w``) for the kept slots.

    ``renormalize=True``: the kept weights are rescaled so that each row keeps the total of its
    original top-k weights (1 for routers that renormalise their top-k); if every kept weight is
    0 the row's total is shared equally among the kept slots. ``False``: the dropped weights
    are simply zeroed (an ablation; the MoE output shrinks). Rows that drop nothing return
    ``top_w`` unchanged, bit for bit.
    """
    keep = keep.to(top_w.device)
    zero = torch.zeros_like(top_w)
    kept = torch.where(keep, top_w, zero)
    if renormalize:
        total = top_w.sum(-1, keepdim=True)
        kept_sum = kept.sum(-1, keepdim=True)
        n_kept = keep.sum(-1, keepdim=True).to(top_w.dtype)
        even = torch.where(keep, total / n_kept, zero)
        kept = torch.where(kept_sum > 0, kept * (total / kept_sum.clamp_min(1e-30)), even)
    full = keep.all(-1, keepdim=True)
    return torch.where(full, top_w, kept)


def device_loads(top_idx: torch.Tensor, keep: torch.Tensor, expert_map: torch.Tensor,
                 num_devices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and distinct experts per device of a layer call.

    Returns:
        ``(loads, active_experts)``, float64 ``[K]`` each: the kept (token, expert) rows each
        device serves, and how many distinct experts each device runs.
    """
    dev = expert_map[top_idx.cpu()]
    keep = keep.cpu()
    loads = torch.zeros(num_devices, dtype=_F64)
    loads.index_add_(0, dev[keep], torch.ones(int(keep.sum()), dtype=_F64))
    used = torch.zeros(expert_map.shape[0], dtype=torch.bool)
    used[top_idx.cpu()[keep]] = True
    active = torch.zeros(num_devices, dtype=_F64)
    active.index_add_(0, expert_map[used], torch.ones(int(used.sum()), dtype=_F64))
    return loads, active


def _summary(cost: DeviceCost, top_idx: torch.Tensor, keep: torch.Tensor,
             expert_map: torch.Tensor, beta: torch.Tensor) -> dict[str, Any]:
    loads, active = device_loads(top_idx, keep, expert_map, cost.num_devices)
    dev_t = cost.device_latency_s(loads, beta, active)
    return {
        "loads": loads,
        "active_experts": active,
        "device_latency_s": dev_t,
        "layer_latency_s": cost.topology.bs_time_s + float(dev_t.max()),
    }


# --------------------------------------------------------------------------------------------
# policies


class Policy(ABC):
    """Decides, for one MoE layer call, the kept experts, their weights and the bandwidth split.

    ``name`` is a string that :func:`parse_policy` turns back into an equal policy.
    """

    name: str = "policy"

    @abstractmethod
    def decide(self, routing: Routing, expert_map: torch.Tensor, cost: DeviceCost) -> Decision:
        """Decision for ``routing`` (``N`` tokens, top-k of ``E`` experts), ``expert_map``
        (``[E]`` device per expert) and the latency model ``cost`` of this block."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _prepare(self, routing: Routing, expert_map: torch.Tensor,
                 cost: DeviceCost) -> tuple[torch.Tensor, torch.Tensor]:
        top_idx, _ = check_routing(routing)
        m = check_expert_map(expert_map, routing.num_experts, cost.num_devices)
        return top_idx.cpu(), m


class TopK(Policy):
    """The router's own top-k experts and weights with an equal bandwidth split."""

    name = "topk"

    def decide(self, routing: Routing, expert_map: torch.Tensor, cost: DeviceCost) -> Decision:
        top_idx, m = self._prepare(routing, expert_map, cost)
        keep = torch.ones(top_idx.shape, dtype=torch.bool)
        beta = equal_split(cost.num_devices)
        return Decision(keep=keep.to(routing.top_w.device), weights=routing.top_w, beta=beta,
                        info=_summary(cost, top_idx, keep, m, beta))


_SELECTION = ("theta", "rule", "weight")  # the positional fields of wlr/joint specs


@dataclass(frozen=True)
class WLRConfig:
    """Settings of :class:`WLR` (its defaults live here only; see its Args)."""

    theta: float = DEFAULT_THETA
    rule: Rule = "share"
    weight: WeightMode = "renorm"
    renormalize: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta",
                           check_number("theta", self.theta, low=0.0, high=1.0))
        check_choice("rule", self.rule, RULES)
        check_choice("weight", self.weight, WEIGHT_MODES)
        check_bool("renormalize", self.renormalize)


@dataclass(frozen=True)
class JointConfig:
    """Settings of :class:`Joint` (its defaults live here only; see its docstring).
    ``theta`` becomes :data:`DEFAULT_THETA` when neither it nor ``gamma`` is given."""

    theta: float | None = None
    rule: Rule = "share"
    weight: WeightMode = "renorm"
    renormalize: bool = True
    gamma: float | None = None
    max_iter: int = 10
    tol: float = 1e-4

    def __post_init__(self) -> None:
        if self.theta is not None and self.gamma is not None:
            raise ValueError(f"give theta or gamma to Joint, not both (got theta="
                             f"{self.theta!r}, gamma={self.gamma!r})")
        if self.theta is None and self.gamma is None:
            object.__setattr__(self, "theta", DEFAULT_THETA)
        for key in ("theta", "gamma"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key,
                                   check_number(key, getattr(self, key), low=0.0, high=1.0))
        check_choice("rule", self.rule, RULES)
        check_choice("weight", self.weight, WEIGHT_MODES)
        check_bool("renormalize", self.renormalize)
        check_positive_int("max_iter", self.max_iter)
        object.__setattr__(self, "tol", check_number("tol", self.tol, low=0.0))


class WLR(Policy):
    """Weight-to-latency-ratio dropping with an equal bandwidth split.

    Args:
        theta: threshold in [0, 1]; 0 keeps the router's top-k exactly.
        rule: ``"share"`` (A, default), ``"ratio"`` (B) or ``"gated"`` (C).
        weight: gate weight in the score: ``"renorm"`` (top-k renormalised, default) or ``"raw"``
            (softmax probability over all experts).
        renormalize: rescale the kept combination weights (default) or just zero the dropped
            ones (ablation).

    ``t_k`` is the latency in s of device ``k`` serving one row at the equal split; with many
    tokens (prefill) the rule is applied per token and the loads follow.
    """

    def __init__(self, theta: float = WLRConfig.theta, rule: Rule = WLRConfig.rule,
                 weight: WeightMode = WLRConfig.weight,
                 renormalize: bool = WLRConfig.renormalize) -> None:
        self.config = cfg = WLRConfig(theta, rule, weight, renormalize)
        self.theta, self.rule, self.weight = cfg.theta, cfg.rule, cfg.weight
        self.renormalize = cfg.renormalize
        self.name = format_spec("wlr", cfg, positional=_SELECTION, always=_SELECTION)

    def decide(self, routing: Routing, expert_map: torch.Tensor, cost: DeviceCost) -> Decision:
        top_idx, m = self._prepare(routing, expert_map, cost)
        beta = equal_split(cost.num_devices)
        t_dev = cost.per_token_latency_s(beta)
        w = score_weights(routing, self.weight)
        keep = wlr_keep(w, t_dev[m[top_idx]], self.theta, self.rule)
        weights = combine_weights(routing.top_w, keep, self.renormalize)
        info = _summary(cost, top_idx, keep, m, beta)
        info["per_token_latency_s"] = t_dev
        return Decision(keep=keep.to(weights.device), weights=weights, beta=beta, info=info)


class Joint(Policy):
    """Joint expert selection and bandwidth allocation by alternating optimisation.

    Two modes (give at most one of ``theta`` and ``gamma``; neither means
    ``theta = DEFAULT_THETA``):

    * ``theta``: the selection step applies the WLR ``rule`` with ``t_k`` at the current
      bandwidth split; the objective is ``Phi = (sum of kept gate weights) / T`` (gate weight
      retained per second of layer latency), to be maximised. ``theta = 0`` is top-k with
      optimised bandwidth only.
    * ``gamma``: the selection step drops (token, expert) pairs in increasing WLR order while
      every token keeps a gate weight of at least ``gamma`` and one expert; the objective is
      the layer latency ``T``, to be minimised.

    Each iteration: selection at the current split (always starting from the router's top-k),
    then the min-max bandwidth step (:func:`optimal_bandwidth`; idle devices get 0). A step is
    accepted only if the objective does not get worse, so the recorded objective is monotone;
    the loop stops when it changes by less than ``tol`` (relative), the selection repeats, or
    after ``max_iter`` iterations. ``Decision.info`` records ``objective``, ``objective_history``,
    ``latency_history`` (s), ``retained_weight_history`` and ``iterations``.

    Dropping a pair never raises the latency at a fixed split; its gain may appear only once
    the bandwidth is re-allocated (with equalised devices every loaded device is a bottleneck),
    so the greedy step does not require a strict decrease at the fixed split.
    """

    def __init__(self, theta: float | None = JointConfig.theta, rule: Rule = JointConfig.rule,
                 weight: WeightMode = JointConfig.weight,
                 renormalize: bool = JointConfig.renormalize, *,
                 gamma: float | None = JointConfig.gamma, max_iter: int = JointConfig.max_iter,
                 tol: float = JointConfig.tol) -> None:
        self.config = cfg = JointConfig(theta, rule, weight, renormalize, gamma, max_iter, tol)
        self.theta, self.gamma = cfg.theta, cfg.gamma
        self.rule, self.weight, self.renormalize = cfg.rule, cfg.weight, cfg.renormalize
        self.max_iter, self.tol = cfg.max_iter, cfg.tol
        if cfg.gamma is not None:
            self.name = format_spec("joint", cfg, always=("weight",))
        else:
            self.name = format_spec("joint", cfg, positional=_SELECTION, always=_SELECTION)

    def _greedy_keep(self, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Drop slots in increasing WLR order while the token keeps >= gamma and >= 1 slot."""
        assert self.gamma is not None
        score = w / t
        order = score.argsort(dim=-1, stable=True)
        keep = torch.ones(w.shape, dtype=torch.bool)
        kept_w = w.sum(-1)
        rows = torch.arange(w.shape[0])
        for r in range(w.shape[1]):
            slot = order[:, r]
            ws = w[rows, slot]
            can = (keep.sum(-1) > 1) & (kept_w - ws >= self.gamma - 1e-12)
            keep[rows[can], slot[can]] = False
            kept_w = torch.where(can, kept_w - ws, kept_w)
        return keep

    def decide(self, routing: Routing, expert_map: torch.Tensor, cost: DeviceCost) -> Decision:
        top_idx, m = self._prepare(routing, expert_map, cost)
        dev = m[top_idx]
        w = score_weights(routing, self.weight)
        bs = cost.topology.bs_time_s
        maximise = self.gamma is None

        def evaluate(keep: torch.Tensor) -> tuple[torch.Tensor, float, float, float]:
            loads, active = device_loads(top_idx, keep, m, cost.num_devices)
            beta, tau = optimal_bandwidth(cost, loads, active)
            t_layer = bs + tau
            retained = float(torch.where(keep, w, torch.zeros_like(w)).sum())
            phi = retained / t_layer if t_layer > 0 else math.inf
            return beta, t_layer, retained, phi

        keep = torch.ones(top_idx.shape, dtype=torch.bool)
        beta, t_layer, retained, phi = evaluate(keep)
        objective = phi if maximise else t_layer
        obj_hist, t_hist, r_hist = [objective], [t_layer], [retained]
        iterations, converged = 0, False
        for _ in range(self.max_iter):
            iterations += 1
            t_slot = cost.per_token_latency_s(beta)[dev]
            if maximise:
                assert self.theta is not None
                new_keep = wlr_keep(w, t_slot, self.theta, self.rule)
            else:
                new_keep = self._greedy_keep(w, t_slot)
            if torch.equal(new_keep, keep):
                converged = True
                break
            n_beta, n_t, n_ret, n_phi = evaluate(new_keep)
            n_obj = n_phi if maximise else n_t
            better = n_obj >= objective if maximise else n_obj <= objective
            if not better:
                converged = True
                break
            change = abs(n_obj - objective)
            keep, beta, t_layer, retained, objective = new_keep, n_beta, n_t, n_ret, n_obj
            obj_hist.append(objective)
            t_hist.append(t_layer)
            r_hist.append(retained)
            if change <= self.tol * abs(objective):
                converged = True
                break
        weights = combine_weights(routing.top_w, keep, self.renormalize)
        info = _summary(cost, top_idx, keep, m, beta)
        info.update(objective="phi" if maximise else "latency", objective_history=obj_hist,
                    latency_history=t_hist, retained_weight_history=r_hist,
                    iterations=iterations, converged=converged)
        return Decision(keep=keep.to(weights.device), weights=weights, beta=beta, info=info)


# --------------------------------------------------------------------------------------------
# registry and parsing

PolicyFactory = Callable[..., Policy]
#: Policies by name (:mod:`phy.registry` specs, e.g. ``"wlr:0.2:ratio"``).
POLICIES: Registry[Policy] = Registry("policy")


def register_policy(name: str, factory: PolicyFactory, *, overwrite: bool = False) -> None:
    """Make ``factory`` available to :func:`parse_policy` under ``name``.

    ``parse_policy("name:a:b:key=v")`` calls ``factory(a, b, key=v)`` with each value converted
    to ``bool`` (``true``/``false``), ``int``, ``float`` or left a ``str``.
    """
    POLICIES.register(name, factory, overwrite=overwrite)


def available_policies() -> list[str]:
    """Names :func:`parse_policy` knows, sorted."""
    return POLICIES.available()


def parse_policy(text: str) -> Policy:
    """Build a policy from a string: ``name[:arg]...`` where each ``arg`` is a positional value
    or ``key=value``.

    Built in: ``"topk"``; ``"wlr[:theta[:rule[:weight]]]"`` (e.g. ``"wlr:0.2"``,
    ``"wlr:0.2:ratio"``, ``"wlr:0.3:gated:raw"``, ``"wlr:0.2:renormalize=false"``);
    ``"joint[:theta[:rule[:weight]]]"`` or ``"joint:gamma=0.8"`` (also ``max_iter=``, ``tol=``).
    A policy's :attr:`~Policy.name` parses back to an equal policy.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a policy must be a non-empty string such as 'wlr:0.2', got "
                         f"{text!r}")
    return POLICIES.build(text)


def _topk_factory() -> Policy:
    return TopK()


register_policy("topk", _topk_factory)
register_policy("wlr", WLR)
register_policy("joint", Joint)
