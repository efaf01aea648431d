"""The ``"link-aware"`` policy: choose each device's transport, then select experts.

WDMoE's policies see a device only through a Shannon-rate latency. This policy knows what each
transport really costs and how reliable it is at the device's SNR:

* digital (:class:`~.transports.DigitalTransport`): the MCS that link adaptation picks, its
  BLER, and the expected HARQ transmissions (:meth:`DigitalTransport.plan`);
* analog (:class:`~.transports.AnalogTransport`): ``ceil(D / 2)`` channel uses per row, an
  error that grows as the SNR falls;
* ideal: always eligible (a reference).

For every device and direction it keeps the *eligible* options (the accuracy guard: analog only
at an SNR >= ``analog_min_snr_db``; digital only if the BLER of the chosen MCS meets its target,
i.e. link adaptation did not have to fall back) and picks the one with the smallest expected
airtime for the device's top-k load at the equal bandwidth split. When no option is eligible it
falls back to the most robust one: the digital option with the fewest payload bits (it then runs
at the most robust MCS and may lose rows), else the first option. Expert selection and
bandwidth (``base``: WLR, joint or plain top-k) then run on a
:class:`~wdmoe_link.latency.DeviceCost` built from the chosen transports.

``Decision.transports`` lists the chosen ``(downlink, uplink)`` transports per device,
``info["transport_names"]`` their names; :class:`~wdmoe_link.system.WDMoESystem` uses them.
Registered with :func:`~wdmoe_link.policies.register_policy` as ``"link-aware"``:
``"link-aware"``, ``"link-aware:0.2"``, ``"link-aware:0.2:base=joint"``,
``"link-aware:dtypes=int8:analog_min_snr_db=25"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from phy import format_spec
from phy.checks import check_bool, check_choice, check_number

from .latency import DeviceCost, equal_split
from .policies import (
    DEFAULT_THETA,
    RULES,
    WEIGHT_MODES,
    WLR,
    Decision,
    Joint,
    Policy,
    TopK,
    available_policies,
    device_loads,
    register_policy,
)
from .transports import (
    AnalogTransport,
    DigitalTransport,
    Transport,
    as_transport,
)

if TYPE_CHECKING:
    from .routing import Routing

__all__ = ["BASES", "LinkAware", "LinkAwareConfig"]

BASES: tuple[str, ...] = ("wlr", "joint", "topk")
_F64 = torch.float64


def _split_names(value: str | Sequence[str], what: str) -> list[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.replace("+", ",").split(",") if v.strip()]
    elif isinstance(value, Sequence):
        items = [str(v).strip() for v in value]
    else:
        raise TypeError(f"{what} must be a string or a sequence of strings, got {value!r}")
    return items


_SELECTION = ("theta", "rule", "weight")  # the positional fields of the spec


@dataclass(frozen=True)
class LinkAwareConfig:
    """Settings of :class:`LinkAware` (its defaults live here only; see its Args).
    ``dtypes`` is a comma-separated string of payload formats; ``theta`` becomes
    :data:`DEFAULT_THETA` when neither it nor ``gamma`` is given."""

    theta: float | None = DEFAULT_THETA
    rule: str = "share"
    weight: str = "renorm"
    base: str = "wlr"
    renormalize: bool = True
    dtypes: str = "bf16"
    analog: bool = True
    analog_min_snr_db: float = 20.0
    target_bler: float = 0.1
    max_transmissions: int = 4
    gamma: float | None = None

    def __post_init__(self) -> None:
        if self.theta is None and self.gamma is None:
            object.__setattr__(self, "theta", DEFAULT_THETA)
        check_choice("base", self.base, BASES)
        check_choice("rule", self.rule, RULES)
        check_choice("weight", self.weight, WEIGHT_MODES)
        object.__setattr__(self, "analog_min_snr_db", check_number(
            "analog_min_snr_db", self.analog_min_snr_db, finite=False, unit="dB"))
        check_bool("analog", self.analog)
        if self.gamma is not None and self.base != "joint":
            raise ValueError(f"gamma applies to base='joint' only, got base={self.base!r}")


class LinkAware(Policy):
    """Per-device transport choice by expected airtime under an accuracy guard, then WLR /
    joint selection on the resulting costs.

    Args:
        theta: WLR threshold in [0, 1] of the base policy (``None`` with ``base="joint"`` and
            ``gamma`` set).
        rule: WLR rule, ``"share"``, ``"ratio"`` or ``"gated"``.
        weight: gate weight in the WLR score, ``"renorm"`` or ``"raw"``.
        base: ``"wlr"`` (equal split, default), ``"joint"`` (with bandwidth optimisation) or
            ``"topk"`` (no dropping: transport choice only).
        renormalize: rescale the kept weights (see :class:`~.policies.WLR`).
        dtypes: digital payload formats to consider, e.g. ``"bf16"`` or ``"bf16,int8"``
            (empty: no digital option).
        analog: consider the analog transport.
        analog_min_snr_db: accuracy guard of analog: the smallest SNR (dB) at which it may be
            chosen.
        target_bler: BLER target of the digital options' link adaptation.
        max_transmissions: HARQ transmissions of the digital options.
        options: explicit transports (objects or spec strings) instead of ``dtypes``/``analog``.
        gamma: capability floor of ``base="joint"`` (see :class:`~.policies.Joint`).
    """

    def __init__(self, theta: float | None = LinkAwareConfig.theta,
                 rule: str = LinkAwareConfig.rule, weight: str = LinkAwareConfig.weight,
                 base: str = LinkAwareConfig.base,
                 renormalize: bool = LinkAwareConfig.renormalize, *,
                 dtypes: str | Sequence[str] = LinkAwareConfig.dtypes,
                 analog: bool = LinkAwareConfig.analog,
                 analog_min_snr_db: float = LinkAwareConfig.analog_min_snr_db,
                 target_bler: float = LinkAwareConfig.target_bler,
                 max_transmissions: int = LinkAwareConfig.max_transmissions,
                 options: Sequence[Transport | str] | None = None,
                 gamma: float | None = LinkAwareConfig.gamma) -> None:
        if options is not None:  # explicit transports: dtypes/analog are not used
            dtypes, analog = LinkAwareConfig.dtypes, LinkAwareConfig.analog
        cfg = LinkAwareConfig(theta, rule, weight, base, renormalize,
                              ",".join(_split_names(dtypes, "dtypes")), analog,
                              analog_min_snr_db, target_bler, max_transmissions, gamma)
        self.config = cfg
        if base == "joint":
            self._base: Policy = Joint(theta if gamma is None else None, rule, weight,
                                       renormalize, gamma=gamma)
        elif base == "wlr":
            self._base = WLR(DEFAULT_THETA if theta is None else theta, rule, weight,
                             renormalize)
        else:
            self._base = TopK()
        self.base = base
        self.theta = theta
        self.rule = rule
        self.weight = weight
        self.renormalize = renormalize
        self.gamma = gamma
        self.analog_min_snr_db = cfg.analog_min_snr_db
        self.target_bler = target_bler
        self.max_transmissions = max_transmissions
        if options is None:
            self.dtypes = _split_names(cfg.dtypes, "dtypes")
            self.analog = analog
            built: list[Transport] = [DigitalTransport(dt, target_bler=target_bler,
                                                       max_transmissions=max_transmissions)
                                      for dt in self.dtypes]
            if analog:
                built.append(AnalogTransport())
        else:
            if isinstance(options, (str, Transport)):
                options = [options]
            built = [as_transport(o) for o in options]
            self.dtypes = [o.dtype for o in built if isinstance(o, DigitalTransport)]
            self.analog = any(isinstance(o, AnalogTransport) for o in built)
        if not built:
            raise ValueError("link-aware needs at least one transport option (dtypes, analog "
                             "or options)")
        self.options: list[Transport] = built
        if base == "topk" or gamma is not None:
            self.name = format_spec("link-aware", cfg)
        else:
            self.name = format_spec("link-aware", cfg, positional=_SELECTION,
                                    always=_SELECTION)

    # ---- transport choice ------------------------------------------------------------------

    def eligible(self, option: Transport, snr_db: float) -> bool:
        """The accuracy guard: may ``option`` carry hidden states at ``snr_db`` dB?"""
        if isinstance(option, AnalogTransport):
            return snr_db >= self.analog_min_snr_db
        if isinstance(option, DigitalTransport):
            return option.meets_target(snr_db)
        return True  # ideal and other transports have no reliability model: always allowed

    def _fallback(self, options: list[Transport], rows: int, row_size: int) -> Transport:
        """The digital option of fewest payload bits for ``[rows, row_size]`` (else the first
        option)."""
        digital = [o for o in options if isinstance(o, DigitalTransport)]
        if digital:
            return min(digital, key=lambda o: o.payload_bits(max(rows, 1), row_size))
        return options[0]

    def choose(self, cost: DeviceCost, loads: torch.Tensor
               ) -> tuple[list[tuple[Transport, Transport]], list[dict[str, Any]]]:
        """Transport per device and direction at the equal split for ``loads`` rows ``[K]``.

        Returns the chosen ``(downlink, uplink)`` pairs and, per device, the expected airtime
        in s of every option (``inf`` for ineligible ones) per direction.
        """
        k_dev = cost.num_devices
        d = cost.hidden_size
        options = self.options
        beta = equal_split(k_dev)
        bw = float(beta[0]) * cost.topology.bandwidth_hz
        snr = {dr: cost.snr_db(dr, beta) for dr in ("dl", "ul")}
        chosen: list[tuple[Transport, Transport]] = []
        table: list[dict[str, Any]] = []
        for k in range(k_dev):
            rows = int(max(float(loads[k]), 1.0))
            pick: dict[str, Transport] = {}
            row: dict[str, Any] = {}
            for dr in ("dl", "ul"):
                s = float(snr[dr][k])
                times = {}
                for o in options:
                    ok = self.eligible(o, s)
                    times[o.name] = (float(o.airtime_s_tensor(
                        torch.tensor(float(rows), dtype=_F64), d, torch.tensor(s, dtype=_F64),
                        torch.tensor(bw))) if ok else math.inf)
                best = min(options, key=lambda o: times[o.name])
                if not math.isfinite(times[best.name]):
                    best = self._fallback(options, rows, d)
                pick[dr] = best
                row[dr] = {"snr_db": s, "expected_airtime_s": times, "choice": best.name}
            chosen.append((pick["dl"], pick["ul"]))
            table.append(row)
        return chosen, table

    def decide(self, routing: Routing, expert_map: torch.Tensor, cost: DeviceCost) -> Decision:
        top_idx, m = self._prepare(routing, expert_map, cost)
        loads, _ = device_loads(top_idx, torch.ones(top_idx.shape, dtype=torch.bool), m,
                                cost.num_devices)
        chosen, table = self.choose(cost, loads)
        new_cost = DeviceCost(cost.topology, cost.gain,
                              [(dl.airtime_model(), ul.airtime_model()) for dl, ul in chosen],
                              hidden_size=cost.hidden_size, flops_per_token=cost.flops_per_token,
                              weight_bytes=cost.weight_bytes)
        decision = self._base.decide(routing, expert_map, new_cost)
        decision.transports = chosen
        decision.info["transport_names"] = [f"{dl.name}/{ul.name}" for dl, ul in chosen]
        decision.info["transport_options"] = table
        return decision


if "link-aware" not in available_policies():
    register_policy("link-aware", LinkAware)
