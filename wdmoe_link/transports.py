"""Transports: how one payload of hidden-state rows crosses the air between the BS and a device.

Every payload is a real tensor ``x`` of shape ``[n, D]`` (``n`` token rows of ``D`` elements),
sent at one receive SNR (:math:`E_s/N_0`, dB) over one bandwidth (Hz). Three transports:

* :class:`IdealTransport`: the WDMoE assumption. The payload arrives exactly as sent and takes
  ``n D q / (B log2(1 + SNR))`` seconds (Shannon rate, ``q`` bits per element).
* :class:`DigitalTransport`: :class:`phy.DigitalLink` (CRC24B + 5G LDPC + QAM, Chase HARQ) over
  :class:`phy.AWGN`, with link adaptation: :func:`phy.select_mcs` picks the fastest MCS whose
  BLER at the payload's SNR meets a target (the most robust MCS when none does, and then
  losses happen). The tensor is serialized by :mod:`phy.payload` (bf16 / fp16 / int8 / int4).
  A row with any element in a failed code block is *lost* (``ok`` False) and holds zeros.
* :class:`AnalogTransport`: :class:`phy.AnalogLink` (each row power-normalized, two reals per
  complex channel use, MMSE equalization), optionally followed by a denoiser
  ``denoiser(x_hat, snr_db) -> x``.

The SNR the topology gives already contains the block fading of the current token, so the
links see an AWGN channel at that SNR. Airtime is always channel uses spent (all transmissions)
divided by the bandwidth: one complex channel use per second per hertz.

Every transport is also an airtime model (:class:`wdmoe_link.latency.AirtimeModel`):
``expected_airtime_s(rows, row_size, snr_db, bandwidth_hz)`` and its vectorized
``airtime_s_tensor(rows, row_size, snr_db, bandwidth_hz)`` give the *expected* seconds on air
of a payload ``[rows, row_size]``, which policies use to plan. The payload's shape is an
argument because formats with per-row side information (int8/int4 scales, odd ``D`` in
analog packing) cost more than their element count. For the digital transport the
expectation is :class:`phy.LinkAdaptation`'s on the shipped BLER table (MCS choice,
Chase-HARQ expected transmissions, vectorized on a 0.01 dB grid).

:func:`parse_transport` builds a transport from a string (``"ideal"``, ``"digital:int8"``,
``"analog"``, ``"analog+cddm"``, ...). Nothing here re-implements the PHY: the payload
codecs, MCS tables, BLER curves, LDPC chain and analog link are all :mod:`phy`'s; this module
only adds the bookkeeping the MoE system needs (rows, losses, airtime, expectations).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import phy
from phy import Registry, format_spec
from phy.checks import (
    check_bool,
    check_bounds,
    check_choice,
    check_count,
    check_number,
    check_positive_int,
    finite_rows,
)

from .checks import check_payload, check_payload_lengths, check_payload_snr
from .latency import ShannonAirtime

__all__ = [
    "DENOISERS",
    "TRANSPORTS",
    "AnalogConfig",
    "AnalogTransport",
    "Delivery",
    "DigitalConfig",
    "DigitalTransport",
    "IdealConfig",
    "IdealTransport",
    "LinkPlan",
    "Transport",
    "as_transport",
    "available_denoisers",
    "parse_transport",
    "register_denoiser",
]

_F64 = torch.float64
#: Information bits per LDPC code block.
DEFAULT_BLOCK_BITS = phy.DEFAULT_BLOCK_BITS

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


# --------------------------------------------------------------------------------------------
# delivery and base class


@dataclass
class Delivery:
    """What the receiver of one payload gets.

    Attributes:
        x_hat: received rows ``[n, D]`` float32. Rows that are not ``ok`` hold zeros, never
            decoded garbage; every value is finite.
        ok: bool ``[n]``, the row is usable (every element arrived).
        airtime_s: seconds on air actually spent, all transmissions included.
        bits: bits on air. Digital: information bits of every transmitted code block (payload
            plus padding, CRC excluded) times its transmissions; ideal: ``n D q``; analog: 0.
        channel_uses: complex channel uses actually spent (all transmissions).
        transmissions: digital: code-block transmissions in all (HARQ included); otherwise 1
            per non-empty payload.
        noise_var: analog only: expected squared error per element ``[n, D]`` before any
            denoiser; else ``None``.
        info: extra details (MCS, code blocks, block errors, ...).
    """

    x_hat: torch.Tensor
    ok: torch.Tensor
    airtime_s: float
    bits: int
    channel_uses: int
    transmissions: int
    noise_var: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_lost(self) -> int:
        """Rows that did not arrive."""
        return int((~self.ok).sum())



def _phy_snr(snr_db: float) -> float:
    # payload SNRs are clipped into the range phy's links accept (phy.SNR_DB_MIN/MAX)
    return min(max(snr_db, phy.SNR_DB_MIN), phy.SNR_DB_MAX)



def _empty_delivery(x: torch.Tensor) -> Delivery:
    """The :class:`Delivery` of a payload without rows: nothing on air."""
    return Delivery(x_hat=x.clone(), ok=torch.ones(0, dtype=torch.bool, device=x.device),
                    airtime_s=0.0, bits=0, channel_uses=0, transmissions=0)



class Transport(ABC):
    """One way of carrying a payload ``[n, D]`` over the air (also an airtime model).

    Attributes:
        name: spec string that :func:`parse_transport` turns back into an equal transport.
    """

    name: str = "transport"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def airtime_model(self) -> Any:
        """The airtime model to give :class:`~wdmoe_link.latency.DeviceCost` (``self``; an
        equivalent faster model where one exists)."""
        return self

    @abstractmethod
    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        """Expected seconds on air of one payload ``[rows, row_size]``.

        Args:
            rows: payload rows ``n`` (an int >= 0; 0 s for an empty payload).
            row_size: elements ``D`` per row (an int >= 1).
            snr_db: receive SNR in dB.
            bandwidth_hz: bandwidth in Hz (finite, >= 0; +inf s over 0 Hz).
        """

    def airtime_s_tensor(self, rows: torch.Tensor, row_size: int, snr_db: torch.Tensor,
                         bandwidth_hz: torch.Tensor) -> torch.Tensor:
        """Vectorized :meth:`expected_airtime_s` in s (float64; ``rows``, ``snr_db`` in dB and
        ``bandwidth_hz`` in Hz broadcast, ``row_size`` elements per row shared): +inf over
        0 Hz, 0 for an empty payload. This default loops over the elements."""
        d = check_positive_int("row_size", row_size)
        n, s, b = torch.broadcast_tensors(torch.as_tensor(rows, dtype=_F64),
                                          torch.as_tensor(snr_db, dtype=_F64),
                                          torch.as_tensor(bandwidth_hz, dtype=_F64))
        out = [0.0 if ni <= 0 else math.inf if bi <= 0 else
               self.expected_airtime_s(round(ni), d, si, bi)
               for ni, si, bi in zip(n.reshape(-1).tolist(), s.reshape(-1).tolist(),
                                     b.reshape(-1).tolist(), strict=True)]
        return torch.tensor(out, dtype=_F64).reshape(n.shape)

    def send(self, x: torch.Tensor, snr_db: float, bandwidth_hz: float, *,
             check_finite: bool = True) -> Delivery:
        """Carry the rows ``x`` ``[n, D]`` (finite, real) at ``snr_db`` dB over
        ``bandwidth_hz`` Hz.

        ``check_finite=False`` skips the scan for NaN/Inf values, for callers that have
        already zeroed non-finite rows (the split model guards every payload once per layer).
        """
        x, snr, bw = check_payload(x, snr_db, bandwidth_hz, check_finite)
        if x.shape[0] == 0:
            return _empty_delivery(x)
        return self._send(x, snr, bw)

    @abstractmethod
    def _send(self, x: torch.Tensor, snr_db: float, bandwidth_hz: float) -> Delivery:
        """:meth:`send` for a checked, non-empty float32 ``x``."""

    def send_many(self, xs: Sequence[torch.Tensor], snr_db: Sequence[float],
                  bandwidth_hz: Sequence[float], *, check_finite: bool = True
                  ) -> list[Delivery]:
        """Several payloads, in order: ``[send(x, s, b) for ...]`` with the same random draws
        in the same order (the default does exactly that); a transport may override it with
        a faster path of equal results, e.g. one call for all the devices of a layer."""
        check_payload_lengths(xs, snr_db, bandwidth_hz)
        return [self.send(x, s, b, check_finite=check_finite)
                for x, s, b in zip(xs, snr_db, bandwidth_hz, strict=True)]


# --------------------------------------------------------------------------------------------
# ideal


@dataclass(frozen=True)
class IdealConfig:
    """Settings of :class:`IdealTransport` (its defaults live here only)."""

    bits_per_element: int = 16


class IdealTransport(Transport):
    """Error-free payload at the Shannon rate (the WDMoE assumption).

    ``x_hat`` is ``x`` exactly (float32); airtime ``n D q / (B log2(1 + SNR))`` s from
    :class:`~wdmoe_link.latency.ShannonAirtime`.

    Args:
        bits_per_element: bits ``q`` per element (16: bf16).
    """

    def __init__(self, bits_per_element: int = IdealConfig.bits_per_element) -> None:
        self.shannon = ShannonAirtime(bits_per_element)
        self.bits_per_element = bits_per_element
        self.config = IdealConfig(bits_per_element)
        self.name = format_spec("ideal", self.config, positional=("bits_per_element",))

    def airtime_model(self) -> ShannonAirtime:
        """The :class:`ShannonAirtime` behind it (DeviceCost has a closed form for it)."""
        return self.shannon

    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        """``rows row_size q / (B log2(1 + SNR))`` seconds (``snr_db`` in dB, ``bandwidth_hz``
        in Hz)."""
        return self.shannon.expected_airtime_s(rows, row_size, snr_db, bandwidth_hz)

    def airtime_s_tensor(self, rows: torch.Tensor, row_size: int, snr_db: torch.Tensor,
                         bandwidth_hz: torch.Tensor) -> torch.Tensor:
        """Vectorized :meth:`expected_airtime_s` in s (float64, broadcast)."""
        return self.shannon.airtime_s_tensor(rows, row_size, snr_db, bandwidth_hz)

    def _delivery(self, x: torch.Tensor, airtime_s: float, bandwidth_hz: float) -> Delivery:
        """``x`` delivered exactly after ``airtime_s`` s on ``bandwidth_hz`` Hz."""
        # Channel uses at the Shannon rate: airtime times the symbol rate B, whole symbols.
        return Delivery(x_hat=x.clone(), ok=torch.ones(x.shape[0], dtype=torch.bool,
                                                       device=x.device),
                        airtime_s=airtime_s, bits=x.numel() * self.bits_per_element,
                        channel_uses=math.ceil(airtime_s * bandwidth_hz - 1e-9),
                        transmissions=1)

    def _send(self, x: torch.Tensor, snr_db: float, bandwidth_hz: float) -> Delivery:
        airtime = self.shannon.expected_airtime_s(x.shape[0], x.shape[1], snr_db, bandwidth_hz)
        return self._delivery(x, airtime, bandwidth_hz)


# --------------------------------------------------------------------------------------------
# digital


#: The expected cost of a digital payload at one SNR (:class:`phy.LinkPlan`).
LinkPlan = phy.LinkPlan


@dataclass(frozen=True)
class DigitalConfig:
    """Settings of :class:`DigitalTransport` (its defaults live here only; see its Args).

    Raises:
        ValueError: a value outside its range (the message names the field).
        TypeError: ``decoded`` is not a bool.
    """

    dtype: str = "bf16"
    target_bler: float = 0.1
    max_transmissions: int = 4
    table: str = "awgn"
    mcs_table: str = "qam64"
    block_bits: int = DEFAULT_BLOCK_BITS
    group_size: int | None = None
    num_iter: int = 20
    decoded: bool = False

    def __post_init__(self) -> None:
        check_bool("decoded", self.decoded)
        check_choice("dtype", self.dtype, phy.PAYLOAD_DTYPES)
        object.__setattr__(self, "target_bler", check_number(
            "target_bler", self.target_bler, low=0.0, high=1.0, low_open=True, high_open=True))
        check_positive_int("max_transmissions", self.max_transmissions, maximum=16)
        check_choice("mcs_table", self.mcs_table, ("qam64", "qam256"))
        check_positive_int("block_bits", self.block_bits)
        if self.group_size is not None:
            check_positive_int("group_size", self.group_size)
        check_positive_int("num_iter", self.num_iter)


class DigitalTransport(Transport):
    """Quantized or 16-bit payloads over :class:`phy.DigitalLink` with link adaptation.

    For each payload, :func:`phy.select_mcs` picks at the payload's SNR the MCS with the highest
    spectral efficiency whose BLER meets ``target_bler`` (or, when none does, the most robust
    MCS of the table: the payload is sent anyway and losses happen). The tensor goes through
    :meth:`phy.DigitalLink.send_tensor` over :class:`phy.AWGN` with up to ``max_transmissions``
    Chase-HARQ transmissions per code block. A row with any lost element is not ``ok`` and is
    zeroed.

    By default the link is :class:`phy.AbstractDigitalLink`: each code block's CRC outcome is
    drawn from the BLER curve of its MCS at its SNR (what system-level simulators do), so a
    2048-wide hidden state costs a table lookup instead of LDPC decoding. ``decoded=True``
    (spec ``"digital:<dtype>:decoded"``) runs the full chain (:class:`phy.DigitalLink`: QAM,
    5G LDPC decoding, CRC) for validation.

    Args:
        dtype: payload format, ``"bf16"``, ``"fp16"``, ``"int8"`` or ``"int4"``
            (:mod:`phy.payload`; integer formats carry one bf16 scale per row by default).
        target_bler: BLER target of the link adaptation, in (0, 1).
        max_transmissions: transmissions per code block (1: no HARQ), 1..16.
        table: channel name of the BLER curves used for link adaptation (``"awgn"``).
        mcs_table: ``"qam64"`` or ``"qam256"`` (TS 38.214 tables).
        block_bits: information bits per LDPC code block (the BLER table's 1024).
        group_size: elements per quantization vector for int formats (``None``: one row).
        bler_table: BLER curves (default: the table shipped with :mod:`phy`).
        num_iter: LDPC decoder iterations (decoded links).
        decoded: decode every block (``True``) or draw CRC outcomes from the BLER curves
            (``False``, default).
    """

    def __init__(self, dtype: str = DigitalConfig.dtype,
                 target_bler: float = DigitalConfig.target_bler,
                 max_transmissions: int = DigitalConfig.max_transmissions,
                 table: str = DigitalConfig.table, mcs_table: str = DigitalConfig.mcs_table,
                 block_bits: int = DigitalConfig.block_bits,
                 group_size: int | None = DigitalConfig.group_size,
                 bler_table: phy.BlerTable | None = None,
                 num_iter: int = DigitalConfig.num_iter,
                 decoded: bool = DigitalConfig.decoded) -> None:
        cfg = DigitalConfig(dtype, target_bler, max_transmissions, table, mcs_table, block_bits,
                            group_size, num_iter, decoded)
        self.config = cfg
        self.dtype = cfg.dtype
        self.target_bler = cfg.target_bler
        self.max_transmissions = cfg.max_transmissions
        self.table = cfg.table
        self.mcs_table = cfg.mcs_table
        self.block_bits = cfg.block_bits
        self.group_size = cfg.group_size
        self.num_iter = cfg.num_iter
        self.decoded = cfg.decoded
        bt = phy.load_bler_table() if bler_table is None else bler_table
        if cfg.table not in bt.channels:
            raise ValueError(f"table must be a channel of the BLER table {bt.channels}, got "
                             f"{cfg.table!r}")
        #: MCS choice and expected cost (phy's link adaptation on the BLER table).
        self.adaptation = phy.LinkAdaptation(cfg.table, cfg.mcs_table, cfg.target_bler,
                                             cfg.block_bits, cfg.max_transmissions,
                                             bler_table=bt)
        self.bler_table = self.adaptation.bler_table
        self._links: dict[tuple[str, int | None, float], phy.DigitalLink] = {}
        self.name = format_spec("digital", cfg, positional=("dtype",), always=("dtype",),
                                flags=("decoded",))

    # ---- links and link adaptation ---------------------------------------------------------

    def link(self, mcs: phy.MCS) -> phy.DigitalLink:
        """The link of ``mcs`` (built once, then cached): :class:`phy.AbstractDigitalLink`, or
        :class:`phy.DigitalLink` when :attr:`decoded`."""
        key = (mcs.table, mcs.index, mcs.code_rate)
        link = self._links.get(key)
        if link is None:
            if self.decoded:
                link = phy.DigitalLink(phy.AWGN(), mcs, block_bits=self.block_bits,
                                       num_iter=self.num_iter,
                                       max_transmissions=self.max_transmissions)
            else:
                link = phy.AbstractDigitalLink(phy.AWGN(), mcs, block_bits=self.block_bits,
                                               max_transmissions=self.max_transmissions,
                                               bler_table=self.bler_table)
            self._links[key] = link
        return link

    def select(self, snr_db: float) -> tuple[phy.MCS, bool]:
        """``(mcs, meets_target)``: :func:`phy.select_mcs` at ``snr_db``, or the most robust
        MCS (``meets_target`` False) when no MCS meets the target."""
        return self.adaptation.select(_phy_snr(check_payload_snr(snr_db)))

    def plan(self, snr_db: float) -> LinkPlan:
        """Link adaptation and its expected cost at ``snr_db`` (dB)."""
        return self.adaptation.plan(_phy_snr(check_payload_snr(snr_db)))

    def _group(self, row_size: int) -> int | None:
        """Elements per quantization vector of a payload of ``row_size``-element rows (what
        :meth:`phy.DigitalLink.send_tensor` uses: ``group_size``, else one vector per row)."""
        if self.dtype in ("bf16", "fp16"):
            return None
        return self.group_size or row_size

    def payload_bits(self, rows: int, row_size: int) -> int:
        """Bits of the serialized payload ``[rows, row_size]`` (scales included)."""
        n = check_count("rows", rows, what="payload rows")
        d = check_positive_int("row_size", row_size)
        return int(phy.payload_bits(n * d, self.dtype, self._group(d)))

    def num_blocks(self, rows: int, row_size: int) -> int:
        """Code blocks of a payload ``[rows, row_size]``."""
        return math.ceil(self.payload_bits(rows, row_size) / self.block_bits)

    # ---- airtime ---------------------------------------------------------------------------

    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        """``blocks * uses_per_block(MCS) * E[transmissions] / B`` seconds of a payload
        ``[rows, row_size]`` (elements), MCS by :func:`phy.select_mcs` at ``snr_db`` dB,
        ``B = bandwidth_hz`` Hz."""
        n = check_count("rows", rows, what="payload rows")
        d = check_positive_int("row_size", row_size)
        if n == 0:
            return 0.0
        b = check_number("bandwidth_hz", bandwidth_hz, low=0.0, unit="Hz")
        if b == 0:
            return math.inf
        p = self.plan(snr_db)
        uses = self.num_blocks(n, d) * p.channel_uses_per_block * p.expected_transmissions
        return uses / b

    def meets_target(self, snr_db: float | torch.Tensor) -> bool | torch.Tensor:
        """Whether link adaptation finds an MCS meeting the BLER target at ``snr_db`` (on the
        0.01 dB grid, SNR rounded down; a bool for a float, else a bool tensor)."""
        return self.adaptation.meets_target(snr_db)

    def airtime_s_tensor(self, rows: torch.Tensor, row_size: int, snr_db: torch.Tensor,
                         bandwidth_hz: torch.Tensor) -> torch.Tensor:
        """Vectorized expected airtime in s (float64; ``rows``, ``snr_db`` in dB and
        ``bandwidth_hz`` in Hz broadcast, ``row_size`` elements per row shared).

        The SNR is rounded *down* to a 0.01 dB grid (so the estimate errs on the slow side);
        between -40 and 80 dB it matches :meth:`expected_airtime_s` at grid points.
        """
        blocks = self.blocks_tensor(rows, row_size)
        t = blocks * self.block_airtime_s_tensor(snr_db, bandwidth_hz)
        return torch.where(blocks > 0, t, torch.zeros_like(t))

    def blocks_tensor(self, rows: torch.Tensor, row_size: int) -> torch.Tensor:
        """Code blocks of payloads ``[rows, row_size]`` (float64, ``rows`` a tensor of row
        counts >= 0; scales included)."""
        d = check_positive_int("row_size", row_size)
        n = torch.as_tensor(rows, dtype=_F64)
        check_bounds("rows", n, low=0.0, low_inclusive=True, allowed=">= 0 (payload rows)")
        return torch.ceil(phy.payload_bits(n * d, self.dtype, self._group(d)) / self.block_bits)

    def block_airtime_s_tensor(self, snr_db: torch.Tensor, bandwidth_hz: torch.Tensor
                               ) -> torch.Tensor:
        """Expected seconds on air of one code block, HARQ included (float64; ``snr_db`` in dB
        rounded down onto the 0.01 dB grid, ``bandwidth_hz`` in Hz, broadcast; +inf over 0
        Hz): the factor of :meth:`airtime_s_tensor` that depends on the link alone."""
        return self.adaptation.expected_airtime_s(self.block_bits, snr_db, bandwidth_hz)

    # ---- sending ---------------------------------------------------------------------------

    def send_many(self, xs: Sequence[torch.Tensor], snr_db: Sequence[float],
                  bandwidth_hz: Sequence[float], *, check_finite: bool = True
                  ) -> list[Delivery]:
        """Several payloads (e.g. all devices of a layer) with the CRC outcomes of all their
        code blocks drawn at once (:func:`phy.send_tensors`): the same distribution as
        :meth:`send` after :meth:`send`, not the same values for a seed (identical when no
        block fails). Decoded links send payload after payload."""
        check_payload_lengths(xs, snr_db, bandwidth_hz)
        if self.decoded:
            return super().send_many(xs, snr_db, bandwidth_hz, check_finite=check_finite)
        checked = [check_payload(x, s, b, check_finite)
                   for x, s, b in zip(xs, snr_db, bandwidth_hz, strict=True)]
        out: list[Delivery | None] = [None] * len(checked)
        busy = [i for i, (x, _, _) in enumerate(checked) if x.shape[0] > 0]
        for i, (x, _, _) in enumerate(checked):
            if x.shape[0] == 0:
                out[i] = _empty_delivery(x)
        snrs = [_phy_snr(checked[i][1]) for i in busy]
        picks = [self.select(s) for s in snrs]
        links = [self.link(mcs) for mcs, _ in picks]
        results = phy.send_tensors(links, [checked[i][0] for i in busy], snrs, self.dtype,
                                   group_size=self.group_size)
        # every payload's airtime in one call (the bandwidths were checked above)
        airtimes = phy.airtime_s(
            torch.tensor([float(r.channel_uses) for r in results], dtype=torch.float64),
            torch.tensor([checked[i][2] for i in busy], dtype=torch.float64)).tolist()
        for i, (mcs, meets), link, r, air in zip(busy, picks, links, results, airtimes,
                                                 strict=True):
            out[i] = self._delivery(r, link, mcs, meets, air)
        return out  # type: ignore[return-value]

    def _send(self, x: torch.Tensor, snr_db: float, bandwidth_hz: float) -> Delivery:
        s = _phy_snr(snr_db)
        mcs, meets = self.select(s)
        link = self.link(mcs)
        r = link.send_tensor(x, s, dtype=self.dtype, group_size=self.group_size)
        return self._delivery(r, link, mcs, meets,
                              float(phy.airtime_s(r.channel_uses, bandwidth_hz)))

    @staticmethod
    def _delivery(r: phy.TensorResult, link: phy.DigitalLink, mcs: phy.MCS, meets: bool,
                  airtime_s: float) -> Delivery:
        """The :class:`Delivery` of a link's :class:`phy.TensorResult` (a row with any lost
        element is not ``ok`` and holds zeros; ``t_hat`` is finite by construction) that
        took ``airtime_s`` seconds on air."""
        if r.num_lost:
            ok = ~r.lost.any(dim=-1)
            x_hat = torch.where(ok[:, None], r.t_hat, torch.zeros_like(r.t_hat))
        else:
            ok = torch.ones(r.t_hat.shape[0], dtype=torch.bool, device=r.t_hat.device)
            x_hat = r.t_hat
        # block outcomes are small CPU tensors: NumPy reduces them without torch's dispatch
        block_ok = r.block_ok.numpy()
        transmissions = int(r.transmissions.numpy().sum())
        return Delivery(
            x_hat=x_hat,
            ok=ok,
            airtime_s=airtime_s,
            bits=transmissions * link.block_bits,
            channel_uses=int(r.channel_uses),
            transmissions=transmissions,
            info={"mcs": mcs.name, "mcs_index": mcs.index, "meets_target": meets,
                  "blocks": r.num_blocks,
                  "block_errors": int(block_ok.size - np.count_nonzero(block_ok)),
                  "payload_bits": r.payload_bits},
        )


# --------------------------------------------------------------------------------------------
# analog


@dataclass(frozen=True)
class AnalogConfig:
    """Settings of :class:`AnalogTransport` (its defaults live here only)."""

    power_norm: str = "sample"


class AnalogTransport(Transport):
    """Uncoded analog rows over :class:`phy.AnalogLink` (AWGN), optionally denoised.

    Each row is normalized to unit symbol energy (its scale travels as error-free side
    information), packed two reals per complex channel use and MMSE-equalized: a row of ``D``
    elements takes ``ceil(D / 2)`` channel uses; airtime ``n ceil(D / 2) / B`` seconds. Rows
    always arrive (``ok`` True) with an error of variance ``noise_var`` per element (for AWGN:
    the row's mean power times ``N0 / (1 + N0)``).

    Args:
        denoiser: optional ``denoiser(x_hat [n, D], snr_db) -> x [n, D]`` applied at the
            receiver (e.g. a 1-D CDDM trained on the model's hidden states).
        denoiser_name: label of the denoiser in :attr:`name` (``"analog+<denoiser_name>"``).
        power_norm: ``"sample"`` (per row, default) or ``"batch"`` (one scale per payload).
    """

    def __init__(self, denoiser: Denoiser | None = None, denoiser_name: str | None = None,
                 power_norm: str = AnalogConfig.power_norm) -> None:
        if denoiser is not None and not callable(denoiser):
            raise TypeError(f"denoiser must be callable (x_hat, snr_db) -> x, got "
                            f"{type(denoiser).__name__}")
        if power_norm not in ("sample", "batch"):
            raise ValueError(f"power_norm must be 'sample' or 'batch', got {power_norm!r}")
        self.denoiser = denoiser
        self.power_norm = power_norm
        self.config = AnalogConfig(power_norm)
        self._link = phy.AnalogLink(phy.AWGN(), power_norm=power_norm)
        name = "analog"
        if denoiser is not None:
            name += "+" + (denoiser_name or getattr(denoiser, "name", None) or "denoiser")
        self.name = format_spec(name, self.config)

    def expected_airtime_s(self, rows: int, row_size: int, snr_db: float,
                           bandwidth_hz: float) -> float:
        """``rows ceil(row_size / 2) / B`` seconds (``B = bandwidth_hz`` Hz); the SNR does not
        matter."""
        n = check_count("rows", rows, what="payload rows")
        d = check_positive_int("row_size", row_size)
        b = check_number("bandwidth_hz", bandwidth_hz, low=0.0, unit="Hz")
        return float(self.airtime_s_tensor(torch.tensor(float(n)), d, torch.tensor(0.0),
                                           torch.tensor(b)))

    def airtime_s_tensor(self, rows: torch.Tensor, row_size: int, snr_db: torch.Tensor,
                         bandwidth_hz: torch.Tensor) -> torch.Tensor:
        """Vectorized :meth:`expected_airtime_s` in s (float64; ``rows``, ``snr_db`` in dB and
        ``bandwidth_hz`` in Hz broadcast, ``row_size`` elements per row shared)."""
        d = check_positive_int("row_size", row_size)
        n, _, b = torch.broadcast_tensors(torch.as_tensor(rows, dtype=_F64),
                                          torch.as_tensor(snr_db, dtype=_F64),
                                          torch.as_tensor(bandwidth_hz, dtype=_F64))
        t = torch.ceil(n) * phy.analog_channel_uses(d) / b.clamp_min(1e-300)
        t = torch.where(b > 0, t, torch.full_like(t, math.inf))
        return torch.where(n > 0, t, torch.zeros_like(t))

    def _send(self, x: torch.Tensor, snr_db: float, bandwidth_hz: float) -> Delivery:
        s = _phy_snr(snr_db)
        r = self._link.send(x, s)
        x_hat = r.z_hat
        if self.denoiser is not None:
            # a denoiser that takes the link result sees the power-normalized signal and the
            # per-row scale (side information the receiver has); otherwise only x_hat
            use_result = hasattr(self.denoiser, "denoise_result")
            x_hat = (self.denoiser.denoise_result(r, s) if use_result
                     else self.denoiser(x_hat, s))
            if not isinstance(x_hat, torch.Tensor) or tuple(x_hat.shape) != tuple(x.shape):
                raise ValueError(f"denoiser must return a tensor of shape {tuple(x.shape)}, got "
                                 f"{getattr(x_hat, 'shape', type(x_hat).__name__)}")
            x_hat = x_hat.to(torch.float32)
        ok = finite_rows(x_hat)
        x_hat = torch.where(ok[:, None], x_hat, torch.zeros_like(x_hat))
        uses = r.channel_uses * x.shape[0]
        return Delivery(x_hat=x_hat, ok=ok, airtime_s=float(phy.airtime_s(uses, bandwidth_hz)),
                        bits=0, channel_uses=uses, transmissions=1, noise_var=r.noise_var)


# --------------------------------------------------------------------------------------------
# parsing

#: Receiver denoisers by name, used as ``"analog+<name>"``.
DENOISERS: Registry[Denoiser] = Registry("denoiser")


def register_denoiser(name: str, factory: Callable[..., Denoiser], *,
                      overwrite: bool = False) -> None:
    """Make ``"analog+<name>"`` available to :func:`parse_transport`.

    ``factory(**options)`` must return a callable ``(x_hat [n, D], snr_db) -> x [n, D]``;
    ``"analog+name:key=value"`` passes ``key=value`` to it.
    """
    DENOISERS.register(name, factory, overwrite=overwrite)


def available_denoisers() -> list[str]:
    """Denoiser names usable as ``"analog+<name>"``, sorted."""
    return DENOISERS.available()


def _digital(*args: Any, **kwargs: Any) -> DigitalTransport:
    if args and args[0] not in phy.PAYLOAD_DTYPES:
        raise ValueError(f"unknown digital payload format {args[0]!r}; allowed: "
                         f"{list(phy.PAYLOAD_DTYPES)}")
    if len(args) >= 2 and args[1] == "decoded":  # the flag "digital:<dtype>:decoded"
        args = (args[0], *args[2:])
        kwargs["decoded"] = True
    if len(args) > 1:
        raise ValueError(f"digital takes one positional field (the payload format), got "
                         f"{list(args)}")
    return DigitalTransport(*args, **kwargs)


def _analog(*, power_norm: str = AnalogConfig.power_norm) -> AnalogTransport:
    return AnalogTransport(power_norm=power_norm)


def _analog_denoised(name: str, *, denoiser: Denoiser | None = None,
                     power_norm: str = AnalogConfig.power_norm, **options: Any
                     ) -> AnalogTransport:
    if denoiser is None:
        if name not in DENOISERS:
            raise ValueError(
                f"'analog+{name}' needs a denoiser {name!r}: pass denoiser=... to "
                f"parse_transport or register one with register_denoiser({name!r}, "
                f"factory); registered: {available_denoisers()}")
        denoiser = DENOISERS.build({"name": name, **options})
    elif options:
        raise ValueError(f"options {sorted(options)} cannot be applied to a denoiser passed "
                         "directly")
    return AnalogTransport(denoiser=denoiser, denoiser_name=name, power_norm=power_norm)


#: Transports by kind (:mod:`phy.registry` specs): ``ideal``, ``digital``, ``analog`` and the
#: family ``analog+<denoiser>``.
TRANSPORTS: Registry[Transport] = Registry("transport")
TRANSPORTS.register("ideal", IdealTransport)
TRANSPORTS.register("digital", _digital)
TRANSPORTS.register("analog", _analog)
TRANSPORTS.register("analog+", _analog_denoised)


def parse_transport(spec: str | Transport, *, denoiser: Denoiser | None = None) -> Transport:
    """Build a transport from a spec string (a :class:`Transport` is returned unchanged).

    Specs (fields separated by ``:``, options as ``key=value``):

    * ``"ideal"``, ``"ideal:8"`` (bits per element);
    * ``"digital"`` (bf16), ``"digital:int8"``, ``"digital:bf16:target_bler=0.01"``, options
      ``target_bler``, ``max_transmissions``, ``table``, ``mcs_table``, ``block_bits``,
      ``group_size``, ``num_iter``; CRC outcomes from the BLER curves, or
      ``"digital:bf16:decoded"`` for full LDPC decoding;
    * ``"analog"``, ``"analog:power_norm=batch"``;
    * ``"analog+<name>"`` (e.g. ``"analog+cddm"``): analog followed by ``denoiser`` if given,
      else by the denoiser registered under ``name`` (:func:`register_denoiser`; its options
      come from the ``key=value`` fields).

    A transport's :attr:`~Transport.name` is its canonical spec and parses back to an equal
    transport.

    Raises:
        ValueError: unknown kind, dtype or option, or a denoiser that is neither given nor
            registered.
    """
    if isinstance(spec, Transport):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"transport spec must be a non-empty string such as 'digital:bf16', "
                         f"got {spec!r}; known kinds: {TRANSPORTS.available()}")
    kind = spec.split(":", 1)[0].strip().lower()
    extra = {"denoiser": denoiser} if denoiser is not None and kind.startswith("analog+") \
        else {}
    return TRANSPORTS.build(spec, **extra)


def as_transport(spec: str | Transport) -> Transport:
    """:func:`parse_transport` for a string, the object itself for a :class:`Transport`."""
    if isinstance(spec, Transport):
        return spec
    if isinstance(spec, str):
        return parse_transport(spec)
    raise TypeError(f"a transport must be a Transport or a spec string, got "
                    f"{type(spec).__name__} {spec!r}")
