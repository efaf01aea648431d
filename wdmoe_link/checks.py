"""Input validation of :mod:`wdmoe_link` (generic checks are :mod:`phy.checks`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from phy.checks import all_finite, check_number, value_range

if TYPE_CHECKING:
    from .routing import Routing

__all__ = ["check_expert_map", "check_payload", "check_payload_lengths", "check_payload_snr",
           "check_routing"]


def check_routing(routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
    """``(top_idx, top_w)`` of a :class:`~wdmoe_link.routing.Routing`: ``[N, k]`` each, at
    least one token and slot, expert indices in range."""
    top_idx, top_w = routing.top_idx, routing.top_w
    n, e = routing.num_tokens, routing.num_experts
    if top_idx.dim() != 2 or top_idx.shape[0] != n or top_w.shape != top_idx.shape:
        raise ValueError(f"routing.top_idx and routing.top_w must be [N={n}, k], got "
                         f"{tuple(top_idx.shape)} and {tuple(top_w.shape)}")
    if n == 0 or top_idx.shape[1] == 0:
        raise ValueError(f"routing must hold at least one token and one expert slot, got "
                         f"top_idx of shape {tuple(top_idx.shape)}")
    lo, hi = value_range(top_idx)
    if lo < 0 or hi >= e:
        raise ValueError(f"routing.top_idx must lie in [0, {e - 1}], got values in "
                         f"[{int(lo)}, {int(hi)}]")
    return top_idx, top_w


def check_expert_map(expert_map: Any, num_experts: int, num_devices: int) -> torch.Tensor:
    """``expert_map`` (device index of each of ``num_experts`` experts, in ``[0, K)``) as
    int64 on the CPU; a clear error otherwise."""
    m = torch.as_tensor(expert_map)
    if m.dim() != 1 or m.shape[0] != num_experts:
        raise ValueError(f"expert_map must give a device for each of the {num_experts} experts "
                         f"(shape [{num_experts}]), got shape {tuple(m.shape)}")
    if m.is_floating_point() or m.is_complex() or m.dtype == torch.bool:
        raise ValueError(f"expert_map must hold integer device indices, got dtype {m.dtype}")
    lo, hi = value_range(m)
    if lo < 0 or hi >= num_devices:
        e = int(torch.nonzero((m < 0) | (m >= num_devices))[0])
        raise ValueError(f"expert_map must hold device indices in [0, {num_devices - 1}] "
                         f"(K={num_devices} devices), got expert_map[{e}]={int(m[e])}")
    return m.to(torch.long).cpu()


def check_payload_snr(snr_db: float) -> float:
    """A payload's SNR in dB: any real number (+-inf included; the transports clip it to
    phy's range)."""
    return check_number("snr_db", snr_db, finite=False, unit="dB")


def check_payload(x: torch.Tensor, snr_db: float, bandwidth_hz: float,
                  check_finite: bool) -> tuple[torch.Tensor, float, float]:
    """``(x as float32, snr_db, bandwidth_hz)`` of one payload, checked (see
    :meth:`~wdmoe_link.transports.Transport.send`)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [n, D], got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] < 1:
        raise ValueError(f"x must have shape [n, D] with D >= 1, got {tuple(x.shape)}")
    if x.is_complex() or not x.is_floating_point():
        raise ValueError(f"x must be a real floating-point tensor, got dtype {x.dtype}")
    if check_finite and not all_finite(x):
        raise ValueError(f"x holds {int((~torch.isfinite(x)).sum())} NaN/Inf value(s); "
                         "only finite payloads can be sent")
    snr = check_payload_snr(snr_db)
    bw = check_number("bandwidth_hz", bandwidth_hz, low=0.0, low_open=True, unit="Hz")
    return x.detach().to(torch.float32), snr, bw


def check_payload_lengths(xs: Sequence[torch.Tensor], snr_db: Sequence[float],
                   bandwidth_hz: Sequence[float]) -> None:
    """Payloads, SNRs and bandwidths of one :meth:`send_many` call: one of each per payload."""
    if not len(xs) == len(snr_db) == len(bandwidth_hz):
        raise ValueError(f"xs, snr_db and bandwidth_hz must have equal lengths, got "
                         f"{len(xs)}, {len(snr_db)}, {len(bandwidth_hz)}")
