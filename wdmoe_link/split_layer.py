"""Split inference at a layer boundary ("Pushing LLMs to the 6G edge"), the baseline that
WDMoE's expert split is compared with.

The device runs the embeddings and decoder layers ``< cut``; the activation entering layer
``cut`` (one row of ``D`` values per token) crosses the uplink as one payload through the same
transports as WDMoE's hidden states (:mod:`wdmoe_link.transports`: ideal, digital with MCS,
BLER and HARQ, analog); the BS runs the remaining layers and the LM head. A lost row arrives as
zeros, as in WDMoE. The payload is swapped in by a forward pre-hook on layer ``cut`` (the
model's own forward runs unchanged on both sides), so any transformers decoder with a
``model.layers`` list splits this way, MoE or dense.

Latency of one forward pass (a prefill or one generated token), in s::

    t = F_front / f_device + airtime(payload) + F_back / f_BS

with the FLOPs of :class:`~wdmoe_link.edge.DecoderShape` split by layers at the context
length so far, ``f_device`` the device's FLOP/s (:class:`~wdmoe_link.topology.Device`) and
``f_BS`` the BS server's. The payload's SNR is the device's uplink SNR over the whole band
(one user), with a new Rayleigh block per forward pass. The generated token's 32 bits back on
the downlink are left out (microseconds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .edge.model_shape import DecoderShape
from .system import Report
from .topology import Topology
from .transports import Transport, parse_transport

__all__ = ["BS_FLOPS", "SplitAtLayer", "parse_split_baseline"]

#: Compute of the BS's server in FLOP/s (an edge GPU at about 100 TFLOP/s).
BS_FLOPS: float = 100e12


def parse_split_baseline(spec: str) -> int:
    """``"split:<cut>"`` -> ``cut``."""
    name, _, cut = str(spec).partition(":")
    if name != "split" or not cut.strip().lstrip("-").isdigit():
        raise ValueError(f"a split baseline is 'split:<cut>' with an integer layer cut, got "
                         f"{spec!r}")
    return int(cut)


@dataclass
class _Step:
    phase: str
    num_tokens: int
    latency_s: float = 0.0
    bits_ul: int = 0
    uses_ul: int = 0
    rows: int = 0
    lost: int = 0


@dataclass
class _State:
    steps: list[_Step] = field(default_factory=list)
    step: _Step | None = None
    context: int = 0


def _decoder_layers(model: Any) -> torch.nn.ModuleList:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) < 2:
        raise ValueError(f"{type(model).__name__} has no model.layers list of at least two "
                         "decoder layers to split")
    return layers


class SplitAtLayer:
    """A causal LM split at decoder layer ``cut`` between a device and the BS.

    Use as a dispatcher of :func:`wdmoe_link.tasks.evaluate_accuracy` (it opens and closes
    each forward pass) inside a ``with`` block, or call :meth:`evaluate`.

    Args:
        model: a transformers causal LM (``model.model.layers``).
        cut: the first layer on the BS, in ``[1, num_layers - 1]``.
        topology: the cell (the device's distance, power and FLOP/s; bandwidth; noise).
        transport: the uplink transport or its spec (``"digital:bf16"``, ``"ideal"``, ...).
        device: index of the device in ``topology`` that holds the front layers.
        bs_flops: the BS server's compute (FLOP/s).
        seed: seed of the fading draws and of the transport's noise.
    """

    def __init__(self, model: Any, cut: int, topology: Topology,
                 transport: str | Transport = "digital:bf16", *, device: int = 0,
                 bs_flops: float = BS_FLOPS, seed: int = 0) -> None:
        layers = _decoder_layers(model)
        if isinstance(cut, bool) or not isinstance(cut, int) or not 1 <= cut < len(layers):
            raise ValueError(f"cut must be an int in [1, {len(layers) - 1}] (the first layer on "
                             f"the BS of a {len(layers)}-layer model), got {cut!r}")
        if not isinstance(topology, Topology):
            raise TypeError(f"topology must be a Topology, got {type(topology).__name__}")
        if isinstance(device, bool) or not isinstance(device, int) \
                or not 0 <= device < topology.num_devices:
            raise ValueError(f"device must be an int in [0, {topology.num_devices - 1}], got "
                             f"{device!r}")
        if not (isinstance(bs_flops, (int, float)) and math.isfinite(bs_flops) and bs_flops > 0):
            raise ValueError(f"bs_flops must be finite and > 0 FLOP/s, got {bs_flops!r}")
        if isinstance(transport, str) and transport.startswith("analog+"):
            raise ValueError("split inference takes ideal, digital or analog transports; the "
                             "hidden-state denoisers are trained on MoE layer inputs")
        self.model, self.cut, self.topology = model, cut, topology
        self.transport = parse_transport(transport)
        self.device, self.bs_flops, self.seed = device, float(bs_flops), seed
        self.shape = DecoderShape.from_config(model.config)
        self._layer = layers[cut]
        self._handle: Any = None
        self._state = _State()
        self._gen = torch.Generator().manual_seed(seed)
        self._snr_db = math.nan

    @property
    def name(self) -> str:
        return f"split:{self.cut}"

    # ---------------------------------------------------------------------------- hooks

    def __enter__(self) -> SplitAtLayer:
        if self._handle is None:
            self._handle = self._layer.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def reset(self, seed: int | None = None) -> None:
        """Forget the recorded steps and re-seed the fading and noise."""
        self.seed = self.seed if seed is None else seed
        self._gen = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self._state = _State()

    def begin_step(self, phase: str, num_tokens: int) -> None:
        """Start a forward pass: draw this block's fading."""
        if phase not in ("prefill", "decode"):
            raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
        self.end_step()
        gain = self.topology.channel_gain(self._gen)
        self._snr_db = float(self.topology.snr_db("ul", 1.0, gain)[self.device])
        self._state.step = _Step(phase, int(num_tokens))

    def end_step(self) -> None:
        if self._state.step is not None:
            self._state.steps.append(self._state.step)
            self._state.step = None

    def _hook(self, module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = args[0] if args else kwargs["hidden_states"]
        step = self._state.step
        if step is None:  # a plain forward outside evaluate: one implicit prefill
            self.begin_step("prefill", hidden.shape[0] * hidden.shape[1])
            step = self._state.step
        tokens = hidden.shape[1]
        if step.phase == "prefill":
            self._state.context = 0
        ctx = self._state.context + tokens
        self._state.context = ctx
        x = hidden.reshape(-1, hidden.shape[-1])
        snr = min(max(self._snr_db, -60.0), 100.0)
        delivery = self.transport.send(x.float(), snr, self.topology.bandwidth_hz)
        flops = self._layer_flops(hidden.shape[0], tokens, ctx)
        L = self.shape.num_layers
        dev = self.topology.devices[self.device].compute_flops
        step.latency_s += (flops * self.cut / dev + delivery.airtime_s
                           + flops * (L - self.cut) / self.bs_flops)
        step.bits_ul += delivery.bits
        step.uses_ul += delivery.channel_uses
        step.rows += x.shape[0]
        step.lost += delivery.num_lost
        new = delivery.x_hat.to(hidden.dtype).reshape(hidden.shape).to(hidden.device)
        if args:
            return (new, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": new}

    def _layer_flops(self, batch: int, tokens: int, context: int) -> float:
        """FLOPs of one decoder layer on ``tokens`` new tokens at total context ``context``."""
        s = self.shape
        mean_ctx = context - (tokens - 1) / 2.0  # the new tokens see contexts up to ``context``
        return batch * tokens * (2.0 * s.active_linear_params_per_layer
                                 + 4.0 * mean_ctx * s.attention_dim)

    # ---------------------------------------------------------------------------- reports

    def report(self, accuracy: float = math.nan, num_examples: int = 0) -> Report:
        """The recorded steps as a :class:`~wdmoe_link.system.Report` (expert fields 0)."""
        self.end_step()
        steps = self._state.steps
        dec = [s for s in steps if s.phase == "decode"]
        pre = [s for s in steps if s.phase == "prefill"]

        def mean(xs: Sequence[float]) -> float:
            return sum(xs) / len(xs) if xs else math.nan

        lat = sorted(s.latency_s for s in dec)
        rows = sum(s.rows for s in steps)
        lost = sum(s.lost for s in steps)
        return Report(
            policy=self.name, transports=self.transport.name, accuracy=accuracy,
            num_examples=num_examples, num_prefill_steps=len(pre), num_decode_steps=len(dec),
            latency_per_token_mean_s=mean(lat),
            latency_per_token_p95_s=lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)]
            if lat else math.nan,
            prefill_latency_mean_s=mean([s.latency_s for s in pre]),
            request_latency_mean_s=(sum(s.latency_s for s in steps) / len(pre)) if pre
            else math.nan,
            bits_dl_per_token=0.0, bits_ul_per_token=mean([s.bits_ul for s in dec]),
            channel_uses_dl_per_token=0.0,
            channel_uses_ul_per_token=mean([s.uses_ul for s in dec]),
            bits_dl_total=0, bits_ul_total=sum(s.bits_ul for s in steps),
            channel_uses_dl_total=0, channel_uses_ul_total=sum(s.uses_ul for s in steps),
            rows_total=rows, experts_per_token_mean=math.nan, experts_dropped=0,
            experts_dropped_fraction=0.0, experts_lost=lost,
            experts_lost_fraction=lost / rows if rows else 0.0, experts_lost_dl=0,
            experts_lost_ul=lost, tokens_without_expert=0, nan_guard=0,
            transport_usage=f"{self.transport.name}={len(steps)}",
            extra={"cut": self.cut, "lost_activation_rows": lost})

    def evaluate(self, task: Any, limit: int | None = None, *, progress: bool = False,
                 batch_size: int = 1) -> Report:
        """Greedy exact-match accuracy of ``task`` through the split (re-seeded first)."""
        from .tasks import evaluate_accuracy

        self.reset()
        t0 = time.perf_counter()
        with self:
            result = evaluate_accuracy(self.model, task, dispatcher=self, limit=limit,
                                       progress=progress, batch_size=batch_size)
        rep = self.report(accuracy=result.accuracy, num_examples=result.n)
        rep.wall_time_s = time.perf_counter() - t0
        return rep
