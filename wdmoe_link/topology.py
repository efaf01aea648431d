"""Network topology of a WDMoE cell: one base station (BS) and K devices that host the experts.

Everything the latency model needs about the radio and the hardware lives here, each constant a
dataclass field whose name carries its unit:

* :class:`Device`: distance to the BS (m), compute (FLOP/s), memory bandwidth (byte/s) and
  uplink transmit power (dBm).
* :class:`Topology`: the devices plus total bandwidth (Hz), BS power (dBm), noise PSD (dBm/Hz),
  noise figure (dB), path-loss model, fading model, BS time per layer (s) and compute model.

Channel model (per device *k*, per direction)::

    g_k   = 10^(-PL(d_k)/10) * |h_k|^2                  |h_k|^2 ~ Exp(1) (Rayleigh block) or 1
    SNR_k = P g_k / (beta_k B N0 NF)                    noise grows with the allocated share

with ``P`` the BS power (downlink) or the device power (uplink). Path loss ``PL`` is the 3GPP
macro-cell law ``128.1 + 37.6 log10(d / km)`` dB or, optionally, free space at
``carrier_frequency_hz``. Written out here because no library ships this WDMoE cell model.

A topology round-trips through plain dictionaries (:meth:`Topology.to_dict`,
:meth:`Topology.from_dict`), so it can live in a YAML config.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

import phy

__all__ = [
    "COMPUTE_MODELS",
    "DIRECTIONS",
    "FADING_MODELS",
    "PATH_LOSS_MODELS",
    "Device",
    "Topology",
    "dbm_to_w",
    "default_topology",
    "free_space_path_loss_db",
    "homogeneous_topology",
    "macro_path_loss_db",
    "w_to_dbm",
]

PATH_LOSS_MODELS: tuple[str, ...] = ("3gpp-macro", "free-space")
FADING_MODELS: tuple[str, ...] = ("rayleigh-block", "none")
COMPUTE_MODELS: tuple[str, ...] = ("flops", "roofline")
DIRECTIONS: tuple[str, ...] = ("dl", "ul")

#: Jetson AGX Orin: about 5.3 TFLOP/s FP32 and 204.8 GB/s LPDDR5 (the reference device).
ORIN_FLOPS: float = 5.3e12
ORIN_MEMORY_BANDWIDTH_BYTES_S: float = 204.8e9

_SPEED_OF_LIGHT_M_S = 299_792_458.0


# --------------------------------------------------------------------------------------------
# validation: every error names the parameter, the value and the allowed range


def _real(name: str, value: Any) -> float:
    """``value`` as a float; numeric strings are accepted (YAML reads ``100e6`` as a string)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got a bool {value!r}")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise TypeError(f"{name} must be a number, got the string {value!r}") from None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _positive(name: str, value: Any, unit: str) -> float:
    v = _real(name, value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be finite and > 0 {unit}, got {value!r}")
    return v


def _non_negative(name: str, value: Any, unit: str) -> float:
    v = _real(name, value)
    if not math.isfinite(v) or v < 0.0:
        raise ValueError(f"{name} must be finite and >= 0 {unit}, got {value!r}")
    return v


def _finite(name: str, value: Any, what: str) -> float:
    v = _real(name, value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite ({what}), got {value!r}")
    return v


def _position_m(name: str, value: Any) -> tuple[float, float]:
    """A point ``(x, y)`` in metres, both finite."""
    try:
        pos = tuple(value)
    except TypeError:
        pos = ()
    if len(pos) != 2:
        raise ValueError(f"{name} must be (x, y) in metres, got {value!r}")
    return (_finite(name, pos[0], "metres"), _finite(name, pos[1], "metres"))


def _power_dbm(name: str, value: Any) -> float:
    """A transmit power in dBm: any finite value (a power > 0 W); -inf dBm is 0 W."""
    v = _real(name, value)
    if not math.isfinite(v):
        raise ValueError(
            f"{name} must be a finite power in dBm (a transmit power > 0 W), got {value!r}"
        )
    return v


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def dbm_to_w(power_dbm: float) -> float:
    """Power in W of ``power_dbm`` dBm."""
    return 10.0 ** ((_real("power_dbm", power_dbm) - 30.0) / 10.0)


def w_to_dbm(power_w: float, name: str = "power_w") -> float:
    """Power in dBm of ``power_w`` W; the power must be finite and > 0 W."""
    return 10.0 * math.log10(_positive(name, power_w, "W")) + 30.0


# --------------------------------------------------------------------------------------------
# path loss


def macro_path_loss_db(distance_m: torch.Tensor) -> torch.Tensor:
    """3GPP macro-cell path loss ``128.1 + 37.6 log10(d / km)`` in dB for distances in metres."""
    d_km = torch.as_tensor(distance_m, dtype=torch.float64) / 1000.0
    return 128.1 + 37.6 * torch.log10(d_km)


def free_space_path_loss_db(distance_m: torch.Tensor, carrier_frequency_hz: float) -> torch.Tensor:
    """Friis free-space path loss ``20 log10(4 pi d f / c)`` in dB (d in m, carrier f in Hz)."""
    d = torch.as_tensor(distance_m, dtype=torch.float64)
    return 20.0 * torch.log10(4.0 * math.pi * d * carrier_frequency_hz / _SPEED_OF_LIGHT_M_S)


# --------------------------------------------------------------------------------------------
# devices and topology


@dataclass(frozen=True)
class Device:
    """One device (expert host).

    Attributes:
        distance_m: distance to the BS in metres (> 0).
        compute_flops: sustained compute in FLOP/s (> 0).
        memory_bandwidth_bytes_s: memory bandwidth in byte/s (> 0), used by the roofline model.
        tx_power_dbm: uplink transmit power in dBm (finite, i.e. > 0 W).
    """

    distance_m: float
    compute_flops: float
    memory_bandwidth_bytes_s: float = ORIN_MEMORY_BANDWIDTH_BYTES_S
    tx_power_dbm: float = 23.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "distance_m", _positive("distance_m", self.distance_m, "(metres)"))
        set_(self, "compute_flops", _positive("compute_flops", self.compute_flops, "(FLOP/s)"))
        set_(self, "memory_bandwidth_bytes_s",
             _positive("memory_bandwidth_bytes_s", self.memory_bandwidth_bytes_s, "(byte/s)"))
        set_(self, "tx_power_dbm", _power_dbm("tx_power_dbm", self.tx_power_dbm))

    def to_dict(self) -> dict[str, float]:
        """Plain-``float`` dictionary of the fields."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Device:
        """Build from a dict of the fields; ``tx_power_w`` (W) may replace ``tx_power_dbm``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a device must be a mapping of its fields, got {type(data).__name__}")
        d = dict(data)
        if "tx_power_w" in d:
            if "tx_power_dbm" in d:
                raise ValueError("give tx_power_dbm or tx_power_w for a device, not both")
            d["tx_power_dbm"] = w_to_dbm(d.pop("tx_power_w"), "tx_power_w")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ValueError(f"unknown device field(s) {unknown}; allowed: "
                             f"{[*allowed, 'tx_power_w']}")
        return cls(**d)


@dataclass(frozen=True)
class Topology:
    """A BS and its devices, with every radio and hardware constant of the latency model.

    Attributes:
        devices: the K devices (device ``k`` hosts the experts mapped to ``k``).
        bandwidth_hz: total bandwidth B in Hz shared by all devices (> 0).
        bs_power_dbm: BS transmit power in dBm over the whole band (finite, i.e. > 0 W).
        noise_psd_dbm_hz: thermal noise PSD N0 in dBm/Hz.
        noise_figure_db: receiver noise figure in dB (>= 0).
        path_loss: ``"3gpp-macro"`` (128.1 + 37.6 log10(d/km) dB) or ``"free-space"``.
        carrier_frequency_hz: carrier frequency in Hz (> 0), used by ``"free-space"`` only.
        fading: ``"rayleigh-block"`` (|h|^2 ~ Exp(1), one draw per block) or ``"none"``.
        bs_time_s: BS time per MoE layer in s (attention, router; >= 0).
        compute_model: ``"flops"`` (flops / f) or ``"roofline"`` (max of that and the time to
            stream the expert weights from memory).
        link_snr_db: controlled experiments: when set, every link's mean SNR is this value in
            dB, whatever the distance, power and bandwidth share; block fading still applies
            (``SNR = link_snr_db + 10 log10 |h|²``). None (default): the link budget above.
    """

    devices: tuple[Device, ...]
    bandwidth_hz: float = 100e6
    bs_power_dbm: float = 40.0
    noise_psd_dbm_hz: float = -174.0
    noise_figure_db: float = 0.0
    path_loss: Literal["3gpp-macro", "free-space"] = "3gpp-macro"
    carrier_frequency_hz: float = 3.5e9
    fading: Literal["rayleigh-block", "none"] = "rayleigh-block"
    bs_time_s: float = 0.0
    compute_model: Literal["flops", "roofline"] = "flops"
    link_snr_db: float | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.devices, (str, bytes)) or not isinstance(self.devices, Sequence):
            raise TypeError("devices must be a sequence of Device, got "
                            f"{type(self.devices).__name__}")
        devices = tuple(self.devices)
        if len(devices) == 0:
            raise ValueError("devices must hold at least one Device, got 0")
        for i, dev in enumerate(devices):
            if not isinstance(dev, Device):
                raise TypeError(f"devices[{i}] must be a Device, got {type(dev).__name__}")
        set_(self, "devices", devices)
        set_(self, "bandwidth_hz", _positive("bandwidth_hz", self.bandwidth_hz, "(Hz)"))
        set_(self, "bs_power_dbm", _power_dbm("bs_power_dbm", self.bs_power_dbm))
        set_(self, "noise_psd_dbm_hz",
             _finite("noise_psd_dbm_hz", self.noise_psd_dbm_hz, "a noise PSD in dBm/Hz"))
        set_(self, "noise_figure_db",
             _non_negative("noise_figure_db", self.noise_figure_db, "(dB)"))
        set_(self, "path_loss", _choice("path_loss", self.path_loss, PATH_LOSS_MODELS))
        set_(self, "carrier_frequency_hz",
             _positive("carrier_frequency_hz", self.carrier_frequency_hz, "(Hz)"))
        set_(self, "fading", _choice("fading", self.fading, FADING_MODELS))
        set_(self, "bs_time_s", _non_negative("bs_time_s", self.bs_time_s, "(seconds)"))
        set_(self, "compute_model", _choice("compute_model", self.compute_model, COMPUTE_MODELS))
        if self.link_snr_db is not None:
            snr = _finite("link_snr_db", self.link_snr_db, "an SNR in dB")
            if not phy.SNR_DB_MIN <= snr <= phy.SNR_DB_MAX:
                raise ValueError(f"link_snr_db must lie in [{phy.SNR_DB_MIN:g}, "
                                 f"{phy.SNR_DB_MAX:g}] dB (phy's range), got {snr:g} dB")
            set_(self, "link_snr_db", snr)

    # ---- per-device vectors ----------------------------------------------------------------

    @property
    def num_devices(self) -> int:
        """K, the number of devices."""
        return len(self.devices)

    def _vector(self, attr: str) -> torch.Tensor:
        if attr not in self._cache:
            self._cache[attr] = torch.tensor([getattr(d, attr) for d in self.devices],
                                             dtype=torch.float64)
        return self._cache[attr]

    @property
    def distance_m(self) -> torch.Tensor:
        """Distances in m, float64 ``[K]``."""
        return self._vector("distance_m")

    @property
    def compute_flops(self) -> torch.Tensor:
        """Device compute in FLOP/s, float64 ``[K]``."""
        return self._vector("compute_flops")

    @property
    def memory_bandwidth_bytes_s(self) -> torch.Tensor:
        """Device memory bandwidth in byte/s, float64 ``[K]``."""
        return self._vector("memory_bandwidth_bytes_s")

    @property
    def tx_power_dbm(self) -> torch.Tensor:
        """Device (uplink) transmit powers in dBm, float64 ``[K]``."""
        return self._vector("tx_power_dbm")

    # ---- channel ---------------------------------------------------------------------------

    def path_loss_db(self) -> torch.Tensor:
        """Path loss of every device in dB, float64 ``[K]``."""
        if self.path_loss == "3gpp-macro":
            return macro_path_loss_db(self.distance_m)
        return free_space_path_loss_db(self.distance_m, self.carrier_frequency_hz)

    def path_gain(self) -> torch.Tensor:
        """Large-scale power gain ``10^(-PL/10)`` (linear, no fading), float64 ``[K]``."""
        return torch.pow(10.0, -self.path_loss_db() / 10.0)

    def draw_fading(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One block of small-scale power gains ``|h_k|^2``, float64 ``[K]``.

        ``"rayleigh-block"``: i.i.d. Exp(1) (unit mean), drawn from ``generator`` (the global
        torch RNG when ``None``); ``"none"``: ones, and ``generator`` is not touched.
        """
        k = self.num_devices
        if self.fading == "none":
            return torch.ones(k, dtype=torch.float64)
        u = torch.rand(k, generator=generator, dtype=torch.float64)
        return -torch.log1p(-u)  # inverse CDF of Exp(1); u in [0, 1) so the result is finite

    def channel_gain(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Path gain times one fading draw (:meth:`draw_fading`), linear, float64 ``[K]``."""
        return self.path_gain() * self.draw_fading(generator)

    def noise_power_dbm(self, beta: torch.Tensor | float) -> torch.Tensor:
        """Noise power ``N0 + 10 log10(beta B) + NF`` in dBm of a bandwidth share ``beta``.

        ``beta`` (fraction of ``bandwidth_hz``, shape ``[..., K]`` or scalar) of 0 gives -inf.
        """
        b = torch.as_tensor(beta, dtype=torch.float64)
        return (self.noise_psd_dbm_hz + self.noise_figure_db
                + 10.0 * torch.log10(b * self.bandwidth_hz))

    def snr_db(self, direction: Literal["dl", "ul"], beta: torch.Tensor | float,
               gain: torch.Tensor) -> torch.Tensor:
        """Receive SNR ``P g / (beta B N0 NF)`` in dB, float64 ``[..., K]``.

        Args:
            direction: ``"dl"`` (BS -> device, BS power) or ``"ul"`` (device -> BS, device power).
            beta: bandwidth fractions in [0, 1], shape ``[..., K]`` or a scalar; 0 gives +inf dB.
            gain: linear channel power gains ``[K]`` (path gain times fading).
        """
        _choice("direction", direction, DIRECTIONS)
        g = torch.as_tensor(gain, dtype=torch.float64)
        if g.shape != (self.num_devices,):
            raise ValueError(f"gain must have shape [{self.num_devices}] (one per device), "
                             f"got {tuple(g.shape)}")
        if self.link_snr_db is not None:
            fading_db = 10.0 * torch.log10(g / self.path_gain())
            b = torch.as_tensor(beta, dtype=torch.float64)
            snr = self.link_snr_db + fading_db.expand(torch.broadcast_shapes(b.shape, g.shape))
            return torch.where(b > 0, snr, torch.full_like(snr, math.inf))
        p_dbm = (torch.full_like(g, self.bs_power_dbm) if direction == "dl"
                 else self.tx_power_dbm)
        return p_dbm + 10.0 * torch.log10(g) - self.noise_power_dbm(beta)

    # ---- dictionaries ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (floats, strings, a list of device dictionaries); YAML-safe."""
        out: dict[str, Any] = {"devices": [d.to_dict() for d in self.devices]}
        for f in dataclasses.fields(self):
            if f.name in ("devices", "_cache"):
                continue
            v = getattr(self, f.name)
            out[f.name] = v if isinstance(v, str) or v is None else float(v)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        """Build a topology from a dictionary, e.g. a YAML config section.

        ``devices`` is either a list of device dictionaries (see :meth:`Device.from_dict`) or a
        generator: ``{"layout": "heterogeneous", "num_devices": 8, "seed": 0, ...}`` (keyword
        arguments of :func:`default_topology`) or ``{"layout": "homogeneous", ...}``
        (:func:`homogeneous_topology`). ``bs_power_w`` (W) may replace ``bs_power_dbm``. Numeric
        strings such as ``"100e6"`` are accepted. Unknown keys are errors.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a topology must be a mapping, got {type(data).__name__}")
        d = dict(data)
        if "bs_power_w" in d:
            if "bs_power_dbm" in d:
                raise ValueError("give bs_power_dbm or bs_power_w, not both")
            d["bs_power_dbm"] = w_to_dbm(d.pop("bs_power_w"), "bs_power_w")
        allowed = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ValueError(f"unknown topology field(s) {unknown}; allowed: "
                             f"{[*allowed, 'bs_power_w']}")
        if "devices" not in d:
            raise ValueError("a topology needs 'devices' (a list of devices or a generator "
                             "mapping with 'layout')")
        devices = d.pop("devices")
        if isinstance(devices, Mapping):
            gen = dict(devices)
            layout = _choice("devices.layout", gen.pop("layout", "heterogeneous"),
                             ("heterogeneous", "homogeneous"))
            factory = default_topology if layout == "heterogeneous" else homogeneous_topology
            return factory(**gen, **d)
        if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
            raise TypeError("devices must be a list of device mappings or a generator mapping, "
                            f"got {type(devices).__name__}")
        return cls(devices=tuple(Device.from_dict(x) for x in devices), **d)


def _range(name: str, value: Sequence[float], unit: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high) {unit}, got {value!r}")
    lo = _positive(f"{name}[0]", value[0], unit)
    hi = _positive(f"{name}[1]", value[1], unit)
    if hi < lo:
        raise ValueError(f"{name} must have low <= high, got {value!r}")
    return lo, hi


def default_topology(num_devices: int = 8, seed: int = 0, *,
                     distance_range_m: Sequence[float] = (50.0, 300.0),
                     compute_range_flops: Sequence[float] = (1e12, 10e12),
                     memory_bandwidth_bytes_s: float = ORIN_MEMORY_BANDWIDTH_BYTES_S,
                     tx_power_dbm: float = 23.0, **topology_kwargs: Any) -> Topology:
    """Heterogeneous cell: distances ~ U[50, 300] m and compute ~ U[1, 10] TFLOP/s per device.

    Both are drawn from a ``torch.Generator`` seeded with ``seed`` (distances first, then
    compute), so the same seed always gives the same cell. ``topology_kwargs`` go to
    :class:`Topology` (``bandwidth_hz``, ``fading``, ...).
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be an int >= 1, got {num_devices!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    d_lo, d_hi = _range("distance_range_m", distance_range_m, "(metres)")
    f_lo, f_hi = _range("compute_range_flops", compute_range_flops, "(FLOP/s)")
    g = torch.Generator().manual_seed(seed)
    dist = d_lo + (d_hi - d_lo) * torch.rand(num_devices, generator=g, dtype=torch.float64)
    comp = f_lo + (f_hi - f_lo) * torch.rand(num_devices, generator=g, dtype=torch.float64)
    devices = tuple(
        Device(distance_m=float(dist[i]), compute_flops=float(comp[i]),
               memory_bandwidth_bytes_s=memory_bandwidth_bytes_s, tx_power_dbm=tx_power_dbm)
        for i in range(num_devices)
    )
    return Topology(devices=devices, **topology_kwargs)


def homogeneous_topology(num_devices: int = 8, distance_m: float = 150.0,
                         compute_flops: float = ORIN_FLOPS, *,
                         memory_bandwidth_bytes_s: float = ORIN_MEMORY_BANDWIDTH_BYTES_S,
                         tx_power_dbm: float = 23.0, **topology_kwargs: Any) -> Topology:
    """K identical devices at ``distance_m`` m with ``compute_flops`` FLOP/s each.

    ``topology_kwargs`` go to :class:`Topology`.
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be an int >= 1, got {num_devices!r}")
    dev = Device(distance_m=distance_m, compute_flops=compute_flops,
                 memory_bandwidth_bytes_s=memory_bandwidth_bytes_s, tx_power_dbm=tx_power_dbm)
    return Topology(devices=(dev,) * num_devices, **topology_kwargs)
