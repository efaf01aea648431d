"""An inference request of one user: its prompt, output, deadline, accuracy floor and place in
the cell."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import phy

from ..topology import _finite, _position_m, _positive

__all__ = ["Request"]


def _tokens(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 (tokens), got {value!r}")
    return value


@dataclass(frozen=True)
class Request:
    """One user's request, served in one epoch (uplink, batched compute, downlink).

    Attributes:
        prompt_tokens: tokens of the prompt, sent on the uplink (>= 1).
        output_tokens: tokens to generate, sent on the downlink (>= 1).
        deadline_s: the latest end of the downlink after the epoch starts (s, > 0).
        accuracy_floor: the lowest model accuracy the user accepts, in [0, 1] (the metric of
            the node's :class:`~wdmoe_link.edge.QuantLevel`).
        position_m: (x, y) of the user in metres (the SNR to each node follows from the
            distance, see :mod:`wdmoe_link.edge.links`).
        tx_power_dbm: the user's transmit power (dBm) over ``tx_reference_bandwidth_hz``.
        tx_reference_bandwidth_hz: uplink power control keeps the power spectral density
            ``tx_power_dbm / tx_reference_bandwidth_hz`` on whatever share the user gets, so its
            SNR does not depend on the share (Hz, > 0).
        snr_ul_db / snr_dl_db: set the link SNRs (dB) to every node directly instead of the
            cell model (controlled experiments).
    """

    prompt_tokens: int
    output_tokens: int
    deadline_s: float
    accuracy_floor: float = 0.0
    position_m: tuple[float, float] = (100.0, 0.0)
    tx_power_dbm: float = 23.0
    tx_reference_bandwidth_hz: float = 5e6
    snr_ul_db: float | None = None
    snr_dl_db: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _tokens("prompt_tokens", self.prompt_tokens)
        _tokens("output_tokens", self.output_tokens)
        set_(self, "deadline_s", _positive("deadline_s", self.deadline_s, "(seconds)"))
        floor = _finite("accuracy_floor", self.accuracy_floor, "a score in [0, 1]")
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"accuracy_floor must be in [0, 1], got {self.accuracy_floor!r}")
        set_(self, "accuracy_floor", floor)
        set_(self, "position_m", _position_m("position_m", self.position_m))
        set_(self, "tx_power_dbm", _finite("tx_power_dbm", self.tx_power_dbm, "dBm"))
        set_(self, "tx_reference_bandwidth_hz",
             _positive("tx_reference_bandwidth_hz", self.tx_reference_bandwidth_hz, "(Hz)"))
        for name in ("snr_ul_db", "snr_dl_db"):
            v = getattr(self, name)
            if v is not None:
                s = _finite(name, v, "an SNR in dB")
                if not phy.SNR_DB_MIN <= s <= phy.SNR_DB_MAX:
                    raise ValueError(f"{name} must lie in [{phy.SNR_DB_MIN:g}, "
                                     f"{phy.SNR_DB_MAX:g}] dB (phy's range), got {v!r}")
                set_(self, name, s)

    def distance_m(self, position_m: tuple[float, float]) -> float:
        """Distance to a point (m), at least 1 m."""
        return max(math.dist(self.position_m, position_m), 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}
