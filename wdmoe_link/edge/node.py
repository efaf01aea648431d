"""Edge nodes (a base station with a co-located server that hosts a quantized LLM) and the
quantization levels they serve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..topology import _finite, _non_negative, _position_m, _positive
from .model_shape import LLAMA2_7B, DecoderShape

__all__ = ["EdgeNode", "QuantLevel"]


@dataclass(frozen=True)
class QuantLevel:
    """One way the node can store the model's weights.

    Attributes:
        weight_bits: bits per weight (16: bf16, 8: int8, 4: int4 with group scales).
        accuracy: the score the model reaches at this level, in [0, 1], in the metric the
            users' accuracy floors are given in (measured: :mod:`wdmoe_link.edge.quantization`).
    """

    weight_bits: float
    accuracy: float

    def __post_init__(self) -> None:
        bits = _positive("weight_bits", self.weight_bits, "(bits per weight)")
        if bits > 32:
            raise ValueError(f"weight_bits must be in (0, 32], got {self.weight_bits!r}")
        acc = _finite("accuracy", self.accuracy, "a score in [0, 1]")
        if not 0.0 <= acc <= 1.0:
            raise ValueError(f"accuracy must be in [0, 1], got {self.accuracy!r}")
        object.__setattr__(self, "weight_bits", bits)
        object.__setattr__(self, "accuracy", acc)


def _default_levels() -> tuple[QuantLevel, ...]:
    from .quantization import measured_levels

    return measured_levels()


@dataclass(frozen=True)
class EdgeNode:
    """An edge node: memory, compute and radio resources, and the model it serves.

    Attributes:
        memory_bytes: server memory for weights and KV cache (bytes, > 0).
        compute_flops: sustained compute (FLOP/s, > 0).
        memory_bandwidth_bytes_s: memory bandwidth (byte/s, > 0) for the roofline model.
        ul_bandwidth_hz: uplink bandwidth shared by the batch (Hz, > 0).
        dl_bandwidth_hz: downlink bandwidth shared by the batch (Hz, > 0).
        levels: the quantization levels it can serve (default: the shipped text model's
            measured table, :func:`wdmoe_link.edge.quantization.measured_levels`).
        model: the decoder it hosts (default: a Llama-2-7B-shaped dense decoder).
        kv_bits: bits per KV-cache element (16).
        position_m: (x, y) of the node in metres.
        bs_power_dbm: downlink transmit power over ``dl_bandwidth_hz`` (dBm).
        noise_figure_db: receiver noise figure of both ends (dB, >= 0).
        name: a label for reports.
    """

    memory_bytes: float = 24e9
    compute_flops: float = 100e12
    memory_bandwidth_bytes_s: float = 1.0e12
    ul_bandwidth_hz: float = 20e6
    dl_bandwidth_hz: float = 20e6
    levels: tuple[QuantLevel, ...] = field(default_factory=_default_levels)
    model: DecoderShape = LLAMA2_7B
    kv_bits: float = 16
    position_m: tuple[float, float] = (0.0, 0.0)
    bs_power_dbm: float = 40.0
    noise_figure_db: float = 7.0
    name: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "memory_bytes", _positive("memory_bytes", self.memory_bytes, "(bytes)"))
        set_(self, "compute_flops", _positive("compute_flops", self.compute_flops, "(FLOP/s)"))
        set_(self, "memory_bandwidth_bytes_s",
             _positive("memory_bandwidth_bytes_s", self.memory_bandwidth_bytes_s, "(byte/s)"))
        set_(self, "ul_bandwidth_hz", _positive("ul_bandwidth_hz", self.ul_bandwidth_hz, "(Hz)"))
        set_(self, "dl_bandwidth_hz", _positive("dl_bandwidth_hz", self.dl_bandwidth_hz, "(Hz)"))
        set_(self, "kv_bits", _positive("kv_bits", self.kv_bits, "(bits)"))
        set_(self, "bs_power_dbm", _finite("bs_power_dbm", self.bs_power_dbm, "dBm"))
        set_(self, "noise_figure_db",
             _non_negative("noise_figure_db", self.noise_figure_db, "(dB)"))
        if not isinstance(self.model, DecoderShape):
            raise TypeError(f"model must be a DecoderShape, got {type(self.model).__name__}")
        if isinstance(self.levels, Mapping) or not isinstance(self.levels, Sequence) \
                or len(self.levels) == 0:
            raise ValueError("levels must be a non-empty sequence of QuantLevel")
        levels = tuple(QuantLevel(**lv) if isinstance(lv, Mapping) else lv
                       for lv in self.levels)
        for i, lv in enumerate(levels):
            if not isinstance(lv, QuantLevel):
                raise TypeError(f"levels[{i}] must be a QuantLevel, got {type(lv).__name__}")
        set_(self, "levels", levels)
        set_(self, "position_m", _position_m("position_m", self.position_m))

    def with_(self, **changes: Any) -> EdgeNode:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "levels":
                v = [{"weight_bits": lv.weight_bits, "accuracy": lv.accuracy} for lv in v]
            elif f.name == "model":
                v = v.to_dict()
            elif f.name == "position_m":
                v = list(v)
            out[f.name] = v
        return out
