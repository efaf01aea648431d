"""Flat channels with one call shape: ``channel(x, snr_db) -> ChannelOutput(y, h, no)``.

Conventions (shared by every channel in :mod:`phy`):

* ``x`` is a complex tensor ``[..., n]`` of channel symbols with unit average energy
  (:math:`E_s = 1`). The last axis is the time (symbol) axis; leading axes are independent
  transmissions (batch, streams, ...).
* ``snr_db`` is :math:`E_s/N_0` in dB, a scalar or one value per example (shape ``[B]`` where
  ``B = x.shape[0]``).
* ``no`` is the complex noise variance :math:`N_0 = 10^{-\\mathrm{SNR}/10}` per complex symbol
  (``no/2`` per real dimension). It is returned with shape ``[]`` or ``[B, 1, ..., 1]`` so that it
  broadcasts against ``y``.
* ``h`` is the complex channel gain of each received symbol, same shape as ``y``; the receiver is
  assumed to know it (perfect CSI) unless a channel says otherwise.

The random draws come from Sionna's blocks and therefore from Sionna's generators:
seed them with :func:`phy.set_seed` (``sionna.phy.config.seed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from sionna.phy import Block
from sionna.phy import config as sionna_config
from sionna.phy.channel import AWGN as _SionnaAWGN
from sionna.phy.channel import ApplyFlatFadingChannel, GenerateFlatFadingChannel

from .checks import as_snr_db, check_complex, check_positive_int

__all__ = [
    "AWGN",
    "Channel",
    "ChannelOutput",
    "RayleighFading",
    "no_to_snr_db",
    "snr_db_to_no",
]


@dataclass(frozen=True)
class ChannelOutput:
    """What a receiver observes after a channel.

    Attributes:
        y: received complex symbols, same shape as the channel input ``[..., n]``.
        h: complex channel gain per received symbol, same shape as ``y`` (possibly an expanded
            view; call ``.contiguous()`` before writing into it).
        no: complex noise variance :math:`N_0` (linear), broadcastable to ``y``: shape ``[]``
            or ``[B, 1, ..., 1]``. For channels with ``equalized = True`` (``y`` already
            equalized, ``h`` ones) it is the post-equalization noise variance per symbol, shape
            of ``y``.
    """

    y: torch.Tensor
    h: torch.Tensor
    no: torch.Tensor


def snr_db_to_no(snr_db: float | torch.Tensor) -> torch.Tensor:
    """Complex noise variance :math:`N_0` of unit-energy symbols at Es/N0 = ``snr_db`` (dB)."""
    return torch.pow(10.0, -torch.as_tensor(snr_db, dtype=torch.float32) / 10.0)


def no_to_snr_db(no: float | torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`snr_db_to_no`: :math:`E_s/N_0` in dB for unit-energy symbols."""
    return -10.0 * torch.log10(torch.as_tensor(no, dtype=torch.float32))


class Channel(Block):
    """Base class: validates the input, turns ``snr_db`` into ``no`` and calls :meth:`propagate`.

    Subclasses implement ``propagate(x, no) -> (y, h)``; a channel that equalizes inside
    (``equalized = True``) returns ``(y, h, no_eff)`` instead, and ``no_eff`` (shape of ``y``) is
    returned as ``ChannelOutput.no``. They are Sionna
    :class:`~sionna.phy.Block` objects, so ``precision=`` and ``device=`` work as in Sionna
    (the device is fixed at construction).
    """

    #: True if ``y`` is already equalized by the channel's own receiver (OFDM receive paths).
    equalized: bool = False

    def call(self, x: torch.Tensor, snr_db: float | torch.Tensor) -> ChannelOutput:
        check_complex("x", x)
        snr = as_snr_db(snr_db, tuple(x.shape), device=self.device)
        no = snr_db_to_no(snr).to(device=self.device, dtype=self.dtype)
        if no.dim() == 1:
            no = no.reshape([no.shape[0]] + [1] * (x.dim() - 1))
            if x.dim() == 1:
                raise ValueError(
                    "snr_db with one value per example needs x with a batch axis [B, ..., n], "
                    f"got x of shape {tuple(x.shape)}"
                )
        out = self.propagate(x, no)
        if len(out) == 3:
            # Channels that equalize inside (``equalized = True``) report no_eff per symbol.
            y, h, no = out
        else:
            y, h = out
        return ChannelOutput(y=y, h=h, no=no)

    def propagate(self, x: torch.Tensor, no: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, ...]:
        """Return ``(y, h)``, or ``(y, h, no_out)`` where ``no_out`` replaces ``no``."""
        raise NotImplementedError


class AWGN(Channel):
    """Additive white Gaussian noise: :math:`y = x + n`, :math:`n \\sim \\mathcal{CN}(0, N_0)`.

    Uses :class:`sionna.phy.channel.AWGN`. ``h`` is all ones.

    Example:
        >>> ch = AWGN()
        >>> out = ch(x, snr_db=10.0)   # x: complex [B, n], unit energy
    """

    def __init__(self, *, precision: str | None = None, device: str | None = None) -> None:
        super().__init__(precision=precision, device=device)
        self._awgn = _SionnaAWGN(precision=self.precision, device=self.device)

    def propagate(self, x: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self._awgn(x, no)
        h = torch.ones((), dtype=y.dtype, device=y.device).expand(y.shape)
        return y, h

    def __repr__(self) -> str:
        return "AWGN()"


Coherence = Literal["symbol", "frame"] | int


class RayleighFading(Channel):
    """Flat Rayleigh fading, :math:`y = h x + n`, :math:`h \\sim \\mathcal{CN}(0, 1)`.

    Args:
        coherence: how long one gain lasts along the symbol axis (the last axis of ``x``):
            ``"symbol"`` draws an independent gain for every symbol (fast fading, ideal
            interleaving); an int ``L`` keeps the gain constant over blocks of ``L`` consecutive
            symbols (block fading; the last block may be shorter); ``"frame"`` keeps one gain
            for the whole last axis (slow fading per transmission, as in the deep-JSCC
            literature).

    The gains are drawn with :class:`sionna.phy.channel.GenerateFlatFadingChannel` and applied,
    with the noise, by :class:`sionna.phy.channel.ApplyFlatFadingChannel` (SISO).
    Average received :math:`E_s/N_0` equals ``snr_db`` because :math:`E|h|^2 = 1`.
    """

    def __init__(self, coherence: Coherence = "symbol", *, precision: str | None = None,
                 device: str | None = None) -> None:
        super().__init__(precision=precision, device=device)
        if isinstance(coherence, str):
            if coherence not in ("symbol", "frame"):
                raise ValueError(
                    f"coherence must be 'symbol', 'frame' or a positive int (symbols per "
                    f"block), got {coherence!r}"
                )
        else:
            check_positive_int("coherence", coherence)
        self.coherence = coherence
        self._gen_fading = GenerateFlatFadingChannel(1, 1, precision=self.precision,
                                                     device=self.device)
        self._apply_fading = ApplyFlatFadingChannel(precision=self.precision, device=self.device)

    def draw_h(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Draw channel gains for received symbols of ``shape`` (complex, same shape)."""
        *lead, n = shape
        lead_numel = 1
        for s in lead:
            lead_numel *= s
        if self.coherence == "symbol":
            block = 1
        elif self.coherence == "frame":
            block = n
        else:
            block = int(self.coherence)
        num_blocks = -(-n // block)
        h = self._gen_fading(lead_numel * num_blocks).reshape(*lead, num_blocks)
        if block > 1:
            h = h.repeat_interleave(block, dim=-1)[..., :n]
        return h

    def propagate(self, x: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.draw_h(tuple(x.shape))
        # SISO use of Sionna's flat-fading block: every symbol is one 1x1 "MIMO" channel.
        y = self._apply_fading(x.unsqueeze(-1), h[..., None, None], no.unsqueeze(-1)).squeeze(-1)
        return y, h

    def __repr__(self) -> str:
        return f"RayleighFading(coherence={self.coherence!r})"


class ImperfectCSI(Channel):
    """A channel whose receiver knows ``h`` only up to an estimation error.

    ``y`` comes from the inner channel with the true gains; the :class:`ChannelOutput` carries
    the estimate :math:`\\hat h = h + e`, :math:`e \\sim \\mathcal{CN}(0, \\sigma_h^2)` drawn
    independently per symbol (from Sionna's generator, so :func:`phy.set_seed` repeats it),
    which is what every equalizer after it uses. ``error_std`` is :math:`\\sigma_h`, the
    standard deviation of the complex error (:math:`E|e|^2 = \\sigma_h^2`; the gains have
    :math:`E|h|^2 = 1`). Channels that equalize inside (OFDM) have their own estimators and
    are refused.

    Example:
        >>> ch = ImperfectCSI(RayleighFading("symbol"), error_std=0.1)
    """

    def __init__(self, channel: Channel, error_std: float, *, precision: str | None = None,
                 device: str | None = None) -> None:
        if not isinstance(channel, Channel):
            raise TypeError(f"channel must be a phy channel, got {type(channel).__name__}")
        if getattr(channel, "equalized", False):
            raise ValueError(f"{channel!r} equalizes inside (its own channel estimator); "
                             "ImperfectCSI applies to flat channels (AWGN, RayleighFading)")
        if isinstance(error_std, bool) or not isinstance(error_std, (int, float)) \
                or not math.isfinite(error_std) or error_std < 0:
            raise ValueError(f"error_std must be a finite number >= 0, got {error_std!r}")
        super().__init__(precision=precision, device=device or channel.device)
        self.channel = channel
        self.error_std = float(error_std)

    def propagate(self, x: torch.Tensor, no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.channel.propagate(x, no)
        if self.error_std == 0:
            return y, h
        h = h.expand(y.shape)
        gen = sionna_config.torch_rng(self.device)
        e = torch.randn(*y.shape, 2, generator=gen, device=y.device,
                        dtype=torch.float32) * (self.error_std / math.sqrt(2.0))
        return y, h + torch.view_as_complex(e).to(h.dtype)

    def __repr__(self) -> str:
        return f"ImperfectCSI({self.channel!r}, error_std={self.error_std:g})"
