"""Latency of one MoE layer split between a base station and its expert devices.

For device *k* serving ``n_k`` (token, expert) rows of a layer call, with bandwidth share
``beta_k``::

    t_k(n_k, beta_k) = A_dl(n_k D, SNR_dl, beta_k B) + t_cmp(n_k) + A_ul(n_k D, SNR_ul, beta_k B)
    T_layer          = t_BS + max_{k : n_k > 0} t_k

``A`` is an airtime model (:class:`ShannonAirtime`, the WDMoE assumption, or a transport that
implements :class:`AirtimeModel`); every direction carries one payload ``[n_k, D]`` (all rows
of the device travel together), and ``A`` is given its shape (``n_k`` rows of ``D``
elements). Compute time is ``n_k C / f_k`` (``"flops"``) or
``max(n_k C / f_k, a_k W / M_k)`` (``"roofline"``: the ``a_k`` experts used on the device stream
their ``W`` bytes of weights once per layer call from memory of bandwidth ``M_k``).

:func:`optimal_bandwidth` solves the min-max bandwidth split of a fixed load (bisection on the
target latency with a monotone 1-D search per device). The WDMoE latency model and its
bandwidth step are specific to this system, so they are written out here rather than taken
from a library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch

import phy
from phy.checks import check_bounds, check_count, check_positive_int, value_range
from phy.memo import Memo

from .topology import DIRECTIONS, Topology

__all__ = [
    "AirtimeModel",
    "DeviceCost",
    "ShannonAirtime",
    "equal_split",
    "optimal_bandwidth",
    "shannon_rate_bps",
]

_F64 = torch.float64


def shannon_rate_bps(bandwidth_hz: torch.Tensor | float,
                     snr_db: torch.Tensor | float) -> torch.Tensor:
    """Shannon rate ``B log2(1 + SNR)`` in bit/s, float64 (broadcast): :func:`phy.capacity_bps`
    that also takes a zero bandwidth.

    ``bandwidth_hz`` >= 0 Hz; a zero bandwidth gives 0 bit/s even though its SNR
    (``P g / (0 * N0)``) is +inf.
    """
    b = torch.as_tensor(bandwidth_hz, dtype=_F64)
    s = torch.as_tensor(snr_db, dtype=_F64)
    check_bounds("bandwidth_hz", b, low=0.0, low_inclusive=True, allowed=">= 0 Hz")
    b, s = torch.broadcast_tensors(b, s)
    # phy's capacity (overflow-safe log2(1 + SNR)) where there is a band; a zero band (whose
    # SNR may be +inf) carries nothing
    rate = b * phy.capacity_bits_per_use(torch.where(b > 0, s, torch.zeros_like(s)))
    return torch.where(b > 0, rate, torch.zeros_like(rate))


#: The methods of a block-linear airtime model (see :class:`AirtimeModel`).
_BLOCK_LINEAR = ("blocks_tensor", "block_airtime_s_tensor")


@runtime_checkable
class AirtimeModel(Protocol):
    """Expected airtime of one payload.

    ``expected_airtime_s(rows, row_size, snr_db, bandwidth_hz)`` returns the expected seconds
    on air of a payload of ``rows`` rows (an int >= 0) of ``row_size`` tensor elements each (an
    int >= 1) at receive SNR ``snr_db`` dB over ``bandwidth_hz`` Hz (0 s for ``rows == 0``).
    The shape matters, not only the element count: formats with per-row side information
    (int8/int4 scales, odd ``row_size`` in analog packing) cost more per element. A model may
    also offer ``airtime_s_tensor(rows, row_size, snr_db, bandwidth_hz)`` with ``rows``,
    ``snr_db`` and ``bandwidth_hz`` broadcast float64 tensors and an int ``row_size``;
    :class:`DeviceCost` then skips its per-element Python loop. A block-linear model (a
    digital link: the airtime is the payload's code blocks times the expected seconds per
    block) may offer ``blocks_tensor(rows, row_size)`` and ``block_airtime_s_tensor(snr_db,
    bandwidth_hz)`` too; where every device has the same such model, :class:`DeviceCost`
    keeps the seconds per block of the shares it saw last (a policy asks every layer).
    """

    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        ...


class ShannonAirtime:
    """Error-free payload at the Shannon rate: ``n D q / (B log2(1 + SNR))`` seconds for ``n``
    rows of ``D`` elements.

    Args:
        bits_per_element: bits per tensor element ``q`` (16 for bf16, the WDMoE assumption).
    """

    def __init__(self, bits_per_element: int = 16) -> None:
        if (isinstance(bits_per_element, bool) or not isinstance(bits_per_element, int)
                or bits_per_element < 1):
            raise ValueError(f"bits_per_element must be an int >= 1, got {bits_per_element!r}")
        self.bits_per_element = bits_per_element

    def __repr__(self) -> str:
        return f"ShannonAirtime(bits_per_element={self.bits_per_element})"

    def airtime_s_tensor(self, rows: torch.Tensor, row_size: int, snr_db: torch.Tensor,
                         bandwidth_hz: torch.Tensor) -> torch.Tensor:
        """Vectorised airtime in s (float64; ``rows``, ``snr_db`` in dB and ``bandwidth_hz`` in
        Hz broadcast, ``row_size`` elements per row shared); 0 for an empty payload, +inf for a
        non-empty payload over 0 Hz."""
        d = check_positive_int("row_size", row_size)
        n = torch.as_tensor(rows, dtype=_F64)
        rate = shannon_rate_bps(bandwidth_hz, snr_db)
        t = n * d * self.bits_per_element / rate
        return torch.where(n > 0, t, torch.zeros_like(t))

    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        """Airtime in s of ``rows`` rows of ``row_size`` elements at ``snr_db`` dB over
        ``bandwidth_hz`` Hz."""
        n = check_count("rows", rows, what="payload rows")
        d = check_positive_int("row_size", row_size)
        if not bandwidth_hz >= 0 or not math.isfinite(bandwidth_hz):
            raise ValueError(f"bandwidth_hz must be finite and >= 0 Hz, got {bandwidth_hz!r}")
        # scalar path in plain floats (one call per payload in the split model's loop; the
        # same formula as airtime_s_tensor, phy's overflow-safe capacity)
        if n == 0:
            return 0.0
        bw = float(bandwidth_hz)
        if bw == 0.0:
            return math.inf
        return n * d * self.bits_per_element / (bw * phy.capacity_bits_per_use(float(snr_db)))


def equal_split(num_devices: int) -> torch.Tensor:
    """Equal bandwidth fractions ``1/K`` for every device, float64 ``[K]``."""
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be an int >= 1, got {num_devices!r}")
    return torch.full((num_devices,), 1.0 / num_devices, dtype=_F64)


def _per_device_models(airtime: object, k: int) -> tuple[list, list]:
    """``airtime`` as two lists (downlink, uplink) of K models."""
    def is_model(m: object) -> bool:
        return callable(getattr(m, "expected_airtime_s", None))

    if is_model(airtime):
        return [airtime] * k, [airtime] * k
    if isinstance(airtime, (str, bytes)) or not isinstance(airtime, Sequence):
        raise TypeError("airtime must be an AirtimeModel or a list of K of them (or of K "
                        f"(downlink, uplink) pairs), got {type(airtime).__name__}")
    if len(airtime) != k:
        raise ValueError(f"airtime must have one entry per device ({k}), got {len(airtime)}")
    dl, ul = [], []
    for i, m in enumerate(airtime):
        if is_model(m):
            dl.append(m)
            ul.append(m)
        elif isinstance(m, Sequence) and len(m) == 2 and is_model(m[0]) and is_model(m[1]):
            dl.append(m[0])
            ul.append(m[1])
        else:
            raise TypeError(f"airtime[{i}] must be an AirtimeModel or a (downlink, uplink) pair "
                            f"of them, got {m!r}")
    return dl, ul


class DeviceCost:
    """Per-device latency of one MoE layer as a function of token load and bandwidth split.

    Args:
        topology: the cell (powers, bandwidth, noise, devices, compute model, BS time).
        gain: linear channel power gains ``[K]`` for this block (path gain times fading).
        airtime: one :class:`AirtimeModel` for every device and direction, a list of K models
            (one per device, both directions) or a list of K ``(downlink, uplink)`` pairs.
        hidden_size: elements ``D`` of one hidden-state row.
        flops_per_token: expert FLOPs ``C`` per (token, expert) row (``2 * 3 * D * F``).
        weight_bytes: bytes ``W`` of one expert's weights (roofline model).

    Loads count (token, expert) rows: a device serving ``n`` rows receives one payload
    ``[n, D]`` and sends one payload ``[n, D]`` back; its airtime models are called with
    ``rows = n`` and ``row_size = hidden_size``.
    """

    def __init__(self, topology: Topology, gain: torch.Tensor, airtime: object,
                 hidden_size: int, flops_per_token: float, weight_bytes: int) -> None:
        if not isinstance(topology, Topology):
            raise TypeError(f"topology must be a Topology, got {type(topology).__name__}")
        k = topology.num_devices
        g = torch.as_tensor(gain, dtype=_F64).detach().cpu()
        if g.shape != (k,):
            raise ValueError(f"gain must have shape [{k}] (one per device), got {tuple(g.shape)}")
        check_bounds("gain", g, low=0.0, low_inclusive=False, allowed="> 0 (linear power gain)")
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
            raise ValueError(f"hidden_size must be an int >= 1, got {hidden_size!r}")
        if (isinstance(flops_per_token, bool) or not isinstance(flops_per_token, (int, float))
                or not math.isfinite(flops_per_token) or flops_per_token <= 0):
            raise ValueError(f"flops_per_token must be finite and > 0 (FLOP), got "
                             f"{flops_per_token!r}")
        if isinstance(weight_bytes, bool) or not isinstance(weight_bytes, int) or weight_bytes < 0:
            raise ValueError(f"weight_bytes must be an int >= 0 (bytes), got {weight_bytes!r}")
        self.topology = topology
        self.gain = g
        self.hidden_size = hidden_size
        self.flops_per_token = float(flops_per_token)
        self.weight_bytes = weight_bytes
        self.airtime_dl, self.airtime_ul = _per_device_models(airtime, k)
        self._snr_offset_db = {d: topology.snr_db(d, torch.ones(k, dtype=_F64), g)
                               for d in DIRECTIONS}
        # Devices whose model (the same object) has a vectorized airtime, grouped.
        self._vector_groups: dict[str, list[tuple[object, list[int]]]] = {}
        for d, models in (("dl", self.airtime_dl), ("ul", self.airtime_ul)):
            groups: dict[int, tuple[object, list[int]]] = {}
            for i, m in enumerate(models):
                if getattr(m, "airtime_s_tensor", None) is not None:
                    groups.setdefault(id(m), (m, []))[1].append(i)
            self._vector_groups[d] = list(groups.values())
        # Fast paths: every model is ShannonAirtime -> one closed form over all devices; every
        # device has the same block-linear model (a digital link: blocks times the seconds per
        # block) -> the seconds per block of recent shares are kept.
        self._row_time: Memo[torch.Tensor] = Memo(64)  # s per row / per block, recent shares
        self._shannon_bits = {}
        self._block_model: dict[str, Any] = {}
        for d, models in (("dl", self.airtime_dl), ("ul", self.airtime_ul)):
            if all(type(m) is ShannonAirtime for m in models):
                self._shannon_bits[d] = torch.tensor([m.bits_per_element for m in models],
                                                     dtype=_F64)
            elif all(m is models[0] for m in models) and all(
                    getattr(models[0], a, None) is not None for a in _BLOCK_LINEAR):
                self._block_model[d] = models[0]

    @property
    def num_devices(self) -> int:
        """K, the number of devices."""
        return self.topology.num_devices

    # ---- pieces ----------------------------------------------------------------------------

    def _beta(self, beta: torch.Tensor | float) -> torch.Tensor:
        b = torch.as_tensor(beta, dtype=_F64)
        if b.dim() == 0:
            b = b.expand(self.num_devices)
        if b.shape[-1] != self.num_devices:
            raise ValueError(f"beta must have shape [..., {self.num_devices}] (one fraction per "
                             f"device), got {tuple(b.shape)}")
        lo, hi = value_range(b)
        if not (lo >= 0 and hi <= 1):
            raise ValueError(f"beta must hold bandwidth fractions in [0, 1], got {b.tolist()}")
        return b

    def _loads(self, loads: torch.Tensor) -> torch.Tensor:
        n = torch.as_tensor(loads).to(_F64)
        if n.shape[-1:] != (self.num_devices,):
            raise ValueError(f"loads must have shape [..., {self.num_devices}] (rows per "
                             f"device), got {tuple(n.shape)}")
        check_bounds("loads", n, low=0.0, low_inclusive=True, allowed=">= 0 (rows)")
        return n

    def snr_db(self, direction: Literal["dl", "ul"], beta: torch.Tensor | float) -> torch.Tensor:
        """SNR in dB ``[..., K]`` of every device at bandwidth shares ``beta``."""
        b = self._beta(beta)
        return self._snr_offset_db[direction] - 10.0 * torch.log10(b)

    def airtime_s(self, direction: Literal["dl", "ul"], loads: torch.Tensor,
                  beta: torch.Tensor | float) -> torch.Tensor:
        """Airtime in s ``[..., K]`` of one payload ``[loads, hidden_size]`` per device in
        ``direction`` at bandwidth shares ``beta``; 0 where the load is 0."""
        return self._airtime_s(direction, self._loads(loads), self._beta(beta))

    def _airtime_s(self, direction: Literal["dl", "ul"], n: torch.Tensor,
                   b: torch.Tensor) -> torch.Tensor:
        """:meth:`airtime_s` of checked ``loads`` and ``beta`` (float64)."""
        if direction in self._shannon_bits:
            # linear in the load: loads times the seconds per row at these shares
            t = n * self._shannon_seconds_per_row(direction, b)
            return torch.where(n > 0, t, torch.zeros_like(t))
        if direction in self._block_model:
            # linear in the code blocks: blocks times the seconds per block at these shares
            blocks = self._block_model[direction].blocks_tensor(n, self.hidden_size)
            t = blocks * self._seconds_per_block(direction, b)
            return torch.where(n > 0, t, torch.zeros_like(t))
        n, b = torch.broadcast_tensors(n, b)
        elements = n * self.hidden_size
        snr = self._snr_offset_db[direction] - 10.0 * torch.log10(b)
        bw = b * self.topology.bandwidth_hz
        models = self.airtime_dl if direction == "dl" else self.airtime_ul
        d = self.hidden_size
        out = torch.zeros_like(elements)
        done: set[int] = set()
        # devices that share one vectorized model: one call for all of them
        for m, idx in self._vector_groups[direction]:
            i = torch.tensor(idx)
            t = torch.as_tensor(m.airtime_s_tensor(n[..., i], d, snr[..., i], bw[..., i]),
                                dtype=_F64)
            out[..., i] = torch.where(n[..., i] > 0, t, torch.zeros_like(t))
            done.update(idx)
        for k, m in enumerate(models):
            if k in done:
                continue
            flat_n, flat_s, flat_b = (n[..., k].reshape(-1), snr[..., k].reshape(-1),
                                      bw[..., k].reshape(-1))
            vals = []
            for n_i, s_i, b_i in zip(flat_n.tolist(), flat_s.tolist(), flat_b.tolist(),
                                     strict=True):
                if n_i <= 0:
                    vals.append(0.0)
                elif b_i <= 0:
                    vals.append(math.inf)
                else:
                    vals.append(float(m.expected_airtime_s(round(n_i), d, s_i, b_i)))
            out[..., k] = torch.tensor(vals, dtype=_F64).reshape(n[..., k].shape)
        return out

    def _seconds_per_block(self, direction: Literal["dl", "ul"],
                           b: torch.Tensor) -> torch.Tensor:
        """Expected seconds on air per code block of the direction's block-linear model at
        checked shares ``b`` (float64, +inf at a zero share); kept for recent 1-D shares, as
        :meth:`_shannon_seconds_per_row`."""
        def compute() -> torch.Tensor:
            snr = self._snr_offset_db[direction] - 10.0 * torch.log10(b)
            return torch.as_tensor(self._block_model[direction].block_airtime_s_tensor(
                snr, b * self.topology.bandwidth_hz), dtype=_F64)

        if b.dim() != 1:
            return compute()
        return self._row_time.get(("block", direction, tuple(b.tolist())), compute)

    def _shannon_seconds_per_row(self, direction: Literal["dl", "ul"],
                                 b: torch.Tensor) -> torch.Tensor:
        """Seconds on air per payload row ``D q / (beta B log2(1 + SNR(beta)))`` at checked
        shares ``b`` (float64, +inf at a zero share). A policy calls this every layer with the
        shares of the step (often the same ones), so the last few per-device vectors of
        1-D shares are kept."""
        def compute() -> torch.Tensor:
            snr = self._snr_offset_db[direction] - 10.0 * torch.log10(b)
            rate = shannon_rate_bps(b * self.topology.bandwidth_hz, snr)
            return self.hidden_size * self._shannon_bits[direction] / rate

        if b.dim() != 1:
            return compute()
        return self._row_time.get((direction, tuple(b.tolist())), compute)

    def compute_time_s(self, loads: torch.Tensor,
                       active_experts: torch.Tensor | None = None) -> torch.Tensor:
        """Device compute time in s ``[..., K]`` for ``loads`` rows.

        ``"flops"``: ``n C / f``. ``"roofline"``: ``max(n C / f, a W / M)`` where ``a`` is the
        number of distinct experts the device runs in this layer call (``active_experts``;
        default 1 on every loaded device): their weights are streamed once per layer call.
        """
        return self._compute_time_s(self._loads(loads), active_experts)

    def _compute_time_s(self, n: torch.Tensor,
                        active_experts: torch.Tensor | None) -> torch.Tensor:
        """:meth:`compute_time_s` of checked ``loads`` (float64)."""
        t = n * self.flops_per_token / self.topology.compute_flops
        if self.topology.compute_model == "roofline":
            if active_experts is None:
                a = (n > 0).to(_F64)
            else:
                a = torch.as_tensor(active_experts).to(_F64)
                if bool((a < 0).any()):
                    raise ValueError(f"active_experts must be >= 0, got {a.tolist()}")
            t_mem = a * self.weight_bytes / self.topology.memory_bandwidth_bytes_s
            t = torch.maximum(t, torch.where(n > 0, t_mem, torch.zeros_like(t_mem)))
        return t

    # ---- totals ----------------------------------------------------------------------------

    def device_latency_s(self, loads: torch.Tensor, beta: torch.Tensor | float,
                         active_experts: torch.Tensor | None = None) -> torch.Tensor:
        """Per-device latency ``dl + compute + ul`` in s, float64 ``[..., K]``; 0 where the
        load is 0 (whatever its share), +inf where a loaded device has no bandwidth."""
        n, b = self._loads(loads), self._beta(beta)   # checked once for all three terms
        t = (self._airtime_s("dl", n, b) + self._compute_time_s(n, active_experts)
             + self._airtime_s("ul", n, b))
        return torch.where(n > 0, t, torch.zeros_like(t))

    def layer_latency_s(self, loads: torch.Tensor, beta: torch.Tensor | float,
                        active_experts: torch.Tensor | None = None) -> float:
        """Layer latency ``bs_time_s + max_k device_latency_s`` in s (``loads`` of shape [K])."""
        n = self._loads(loads)
        if n.dim() != 1:
            raise ValueError(f"loads must have shape [{self.num_devices}], got {tuple(n.shape)}")
        t = self.device_latency_s(n, beta, active_experts)
        return self.topology.bs_time_s + float(t.max())

    def per_token_latency_s(self, beta: torch.Tensor | float) -> torch.Tensor:
        """Latency in s ``[K]`` of every device serving a single row at shares ``beta`` (the
        ``t_k`` of the weight-to-latency ratio)."""
        ones = torch.ones(self.num_devices, dtype=_F64)
        return self.device_latency_s(ones, beta)

    def latency_fn(self, loads: torch.Tensor, active_experts: torch.Tensor | None = None
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``beta [..., K] -> device latency in s [..., K]`` for fixed ``loads`` (shape [K]).

        Equal to :meth:`device_latency_s` for these loads, without re-checking inputs; when
        every airtime model is :class:`ShannonAirtime` the constants are folded once, which
        makes the bandwidth searches cheap.
        """
        n = self._loads(loads)
        if n.dim() != 1:
            raise ValueError(f"loads must have shape [{self.num_devices}], got {tuple(n.shape)}")
        a = None if active_experts is None else torch.as_tensor(active_experts).to(_F64)
        if not ("dl" in self._shannon_bits and "ul" in self._shannon_bits):
            return lambda beta: self.device_latency_s(n, beta.clamp(0.0, 1.0), a)
        t_cmp = self.compute_time_s(n, a)
        bw = self.topology.bandwidth_hz
        elements = n * self.hidden_size
        # per direction: seconds * (bit/s) = bits / B, and the SNR at the whole band
        c_dl, c_ul = (elements * self._shannon_bits[d] / bw for d in DIRECTIONS)
        s_dl, s_ul = (torch.pow(10.0, self._snr_offset_db[d] / 10.0) for d in DIRECTIONS)
        loaded = n > 0

        def raw(b: torch.Tensor) -> torch.Tensor:
            # rate = beta B log2(1 + SNR(1) / beta): the noise grows with the share
            return (t_cmp + c_dl / (b * torch.log2(1.0 + s_dl / b))
                    + c_ul / (b * torch.log2(1.0 + s_ul / b)))

        def fn(beta: torch.Tensor) -> torch.Tensor:
            b = beta.to(_F64)
            t = torch.where(b > 0, raw(b.clamp_min(1e-300)), torch.full_like(b, math.inf))
            return torch.where(loaded, t, torch.zeros_like(t))

        fn.raw = raw  # type: ignore[attr-defined]  # for strictly positive shares only
        return fn

    def min_beta(self, loads: torch.Tensor, target_s: torch.Tensor | float,
                 active_experts: torch.Tensor | None = None, rel_tol: float = 1e-10
                 ) -> torch.Tensor:
        """Smallest bandwidth share per device whose latency is <= ``target_s``.

        Bisection on ``beta`` in (0, 1] (latency falls monotonically as the share grows, but
        the noise grows with it, so there is no closed form). ``target_s`` has shape ``[G]``
        or is a scalar; the result has shape ``[G, K]`` (or ``[K]``): 0 for idle devices,
        +inf where even the whole band misses the target, otherwise the upper end of the final
        bracket (its latency meets the target; relative bracket width ``rel_tol``).
        """
        n = self._loads(loads)
        fn = self.latency_fn(n, active_experts)
        tau = torch.as_tensor(target_s, dtype=_F64)
        scalar = tau.dim() == 0
        tau = tau.reshape(-1, 1)
        shape = (tau.shape[0], self.num_devices)
        ones = torch.ones(shape, dtype=_F64)
        _, hi = _bisect_beta(fn, tau, torch.zeros(shape, dtype=_F64), ones, rel_tol)
        out = torch.where(fn(ones) <= tau, hi, torch.full_like(hi, math.inf))
        out = torch.where(n > 0, out, torch.zeros_like(out))
        return out[0] if scalar else out


def _bisect_beta(fn: Callable[[torch.Tensor], torch.Tensor], tau: torch.Tensor,
                 lo: torch.Tensor, hi: torch.Tensor, rel_tol: float,
                 max_iter: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Shrink brackets ``[lo, hi]`` (``fn(lo) > tau`` or ``lo = 0``; ``fn(hi) <= tau``) of the
    smallest share meeting ``tau`` until ``hi - lo <= rel_tol * hi`` everywhere."""
    f = getattr(fn, "raw", fn)  # mid > 0 always; idle devices end at ~0 and are masked later
    for i in range(max_iter):
        if i % 8 == 0 and bool(((hi - lo) <= rel_tol * hi).all()):
            break
        mid = 0.5 * (lo + hi)
        ok = f(mid) <= tau
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return lo, hi


def optimal_bandwidth(cost: DeviceCost, loads: torch.Tensor,
                      active_experts: torch.Tensor | None = None, *, rel_tol: float = 1e-7,
                      grid: int = 64, max_rounds: int = 40) -> tuple[torch.Tensor, float]:
    """Min-max bandwidth split of a fixed load: ``min_beta max_k t_k`` s.t. ``sum beta <= 1``.

    Bisection on the target latency ``tau``: each round tries ``grid`` values inside the
    current bracket; for each, a monotone 1-D search per device gives the smallest share that
    meets ``tau`` (:meth:`DeviceCost.min_beta`; those brackets are carried from round to round,
    since the share needed falls as ``tau`` grows), and ``tau`` is feasible when the shares sum
    to <= 1. The bracket starts at [max_k t_k(beta_k = 1), latency of the equal split among
    loaded devices] and stops at a relative width ``rel_tol``. Idle devices get 0; at the
    optimum every loaded device finishes at ``tau``.

    Returns:
        ``(beta [K] float64 with sum <= 1, tau)``: the shares and the max device latency in s
        (BS time not included).
    """
    n = cost._loads(loads)
    if n.dim() != 1:
        raise ValueError(f"loads must have shape [{cost.num_devices}], got {tuple(n.shape)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be an int >= 1, got {grid!r}")
    if not 0.0 < rel_tol < 1.0:
        raise ValueError(f"rel_tol must lie in (0, 1), got {rel_tol!r}")
    loaded = n > 0
    k_loaded = int(loaded.sum())
    if k_loaded == 0:
        return torch.zeros(cost.num_devices, dtype=_F64), 0.0
    fn = cost.latency_fn(n, active_experts)
    # Feasible start: equal split among the loaded devices.
    best = torch.where(loaded, torch.full_like(n, 1.0 / k_loaded), torch.zeros_like(n))
    hi_tau = float(fn(best).max())
    if k_loaded == 1:
        return best, hi_tau
    # Necessary: no device can beat its latency over the whole band.
    lo_tau = float(fn(torch.ones_like(n)).max())
    b_lo = torch.zeros_like(n)  # misses every tau <= hi_tau
    b_hi = torch.ones_like(n)   # meets every tau >= lo_tau
    beta_tol = 0.1 * rel_tol
    for _ in range(max_rounds):
        if hi_tau - lo_tau <= rel_tol * hi_tau:
            break
        taus = torch.linspace(lo_tau, hi_tau, grid + 2, dtype=_F64)[1:-1]
        lo_b, hi_b = _bisect_beta(fn, taus.reshape(-1, 1), b_lo.expand(grid, -1),
                                  b_hi.expand(grid, -1), beta_tol)
        hi_b = torch.where(loaded, hi_b, torch.zeros_like(hi_b))
        ok = hi_b.sum(-1) <= 1.0
        if bool(ok.any()):
            first = int(torch.nonzero(ok)[0])
            hi_tau, best, b_lo = float(taus[first]), hi_b[first], lo_b[first]
            if first > 0:
                lo_tau, b_hi = float(taus[first - 1]), hi_b[first - 1]
        else:
            lo_tau, b_hi = float(taus[-1]), hi_b[-1]
    return best, float(fn(best).max())
