"""WDMoE over a simulated link: an MoE language model split between a BS and K devices.

:class:`WDMoESystem` is the :class:`~wdmoe_link.routing.Dispatcher` of a
:class:`~wdmoe_link.split.SplitMoE` model. Per forward pass (one prefill, or one generated
token) it draws one block of fading; per MoE layer call it

1. plans: every device's channel gain, a :class:`~wdmoe_link.latency.DeviceCost` whose airtime
   models are the devices' transports, and the policy's
   :class:`~wdmoe_link.policies.Decision` (kept experts, weights and the bandwidth split
   ``beta``; a policy may also choose each device's transport through
   ``Decision.transports``);
2. downlink: for every used device ``k``, one payload holding all its kept (token, expert)
   rows at ``SNR_dl,k(beta_k)`` over ``beta_k B`` Hz;
3. execute: the experts on the rows that arrived (one call of the model's expert kernel for
   all devices; the compute time is modelled per device);
4. uplink and combine: the outputs go back in one payload per device and are combined with
   the decision's weights. A row lost on either link is a dropped expert: the token's surviving
   weights are rescaled to the decision's total (a token that loses every expert gets an MoE
   output of 0, only the residual passes);
5. accounts the layer latency ``t_BS + max_k (A_dl,k + t_cmp,k + A_ul,k)`` with the airtime
   actually spent (retransmissions included) and the compute of the rows actually computed.

No NaN or Inf ever leaves :meth:`WDMoESystem.moe_layer`: every payload and expert output is
checked and a non-finite row is treated as lost (and counted in ``nan_guard``).

:meth:`WDMoESystem.evaluate` runs a task through
:func:`~wdmoe_link.tasks.evaluate_accuracy` and returns a :class:`Report` (accuracy, latency per
generated token, bits and channel uses on air, dropped and lost experts). The orchestration is
specific to this split system, so it is written here; all link physics comes from :mod:`phy`
through :mod:`wdmoe_link.transports`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

import phy
from phy.checks import all_finite

from . import link_aware  # noqa: F401  (registers the "link-aware" policy)
from .checks import check_expert_map
from .latency import DeviceCost
from .policies import Decision, Policy, combine_weights, parse_policy
from .routing import ExpertBank, Routing
from .split import SplitMoE
from .topology import Topology
from .transports import Delivery, Transport, as_transport

__all__ = ["LayerRecord", "Report", "StepRecord", "WDMoESystem"]

Phase = Literal["prefill", "decode"]
TransportPair = tuple[Transport, Transport]
_F64 = torch.float64


# --------------------------------------------------------------------------------------------
# records


@dataclass
class LayerRecord:
    """Accounting of one MoE layer call.

    Attributes:
        layer: MoE layer index.
        num_tokens: tokens in the call.
        latency_s: ``bs_time_s + max`` over used devices of the time actually spent (s).
        estimated_latency_s: the policy's expected layer latency (s), if it reported one.
        device_latency_s: per device ``dl + compute + ul`` actually spent (s), 0 if unused.
        bits_dl, bits_ul: bits on air per direction (see :class:`~.transports.Delivery`).
        uses_dl, uses_ul: complex channel uses per direction.
        rows: (token, expert) rows kept by the policy.
        dropped: (token, expert) rows of the router's top-k dropped by the policy.
        lost_dl, lost_ul: kept rows lost on the downlink / uplink.
        tokens_without_expert: tokens whose kept experts were all lost (MoE output 0).
        nan_guard: rows zeroed because a non-finite value appeared.
        transports: ``"dl/ul"`` transport names of the used devices, by device index.
    """

    layer: int
    num_tokens: int
    latency_s: float
    estimated_latency_s: float
    device_latency_s: list[float]
    bits_dl: int
    bits_ul: int
    uses_dl: int
    uses_ul: int
    rows: int
    dropped: int
    lost_dl: int
    lost_ul: int
    tokens_without_expert: int
    nan_guard: int
    transports: dict[int, str] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Kept rows lost on either link."""
        return self.lost_dl + self.lost_ul


@dataclass
class StepRecord:
    """One forward pass: the prefill of a prompt or one generated token.

    Attributes:
        phase: ``"prefill"`` or ``"decode"``.
        num_tokens: tokens processed (prompt tokens, or the batch size of a decode step).
        gain: linear channel gains ``[K]`` of this fading block.
        layers: the MoE layer calls, in order.
        implicit: the step was opened by a layer call without ``begin_step``.
    """

    phase: Phase
    num_tokens: int
    gain: Tensor
    layers: list[LayerRecord] = field(default_factory=list)
    implicit: bool = False

    def _sum(self, attr: str) -> int:
        return sum(getattr(r, attr) for r in self.layers)

    @property
    def latency_s(self) -> float:
        """Sum of the layer latencies in s (the step's MoE latency)."""
        return float(sum(r.latency_s for r in self.layers))

    @property
    def bits_dl(self) -> int:
        return self._sum("bits_dl")

    @property
    def bits_ul(self) -> int:
        return self._sum("bits_ul")

    @property
    def uses_dl(self) -> int:
        return self._sum("uses_dl")

    @property
    def uses_ul(self) -> int:
        return self._sum("uses_ul")


# --------------------------------------------------------------------------------------------
# how a Report reduces the records: one reducer per field, kept in the field's metadata


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return float(torch.quantile(torch.tensor(values, dtype=_F64), q))


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


class _Records:
    """The steps a :class:`Report` summarizes, with the views its reducers read."""

    def __init__(self, steps: Sequence[StepRecord]) -> None:
        self.steps = list(steps)
        self.layers = [r for s in self.steps for r in s.layers]

    def phase(self, phase: Phase) -> list[StepRecord]:
        """The steps of ``phase``, in order."""
        return [s for s in self.steps if s.phase == phase]

    def total(self, attrs: tuple[str, ...], phase: Phase | None = None) -> Any:
        """Sum over the layer calls (of ``phase``'s steps, or all) of the ``attrs`` of
        :class:`LayerRecord` (fields or properties)."""
        steps = self.steps if phase is None else self.phase(phase)
        return sum(getattr(r, a) for s in steps for r in s.layers for a in attrs)

    def request_latencies(self) -> list[float]:
        """Latency in s of every request: a prefill and the decode steps that follow it."""
        requests: list[float] = []
        for s in self.steps:
            if s.phase == "prefill" or not requests:
                requests.append(0.0)
            requests[-1] += s.latency_s
        return requests


@dataclass(frozen=True)
class _Count:
    """Number of steps of ``phase``."""

    phase: Phase

    def __call__(self, rec: _Records) -> int:
        return len(rec.phase(self.phase))


@dataclass(frozen=True)
class _Latency:
    """``stat`` (``"mean"`` or ``"p95"``) of the latencies in s of the ``over`` steps
    (``"decode"``, ``"prefill"``) or of whole requests (``"request"``); nan if there are none."""

    over: Literal["decode", "prefill", "request"]
    stat: Literal["mean", "p95"] = "mean"

    def __call__(self, rec: _Records) -> float:
        values = (rec.request_latencies() if self.over == "request"
                  else [s.latency_s for s in rec.phase(self.over)])
        return _mean(values) if self.stat == "mean" else _percentile(values, 0.95)


@dataclass(frozen=True)
class _Sum:
    """Sum over every layer call of the :class:`LayerRecord` attributes ``attrs``."""

    attrs: tuple[str, ...]

    def __call__(self, rec: _Records) -> int:
        return rec.total(self.attrs)


@dataclass(frozen=True)
class _PerDecodeStep:
    """Sum of ``attr`` over the layer calls of decode steps, per decode step (per generated
    token); nan without decode steps."""

    attr: str

    def __call__(self, rec: _Records) -> float:
        n = len(rec.phase("decode"))
        return rec.total((self.attr,), "decode") / n if n else math.nan


@dataclass(frozen=True)
class _Ratio:
    """``sum(num) / sum(den)`` over every layer call (each a sum of :class:`LayerRecord`
    attributes); nan where the denominator is 0."""

    num: tuple[str, ...]
    den: tuple[str, ...]

    def __call__(self, rec: _Records) -> float:
        den = rec.total(self.den)
        return rec.total(self.num) / den if den else math.nan


@dataclass(frozen=True)
class _Usage:
    """``"name=count,..."`` (sorted by name): the (device, layer call) payload pairs per
    ``"downlink/uplink"`` transport name."""

    def __call__(self, rec: _Records) -> str:
        usage: dict[str, int] = {}
        for r in rec.layers:
            for name in r.transports.values():
                usage[name] = usage.get(name, 0) + 1
        return ",".join(f"{k}={v}" for k, v in sorted(usage.items()))


def _reduced(reducer: Any, **kwargs: Any) -> Any:
    """A :class:`Report` field that :meth:`Report.from_steps` computes with ``reducer``."""
    return field(metadata={"reduce": reducer}, **kwargs)


@dataclass
class Report:
    """Summary of an evaluation (all times in s, per-token values per decode step).

    A decode step generates one token per request in the batch; its latency is the latency
    every request of the batch waits for that token. ``transports`` is the configured
    transport; ``transport_usage`` counts the (device, layer call) payload pairs per
    ``"downlink/uplink"`` transport actually used (a policy may choose them). Bits count the
    information bits on air of every transmission (0 for analog), channel uses every complex
    symbol sent. ``experts_dropped`` are (token, expert) pairs of the router's top-k that the
    policy dropped, ``experts_lost`` kept pairs lost on a link (a fraction of the kept ones).
    :meth:`to_dict` gives a flat dictionary (one CSV row).

    :meth:`from_steps` builds a report from the step records: every field whose metadata holds
    a ``"reduce"`` entry is that reducer applied to the records (a count of steps, a latency
    statistic, a sum over layer calls, a per-decode-step sum, a ratio of sums or the transport
    usage); the others (``policy``, ``transports``, ``accuracy``, ``num_examples``,
    ``wall_time_s``, ``extra``) are given. A new field is one line here.
    """

    policy: str
    transports: str
    accuracy: float
    num_examples: int
    num_prefill_steps: int = _reduced(_Count("prefill"))
    num_decode_steps: int = _reduced(_Count("decode"))
    latency_per_token_mean_s: float = _reduced(_Latency("decode"))
    latency_per_token_p95_s: float = _reduced(_Latency("decode", "p95"))
    prefill_latency_mean_s: float = _reduced(_Latency("prefill"))
    request_latency_mean_s: float = _reduced(_Latency("request"))
    bits_dl_per_token: float = _reduced(_PerDecodeStep("bits_dl"))
    bits_ul_per_token: float = _reduced(_PerDecodeStep("bits_ul"))
    channel_uses_dl_per_token: float = _reduced(_PerDecodeStep("uses_dl"))
    channel_uses_ul_per_token: float = _reduced(_PerDecodeStep("uses_ul"))
    bits_dl_total: int = _reduced(_Sum(("bits_dl",)))
    bits_ul_total: int = _reduced(_Sum(("bits_ul",)))
    channel_uses_dl_total: int = _reduced(_Sum(("uses_dl",)))
    channel_uses_ul_total: int = _reduced(_Sum(("uses_ul",)))
    rows_total: int = _reduced(_Sum(("rows",)))
    experts_per_token_mean: float = _reduced(_Ratio(("rows",), ("num_tokens",)))
    experts_dropped: int = _reduced(_Sum(("dropped",)))
    experts_dropped_fraction: float = _reduced(_Ratio(("dropped",), ("rows", "dropped")))
    experts_lost: int = _reduced(_Sum(("lost",)))
    experts_lost_fraction: float = _reduced(_Ratio(("lost",), ("rows",)))
    experts_lost_dl: int = _reduced(_Sum(("lost_dl",)))
    experts_lost_ul: int = _reduced(_Sum(("lost_ul",)))
    tokens_without_expert: int = _reduced(_Sum(("tokens_without_expert",)))
    nan_guard: int = _reduced(_Sum(("nan_guard",)))
    transport_usage: str = _reduced(_Usage(), default="")
    wall_time_s: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_steps(cls, steps: Sequence[StepRecord], **given: Any) -> Report:
        """The report of ``steps``: every reduced field from the records, the others from
        ``given`` (``policy``, ``transports``, ``accuracy``, ``num_examples``, optionally
        ``wall_time_s`` and ``extra``)."""
        rec = _Records(steps)
        reduced = {f.name: f.metadata["reduce"](rec) for f in dataclasses.fields(cls)
                   if "reduce" in f.metadata}
        clash = sorted(set(given) & set(reduced))
        if clash:
            raise TypeError(f"{clash} are computed from the steps and cannot be given")
        return cls(**given, **reduced)

    def to_dict(self) -> dict[str, Any]:
        """Flat ``{name: scalar or str}`` (``extra`` entries are prefixed ``extra_``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra"}
        for k, v in self.extra.items():
            out[f"extra_{k}"] = v
        return out


# --------------------------------------------------------------------------------------------
# helpers


def _pair(entry: Any, where: str) -> TransportPair:
    """A transport entry → (downlink, uplink)."""
    if isinstance(entry, (Transport, str)):
        t = as_transport(entry)
        return t, t
    if isinstance(entry, Sequence) and len(entry) == 2:
        return as_transport(entry[0]), as_transport(entry[1])
    raise TypeError(f"{where} must be a Transport, a spec string or a (downlink, uplink) pair "
                    f"of them, got {entry!r}")


def _transport_list(transports: Any, k: int, where: str) -> list[TransportPair]:
    if isinstance(transports, (Transport, str)):
        return [_pair(transports, where)] * k
    if isinstance(transports, Sequence):
        if len(transports) == 2 and all(isinstance(t, (Transport, str)) for t in transports) \
                and k != 2:
            raise ValueError(f"{where} has 2 entries but there are {k} devices; give one "
                             "transport, one per device, or wrap a (downlink, uplink) pair in "
                             "a list")
        if len(transports) != k:
            raise ValueError(f"{where} must have one entry per device ({k}), got "
                             f"{len(transports)}")
        return [_pair(t, f"{where}[{i}]") for i, t in enumerate(transports)]
    raise TypeError(f"{where} must be a Transport, a spec string or a list of K of them, got "
                    f"{type(transports).__name__}")


def _guard(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(x with non-finite rows zeroed, bool [n] rows that were non-finite)``."""
    if all_finite(x):  # the common case: one reduction
        return x, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    bad = ~torch.isfinite(x).all(dim=-1)
    return torch.where(bad[:, None], torch.zeros_like(x), x), bad


def _send_runs(transports: list[Transport], xs: list[Tensor], snr_db: list[float],
               bandwidth_hz: list[float]) -> list[Delivery]:
    """Send payload ``i`` over ``transports[i]``, in order; consecutive payloads on the same
    transport object go in one :meth:`Transport.send_many` call (same draws, same order)."""
    out: list[Delivery] = []
    i = 0
    while i < len(xs):
        j = i + 1
        while j < len(xs) and transports[j] is transports[i]:
            j += 1
        out += transports[i].send_many(xs[i:j], snr_db[i:j], bandwidth_hz[i:j],
                                       check_finite=False)
        i = j
    return out


@dataclass
class _Plan:
    """What the policy decided for one layer call, and the links it implies."""

    decision: Decision
    cost: DeviceCost
    pairs: list[TransportPair]
    beta: Tensor
    bw: Tensor
    snr_dl: Tensor
    snr_ul: Tensor
    gain: Tensor
    top_idx: Tensor
    keep: Tensor
    used: list[int]
    rows: dict[int, tuple[Tensor, Tensor]]


_LAYER_FIELDS = frozenset(f.name for f in dataclasses.fields(LayerRecord))


@dataclass
class _Ledger:
    """Airtime, bits, losses and loads of one layer call as they happen."""

    air_dl: Tensor
    air_ul: Tensor
    loads: Tensor
    active: Tensor
    delivered: Tensor
    bits_dl: int = 0
    bits_ul: int = 0
    uses_dl: int = 0
    uses_ul: int = 0
    lost_dl: int = 0
    lost_ul: int = 0
    nan_guard: int = 0
    names: dict[int, str] = field(default_factory=dict)

    def counters(self) -> dict[str, int]:
        """The integer counters this ledger shares by name with :class:`LayerRecord` (bits,
        channel uses, losses, ``nan_guard``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in _LAYER_FIELDS}

    @classmethod
    def empty(cls, num_devices: int, slots: torch.Size) -> _Ledger:
        """A ledger of ``num_devices`` devices for ``slots`` = ``[N, k]`` (token, slot) rows."""
        z = torch.zeros(num_devices, dtype=_F64)
        return cls(air_dl=z.clone(), air_ul=z.clone(), loads=z.clone(), active=z.clone(),
                   delivered=torch.zeros(slots, dtype=torch.bool))


# --------------------------------------------------------------------------------------------
# the system


class WDMoESystem:
    """An MoE causal LM split between a BS and K devices, its hidden states sent over links.

    Constructing the system splits the model (a :class:`~wdmoe_link.split.SplitMoE` with this
    system as dispatcher); :meth:`detach` (or leaving a ``with`` block) restores it.

    Args:
        model: a sparse-MoE causal LM (e.g. from :func:`~wdmoe_link.split.load_moe`).
        topology: the cell (devices, bandwidth, powers, fading, compute model).
        transports: one transport for all devices, or a list of K; each a
            :class:`~.transports.Transport`, a spec string (:func:`~.transports.parse_transport`)
            or a ``(downlink, uplink)`` pair.
        policy: a :class:`~.policies.Policy` or a spec string (:func:`~.policies.parse_policy`).
        expert_map: device of each expert, ``[E]`` ints in ``[0, K)``; default ``e % K``.
        seed: seed of the fading draws and of :func:`phy.set_seed` (link noise), re-applied by
            :meth:`reset` and :meth:`evaluate`.
        downlink_multicast: send each token's expert input once per layer as one multicast
            payload to all used devices (over their combined bandwidth, at the weakest used
            device's SNR, with that device's downlink transport) instead of one unicast payload
            per device. Not WDMoE's model; the policies still plan with unicast costs.
        renormalize_losses: rescale the surviving weights of a token that lost an expert on the
            link (default) or just zero the lost one.

    A policy that chooses transports (``Decision.transports``, e.g. ``"link-aware"``)
    overrides ``transports`` for that layer call.
    """

    def __init__(self, model: nn.Module, topology: Topology, transports: Any = "ideal",
                 policy: Policy | str = "topk", expert_map: Any = None, seed: int = 0,
                 downlink_multicast: bool = False, renormalize_losses: bool = True) -> None:
        if not isinstance(topology, Topology):
            raise TypeError(f"topology must be a Topology, got {type(topology).__name__}")
        if isinstance(policy, str):
            policy = parse_policy(policy)
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy or a spec string, got "
                            f"{type(policy).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        for name, flag in (("downlink_multicast", downlink_multicast),
                           ("renormalize_losses", renormalize_losses)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.topology = topology
        self.policy = policy
        self.seed = seed
        self.downlink_multicast = downlink_multicast
        self.renormalize_losses = renormalize_losses
        k = topology.num_devices
        pairs = _transport_list(transports, k, "transports")
        self.model = model
        self.split = SplitMoE(model, self)
        try:
            self.hidden_size = self.split.hidden_size
            self.num_experts = self.split.num_experts
            m = (torch.arange(self.num_experts) % k) if expert_map is None else expert_map
            self.expert_map = check_expert_map(m, self.num_experts, k)
            self.transports: list[TransportPair] = pairs
        except Exception:
            self.split.detach()
            raise
        self._gen = torch.Generator()
        self.steps: list[StepRecord] = []
        self._step: StepRecord | None = None
        self._last_layer = -1
        #: (step, expert shape, DeviceCost) of the last layer call
        self._cost_cache: tuple[StepRecord, tuple[Any, ...], DeviceCost] | None = None
        #: Decision of the last layer call, and the weights ``[N, k]`` actually used to combine
        #: its expert outputs (after link losses); for inspection.
        self.last_decision: Decision | None = None
        self.last_weights: Tensor | None = None
        self.reset()

    # ---- set-up ----------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Clear the records and re-seed the fading generator and :func:`phy.set_seed`."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"seed must be an int >= 0, got {seed!r}")
            self.seed = seed
        self._gen.manual_seed(self.seed)
        phy.set_seed(self.seed)
        self.steps = []
        self._step = None
        self._last_layer = -1
        self._cost_cache = None

    def detach(self) -> None:
        """Restore the model's own MoE blocks."""
        self.split.detach()

    def attach(self) -> None:
        """Split the model again after :meth:`detach`."""
        self.split.attach()

    def __enter__(self) -> WDMoESystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        return (f"WDMoESystem(K={self.topology.num_devices}, policy={self.policy.name!r}, "
                f"transports={self.transport_names()!r}, multicast={self.downlink_multicast})")

    def transport_names(self) -> str:
        """The configured transports as a string (``"name"`` if all equal)."""
        names = [dl.name if dl.name == ul.name else f"{dl.name}/{ul.name}"
                 for dl, ul in self.transports]
        return names[0] if len(set(names)) == 1 else ",".join(names)

    # ---- dispatcher protocol ---------------------------------------------------------------

    def begin_step(self, phase: Phase, num_tokens: int) -> None:
        """Start a forward pass: draw this block's fading (once per prefill / decode step)."""
        if phase not in ("prefill", "decode"):
            raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
        self._close_step()
        gain = self.topology.channel_gain(self._gen)
        self._step = StepRecord(phase=phase, num_tokens=int(num_tokens), gain=gain)
        self._last_layer = -1

    def end_step(self) -> None:
        """Close the forward pass started by :meth:`begin_step`."""
        self._close_step()

    def _close_step(self) -> None:
        if self._step is not None:
            self.steps.append(self._step)
            self._step = None

    def _current_step(self, layer: int, num_tokens: int) -> StepRecord:
        """The open step; a layer call outside ``begin_step``/``end_step`` (a plain forward)
        opens an implicit step, and a layer index that does not grow starts a new one."""
        step = self._step
        if step is None or (step.implicit and layer <= self._last_layer):
            self._close_step()
            self._step = StepRecord(phase="prefill", num_tokens=num_tokens,
                                    gain=self.topology.channel_gain(self._gen), implicit=True)
            step = self._step
        self._last_layer = layer
        return step

    def _decision_transports(self, decision: Decision) -> list[TransportPair]:
        chosen = decision.transports
        if chosen is None:
            return self.transports
        return _transport_list(chosen, self.topology.num_devices, "Decision.transports")

    def device_cost(self, gain: Tensor, experts: ExpertBank,
                    transports: list[TransportPair] | None = None) -> DeviceCost:
        """The latency model of one layer call at channel gains ``gain`` ``[K]``."""
        pairs = self.transports if transports is None else transports
        return DeviceCost(self.topology, gain,
                          [(dl.airtime_model(), ul.airtime_model()) for dl, ul in pairs],
                          hidden_size=experts.hidden_size,
                          flops_per_token=experts.flops_per_token,
                          weight_bytes=experts.weight_bytes(0))

    @torch.no_grad()
    def moe_layer(self, layer: int, x: Tensor, routing: Routing, experts: ExpertBank) -> Tensor:
        """MoE output ``[N, D]`` of layer ``layer`` for the post-norm inputs ``x`` ``[N, D]``.

        plan (policy, bandwidth, SNRs) -> downlink -> execute (one expert-kernel call for
        every device's rows) -> uplink -> combine -> ledger (the :class:`LayerRecord`).
        """
        step = self._current_step(layer, x.shape[0])
        plan = self._plan(step, routing, experts)
        ledger = _Ledger.empty(self.topology.num_devices, plan.keep.shape)
        x32, bad_in = _guard(x.detach().float())
        ledger.nan_guard += int(bad_in.sum())
        received = self._downlink(plan, x32, ledger)
        computed = self._execute(plan, received, bad_in, x, experts, ledger)
        arrived = self._uplink(plan, computed, ledger)
        out = self._combine(plan, arrived, x, ledger)
        step.layers.append(self._record(layer, x.shape[0], plan, ledger))
        return out.to(x.dtype)

    # ---- the stages of one layer call ---------------------------------------------------

    def _step_cost(self, step: StepRecord, experts: ExpertBank) -> DeviceCost:
        """:meth:`device_cost` of the step's gains, built once per step and expert shape (the
        layers of one step share their gains; a DeviceCost is immutable)."""
        shape = (experts.hidden_size, experts.flops_per_token,
                 next(experts.module.parameters()).dtype)
        cached = self._cost_cache
        if cached is not None and cached[0] is step and cached[1] == shape:
            return cached[2]
        cost = self.device_cost(step.gain, experts)
        self._cost_cache = (step, shape, cost)
        return cost

    def _plan(self, step: StepRecord, routing: Routing, experts: ExpertBank) -> _Plan:
        topo = self.topology
        cost = self._step_cost(step, experts)
        decision = self.policy.decide(routing, self.expert_map, cost)
        pairs = self._decision_transports(decision)
        beta = decision.beta.to(_F64).cpu()
        bw = beta * topo.bandwidth_hz
        top_idx = routing.top_idx.cpu()
        keep = decision.keep.cpu()
        dev_of = self.expert_map[top_idx]                       # [N, k] device of each slot
        # rows of every used device: its kept (token, slot) pairs in row-major order, all
        # travelling in one payload (one stable sort by device instead of a scan per device)
        tok_all, slot_all = torch.nonzero(keep, as_tuple=True)
        dev_kept = dev_of[tok_all, slot_all]
        order = torch.sort(dev_kept, stable=True).indices
        counts = torch.bincount(dev_kept, minlength=topo.num_devices).tolist()
        used = [k for k, c in enumerate(counts) if c]
        bw_list = bw.tolist()
        for k in used:
            if bw_list[k] <= 0.0:
                raise RuntimeError(f"policy {self.policy.name!r} gave device {k} no bandwidth "
                                   f"(beta={float(beta[k])}) but kept experts on it")
        rows = {}
        start = 0
        for k in used:
            sel = order[start:start + counts[k]]
            rows[k] = (tok_all[sel], slot_all[sel])
            start += counts[k]
        return _Plan(decision=decision, cost=cost, pairs=pairs, beta=beta, bw=bw,
                     snr_dl=topo.snr_db("dl", beta, step.gain),
                     snr_ul=topo.snr_db("ul", beta, step.gain), gain=step.gain,
                     top_idx=top_idx, keep=keep, used=used, rows=rows)

    def _downlink(self, plan: _Plan, x32: Tensor, ledger: _Ledger
                  ) -> dict[int, tuple[Tensor, Tensor]]:
        """``device -> (x_hat rows, ok)``: each used device's rows over its downlink."""
        topo, k_dev = self.topology, self.topology.num_devices
        received: dict[int, tuple[Tensor, Tensor]] = {}
        if self.downlink_multicast and plan.used:
            share = float(plan.beta[plan.used].sum())
            snr_mc = topo.snr_db("dl", torch.full((k_dev,), share, dtype=_F64), plan.gain)
            worst = min(plan.used, key=lambda k: float(snr_mc[k]))
            tokens = torch.unique(torch.cat([plan.rows[k][0] for k in plan.used]))
            dlv = plan.pairs[worst][0].send(x32[tokens], float(snr_mc[worst]),
                                            share * topo.bandwidth_hz, check_finite=False)
            ledger.bits_dl, ledger.uses_dl = dlv.bits, dlv.channel_uses
            where = torch.full((x32.shape[0],), -1, dtype=torch.long)
            where[tokens] = torch.arange(tokens.numel())
            for k in plan.used:
                pos = where[plan.rows[k][0]]
                received[k] = (dlv.x_hat[pos], dlv.ok[pos].cpu())
                ledger.air_dl[k] = dlv.airtime_s
            return received
        sent = _send_runs([plan.pairs[k][0] for k in plan.used],
                          [x32[plan.rows[k][0]] for k in plan.used],
                          [float(plan.snr_dl[k]) for k in plan.used],
                          [float(plan.bw[k]) for k in plan.used])
        for k, dlv in zip(plan.used, sent, strict=True):
            received[k] = (dlv.x_hat, dlv.ok.cpu())
            ledger.air_dl[k] = dlv.airtime_s
            ledger.bits_dl += dlv.bits
            ledger.uses_dl += dlv.channel_uses
        return received

    def _execute(self, plan: _Plan, received: dict[int, tuple[Tensor, Tensor]],
                 bad_in: Tensor, x: Tensor, experts: ExpertBank, ledger: _Ledger
                 ) -> dict[int, tuple[Tensor, Tensor]]:
        """``device -> (row positions, outputs)``: the experts on the rows that arrived.

        Every device's rows go through one call of the model's expert kernel (the devices
        are simulated in one process; the compute time is modelled per device). The checks
        and counts run once over all devices' rows, concatenated in device order."""
        used = plan.used
        if not used:
            return {}
        for k in used:
            ledger.names[k] = f"{plan.pairs[k][0].name}/{plan.pairs[k][1].name}"
        sizes = [plan.rows[k][0].numel() for k in used]
        tok = torch.cat([plan.rows[k][0] for k in used])
        slot = torch.cat([plan.rows[k][1] for k in used])
        x_hat, bad = _guard(torch.cat([received[k][0] for k in used]))
        ok = torch.cat([received[k][1] for k in used])
        ledger.nan_guard += int((bad & ok).sum())
        ok = ok & ~bad & ~bad_in[tok]
        ledger.lost_dl += int((~ok).sum())
        if not bool(ok.any()):
            return {}
        dev = torch.repeat_interleave(torch.tensor(used), torch.tensor(sizes))
        pos = torch.cat([torch.arange(n) for n in sizes])   # row position inside its device
        sel = torch.nonzero(ok, as_tuple=True)[0]
        e_of, dev_ok = plan.top_idx[tok[sel], slot[sel]], dev[sel]
        k_dev = ledger.loads.numel()
        ledger.loads += torch.bincount(dev_ok, minlength=k_dev).to(ledger.loads.dtype)
        pairs_ = torch.unique(dev_ok * experts.num_experts + e_of)
        ledger.active += torch.bincount(pairs_ // experts.num_experts,
                                        minlength=k_dev).to(ledger.active.dtype)
        inp = x_hat[sel].to(device=x.device, dtype=x.dtype)
        y, bad_y = _guard(experts.pairs(inp, e_of).float())
        n_bad = int(bad_y.sum())
        ledger.nan_guard += n_bad
        ledger.lost_ul += n_bad
        keep_y = ~bad_y.cpu()
        dev_keep, pos_keep = dev_ok[keep_y], pos[sel][keep_y]
        y = y[keep_y.to(y.device)]
        counts = torch.bincount(dev_keep, minlength=k_dev).tolist()
        computed: dict[int, tuple[Tensor, Tensor]] = {}
        start = 0
        for k in used:  # rows stay in device order
            n = counts[k]
            if n:
                computed[k] = (pos_keep[start:start + n], y[start:start + n])
                start += n
        return computed

    def _uplink(self, plan: _Plan, computed: dict[int, tuple[Tensor, Tensor]],
                ledger: _Ledger) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``(token, slot, output)`` of every row whose output arrived at the BS (all devices'
        rows in device order, in one triple)."""
        ks = list(computed)
        if not ks:
            return []
        sent = _send_runs([plan.pairs[k][1] for k in ks], [computed[k][1] for k in ks],
                          [float(plan.snr_ul[k]) for k in ks],
                          [float(plan.bw[k]) for k in ks])  # outputs guarded in _execute
        for k, ulv in zip(ks, sent, strict=True):
            ledger.air_ul[k] = ulv.airtime_s
            ledger.bits_ul += ulv.bits
            ledger.uses_ul += ulv.channel_uses
        y_hat, bad_u = _guard(torch.cat([u.x_hat for u in sent]))
        bad_u = bad_u.cpu()
        ok = torch.cat([u.ok.cpu() for u in sent])
        ledger.nan_guard += int((bad_u & ok).sum())
        ok = ok & ~bad_u
        ledger.lost_ul += int((~ok).sum())
        tok = torch.cat([plan.rows[k][0][computed[k][0]] for k in ks])[ok]
        slot = torch.cat([plan.rows[k][1][computed[k][0]] for k in ks])[ok]
        ledger.delivered[tok, slot] = True
        return [(tok, slot, y_hat[ok.to(y_hat.device)])]

    def _combine(self, plan: _Plan, arrived: list[tuple[Tensor, Tensor, Tensor]], x: Tensor,
                 ledger: _Ledger) -> Tensor:
        """The weighted mixture at the BS; lost rows are dropped experts."""
        keep, delivered = plan.keep, ledger.delivered
        weights = plan.decision.weights.detach().to(torch.float32).cpu()
        weights = torch.where(keep, weights, torch.zeros_like(weights))
        if bool((keep & ~delivered).any()):
            weights = combine_weights(weights, delivered, renormalize=self.renormalize_losses)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for tok, slot, y in arrived:
            w = weights[tok, slot].to(y.device)
            out.index_add_(0, tok.to(out.device), (y * w[:, None]).to(out.device))
        out, bad_out = _guard(out)
        ledger.nan_guard += int(bad_out.sum())
        self.last_decision = plan.decision
        self.last_weights = torch.where(delivered, weights, torch.zeros_like(weights))
        return out

    def _record(self, layer: int, n_tok: int, plan: _Plan, ledger: _Ledger) -> LayerRecord:
        """The latency actually spent and the accounting of this layer call."""
        k_dev = self.topology.num_devices
        t_cmp = plan.cost.compute_time_s(ledger.loads, ledger.active)
        dev_t = torch.zeros(k_dev, dtype=_F64)
        for k in plan.used:
            dev_t[k] = ledger.air_dl[k] + t_cmp[k] + ledger.air_ul[k]
        latency = self.topology.bs_time_s + (float(dev_t.max()) if plan.used else 0.0)
        keep, delivered = plan.keep, ledger.delivered
        return LayerRecord(
            layer=layer, num_tokens=n_tok, latency_s=latency,
            estimated_latency_s=float(plan.decision.info.get("layer_latency_s", math.nan)),
            device_latency_s=dev_t.tolist(), rows=int(keep.sum()),
            dropped=int((~keep).sum()),
            tokens_without_expert=int((keep.any(-1) & ~delivered.any(-1)).sum()),
            transports=ledger.names, **ledger.counters())

    # ---- evaluation ------------------------------------------------------------------------

    def report(self, steps: Sequence[StepRecord] | None = None, accuracy: float = math.nan,
               num_examples: int = 0) -> Report:
        """Summarize ``steps`` (default: every recorded step) into a :class:`Report`."""
        self._close_step()
        return Report.from_steps(self.steps if steps is None else steps,
                                 policy=self.policy.name, transports=self.transport_names(),
                                 accuracy=accuracy, num_examples=num_examples)

    def evaluate(self, task: Any, limit: int | None = None, *, progress: bool = False,
                 batch_size: int = 1, max_new_tokens: int | None = None,
                 tokenizer: Any = None) -> Report:
        """Greedy exact-match evaluation of ``task`` through the split model and its links.

        Re-seeds first (:meth:`reset`), so the same call gives the same report. Decoding and
        scoring are :func:`~wdmoe_link.tasks.evaluate_accuracy`'s (one request at a time by
        default, so a decode step is one generated token of one request).
        """
        from .tasks import evaluate_accuracy

        self.reset()
        t0 = time.perf_counter()
        result = evaluate_accuracy(self.model, task, dispatcher=self, limit=limit,
                                   progress=progress, tokenizer=tokenizer,
                                   batch_size=batch_size, max_new_tokens=max_new_tokens)
        report = self.report(accuracy=result.accuracy, num_examples=result.n)
        report.wall_time_s = time.perf_counter() - t0
        return report
