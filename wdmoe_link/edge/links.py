"""Uplink (prompt) and downlink (generated text) airtime of the users of an edge node.

Two rate models over the same mean SNRs:

* ``"phy"``: :class:`phy.LinkAdaptation` on the shipped BLER curves: the MCS chosen at the mean
  SNR, whole LDPC code blocks, the expected number of Chase-HARQ transmissions; a user whose
  link meets the BLER target with no MCS cannot be served there. With ``fading="rayleigh"``
  the per-symbol Rayleigh curves are used (a request spans many coherence times).
* ``"shannon"``: the papers' ``bits / (beta B log2(1 + SNR))``; with Rayleigh fading the ergodic
  capacity ``E[log2(1 + SNR |h|^2)] = e^(1/SNR) E1(1/SNR) / ln 2``.

Both are linear in ``1 / beta``: a user's airtime on a share ``beta`` of the band is
``c / beta`` with ``c`` its airtime on the whole band. The min-max split that makes every
member of a batch finish its transfer at the same time gives ``beta_n = c_n / sum(c)`` and the
batch transfer time ``sum(c)`` (:func:`min_max_split`). The SNR of a share does not depend on
the share: the BS spreads its power over the whole band, and uplink power control keeps the
user's power spectral density (:class:`~wdmoe_link.edge.Request`).

Mean SNR (dB), distance d to the node, 3GPP macro path loss ``PL(d)``::

    DL: P_BS - 10 log10(B_DL) - PL(d) - (N0 + NF)
    UL: P_UE - 10 log10(B_ref) - PL(d) - (N0 + NF)          (N0 = -174 dBm/Hz)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

import phy

from ..topology import macro_path_loss_db
from .node import EdgeNode
from .request import Request

__all__ = ["BITS_PER_TOKEN", "LINK_MODELS", "EdgeLinks", "min_max_split"]

#: Bits per token id on the air (the goodput papers that follow "Beyond the Cloud").
BITS_PER_TOKEN: int = 32
LINK_MODELS: tuple[str, ...] = ("phy", "shannon")
_NOISE_PSD_DBM_HZ = -174.0


@functools.lru_cache(maxsize=16)
def _link_adaptation(channel: str, target_bler: float, max_transmissions: int
                     ) -> phy.LinkAdaptation:
    """One :class:`phy.LinkAdaptation` per configuration (its lookup grid is built once)."""
    return phy.LinkAdaptation(channel=channel, target_bler=target_bler,
                              max_transmissions=max_transmissions)


def min_max_split(airtime_full_band_s: Sequence[float]) -> tuple[list[float], float]:
    """Bandwidth shares that equalize the users' transfer times, and that common time (s).

    ``airtime_full_band_s[n]`` is user n's airtime on the whole band; its time on a share
    ``beta_n`` is ``c_n / beta_n``. Minimizing the largest time subject to ``sum(beta) <= 1``
    gives ``beta_n = c_n / sum(c)`` and the time ``sum(c)``.
    """
    c = [float(x) for x in airtime_full_band_s]
    if any(not (x >= 0.0) for x in c):
        raise ValueError("airtime_full_band_s must hold values >= 0 s")
    total = sum(c)
    if total == 0.0:
        return [0.0] * len(c), 0.0
    return [x / total for x in c], total


@dataclass(frozen=True)
class EdgeLinks:
    """How prompts and generated text cross the air.

    Attributes:
        model: ``"phy"`` (MCS, BLER curves, HARQ) or ``"shannon"`` (capacity).
        fading: ``"rayleigh"`` (per-symbol Rayleigh curves / ergodic capacity) or ``"none"``
            (AWGN).
        bits_per_token: bits per token id on the air.
        target_bler: BLER target of the link adaptation (``"phy"``).
        max_transmissions: Chase-HARQ transmissions per code block (``"phy"``), 1..16.
    """

    model: Literal["phy", "shannon"] = "phy"
    fading: Literal["rayleigh", "none"] = "rayleigh"
    bits_per_token: int = BITS_PER_TOKEN
    target_bler: float = 0.1
    max_transmissions: int = 4

    def __post_init__(self) -> None:
        if self.model not in LINK_MODELS:
            raise ValueError(f"model must be one of {list(LINK_MODELS)}, got {self.model!r}")
        if self.fading not in ("rayleigh", "none"):
            raise ValueError(f"fading must be 'rayleigh' or 'none', got {self.fading!r}")
        if isinstance(self.bits_per_token, bool) or not isinstance(self.bits_per_token, int) \
                or self.bits_per_token < 1:
            raise ValueError(f"bits_per_token must be an int >= 1, got {self.bits_per_token!r}")
        if self.model == "phy":  # LinkAdaptation validates the rest with named errors
            self._adaptation()

    def _adaptation(self) -> phy.LinkAdaptation:
        return _link_adaptation("rayleigh" if self.fading == "rayleigh" else "awgn",
                                float(self.target_bler), int(self.max_transmissions))

    # ---------------------------------------------------------------------------- SNR

    @staticmethod
    def snr_db(request: Request, node: EdgeNode, direction: Literal["ul", "dl"]) -> float:
        """Mean SNR (dB) of the user's link to the node (see the module docstring)."""
        fixed = request.snr_ul_db if direction == "ul" else request.snr_dl_db
        if fixed is not None:
            return fixed
        pl = float(macro_path_loss_db(torch.tensor(request.distance_m(node.position_m))))
        noise = _NOISE_PSD_DBM_HZ + node.noise_figure_db
        if direction == "dl":
            psd = node.bs_power_dbm - 10.0 * math.log10(node.dl_bandwidth_hz)
        else:
            psd = request.tx_power_dbm - 10.0 * math.log10(request.tx_reference_bandwidth_hz)
        return min(max(psd - pl - noise, phy.SNR_DB_MIN), phy.SNR_DB_MAX)

    # ---------------------------------------------------------------------------- airtime

    def spectral_efficiency(self, snr_db: float) -> float:
        """Capacity in bit/s/Hz at ``snr_db`` (``"shannon"``; :mod:`phy`'s formulas)."""
        if self.fading == "none":
            return float(phy.capacity_bits_per_use(float(snr_db)))
        return phy.ergodic_rayleigh_capacity_bits_per_use(snr_db)

    def full_band_airtime_s(self, bits: int, snr_db: float, bandwidth_hz: float) -> float:
        """Seconds to carry ``bits`` on the whole band ``bandwidth_hz`` at ``snr_db``;
        ``inf`` where ``"phy"`` has no MCS that meets the BLER target."""
        if bits <= 0:
            return 0.0
        if self.model == "shannon":
            return bits / (bandwidth_hz * self.spectral_efficiency(snr_db))
        la = self._adaptation()
        if not bool(la.meets_target(snr_db)):
            return math.inf
        return float(la.expected_airtime_s(bits, snr_db, bandwidth_hz))

    def airtimes(self, requests: Sequence[Request], node: EdgeNode
                 ) -> tuple[list[float], list[float]]:
        """Full-band uplink and downlink airtimes (s) of every request at ``node``."""
        if not requests:
            return [], []
        snr_ul = [self.snr_db(r, node, "ul") for r in requests]
        snr_dl = [self.snr_db(r, node, "dl") for r in requests]
        bits_ul = [r.prompt_tokens * self.bits_per_token for r in requests]
        bits_dl = [r.output_tokens * self.bits_per_token for r in requests]
        if self.model == "shannon":
            return ([self.full_band_airtime_s(b, s, node.ul_bandwidth_hz)
                     for b, s in zip(bits_ul, snr_ul, strict=True)],
                    [self.full_band_airtime_s(b, s, node.dl_bandwidth_hz)
                     for b, s in zip(bits_dl, snr_dl, strict=True)])
        la = self._adaptation()
        out = []
        for bits, snr, bw in ((bits_ul, snr_ul, node.ul_bandwidth_hz),
                              (bits_dl, snr_dl, node.dl_bandwidth_hz)):
            s = torch.tensor(snr, dtype=torch.float64)
            t = la.expected_airtime_s(torch.tensor(bits, dtype=torch.float64), s, bw)
            t = torch.where(la.meets_target(s), t, torch.full_like(t, math.inf))
            out.append(t.tolist())
        return out[0], out[1]
