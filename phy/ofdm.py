"""OFDM over a 3GPP TDL channel with Sionna's receive path, behind the ``phy`` call shape.

:class:`OFDMTDL` maps a flat stream of unit-energy symbols onto Sionna OFDM resource grids,
sends every grid through its own TR 38.901 TDL realization (frequency domain, one tap
per resource element, Doppler across the grid's OFDM symbols), estimates the channel
(perfect CSI or LS with linear interpolation) and equalizes with Sionna's OFDM LMMSE
equalizer. The caller still sees ``channel(x, snr_db) -> ChannelOutput(y, h, no)``; because the
equalization happens inside, ``y`` is already an estimate of ``x`` (see the class docstring).

Everything with channel physics in it is Sionna's: :class:`~sionna.phy.ofdm.ResourceGrid`,
:class:`~sionna.phy.ofdm.ResourceGridMapper`, :class:`~sionna.phy.channel.tr38901.TDL`,
:class:`~sionna.phy.channel.OFDMChannel`, :class:`~sionna.phy.ofdm.LSChannelEstimator` and
:class:`~sionna.phy.ofdm.LMMSEEqualizer`. This module only does the bookkeeping around them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from sionna.phy.channel import OFDMChannel
from sionna.phy.channel.tr38901 import TDL
from sionna.phy.mimo import StreamManagement
from sionna.phy.ofdm import LMMSEEqualizer, LSChannelEstimator, ResourceGrid, ResourceGridMapper

from .channels import Channel
from .checks import check_choice, check_positive_float, check_positive_int

__all__ = ["OFDMTDL"]

#: Scalable TR 38.901 TDL profiles (delays scaled by ``delay_spread_s``).
TDL_MODELS: tuple[str, ...] = ("A", "B", "C", "D", "E")
#: Receiver channel-estimation options.
CHANNEL_ESTIMATIONS: tuple[str, ...] = ("perfect", "ls")


def _check_pilot_indices(indices: Sequence[int], num_ofdm_symbols: int,
                         channel_estimation: str) -> tuple[int, ...]:
    name = "pilot_ofdm_symbol_indices"
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
        raise TypeError(f"{name} must be a sequence of ints, got {type(indices).__name__}")
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {i!r} in {list(indices)!r}")
        if not 0 <= int(i) < num_ofdm_symbols:
            raise ValueError(
                f"{name} entries must lie in [0, {num_ofdm_symbols - 1}] (num_ofdm_symbols="
                f"{num_ofdm_symbols}), got {list(indices)!r}"
            )
        out.append(int(i))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat an OFDM symbol, got {list(indices)!r}")
    if len(out) >= num_ofdm_symbols:
        raise ValueError(
            f"{name} must leave at least one data OFDM symbol: got {len(out)} pilot symbols "
            f"for num_ofdm_symbols={num_ofdm_symbols}"
        )
    if channel_estimation == "ls" and not out:
        raise ValueError(
            f"{name} must name at least one OFDM symbol when channel_estimation='ls', got "
            f"{list(indices)!r}"
        )
    return tuple(sorted(out))


class OFDMTDL(Channel):
    """SISO OFDM link over a 3GPP TDL channel, with channel estimation and LMMSE equalization.

    Transmit side: the last axis of ``x`` (``n`` unit-energy complex symbols per transmission)
    is cut into ``G = ceil(n / num_data_symbols_per_grid)`` resource grids; the tail of the last
    grid is zero-padded (padding costs no energy and is dropped at the receiver). Each grid is
    ``num_ofdm_symbols`` x ``fft_size`` resource elements (REs) with unit-energy QPSK pilots of
    a Kronecker pattern on the OFDM symbols ``pilot_ofdm_symbol_indices`` (all subcarriers of
    those symbols) and data on all other REs, in Sionna's order (OFDM symbol by OFDM symbol,
    subcarriers within). No guard or DC carriers.

    Channel: :class:`sionna.phy.channel.OFDMChannel` with a :class:`~sionna.phy.channel.tr38901.TDL`
    model (``normalize_channel=False``). Every grid of every transmission is an independent TDL
    realization, sampled once per OFDM symbol (including the cyclic prefix in the symbol
    duration), so Doppler acts within a grid; the UE speed of each grid is drawn uniformly
    in ``[0, ue_speed_mps]``. The channel is applied per RE in the frequency domain (no ISI/ICI),
    so the cyclic prefix only sets the OFDM symbol duration and the overhead.

    Receiver: ``channel_estimation="perfect"`` gives the equalizer the true frequency response
    with zero error variance; ``"ls"`` uses :class:`~sionna.phy.ofdm.LSChannelEstimator` with
    linear interpolation (its error variance, the LS variance at the pilots interpolated, is
    passed on to the equalizer). The pilots are sent with either setting, so overhead and rate
    do not depend on the estimator; pass ``pilot_ofdm_symbol_indices=()`` with perfect CSI to
    drop them. Equalization: :class:`sionna.phy.ofdm.LMMSEEqualizer`, run in double precision
    so that ``no_eff`` stays accurate (and positive) up to 100 dB.

    SNR definition: ``snr_db`` is :math:`E_s/N_0` per resource element, with unit-energy data
    and pilot symbols and the TDL's unit average power, i.e. the *average received* SNR per RE.
    It does not charge the pilot or cyclic-prefix overhead to the data; use :attr:`overhead`
    for that (e.g. ``Eb/N0 = Es/N0 - 10 log10(bits per symbol * (1 - overhead))``).

    Return convention of ``channel(x, snr_db) -> ChannelOutput(y, h, no)`` (``equalized = True``):

    * ``y``: the **unbiased** LMMSE estimate of ``x`` (Sionna's :math:`\\hat x = x + e`),
      same shape as ``x``;
    * ``h``: ones (complex, shape of ``y``; an expanded view), since ``y`` is already
      equalized;
    * ``no``: the per-symbol post-equalization noise variance ``no_eff`` =
      :math:`E|e|^2` as reported by the equalizer, real, shape of ``y``. With perfect CSI it is
      :math:`N_0/|h|^2` per RE and calibrated (``mean(|y - x|^2 / no_eff)`` = 1.00). With LS it
      adds the error variance that Sionna's estimator reports: the LS variance at the pilots,
      linearly interpolated. That ignores the interpolation error, so it is optimistic when the
      channel changes within a grid (measured ``mean(|y - x|^2 / no_eff)`` about 10 at 100 m/s,
      3.5 GHz, 30 dB) and slightly pessimistic for a static channel (about 0.94 at 3 m/s,
      because interpolating between two pilot symbols also averages their noise).

    Hence :func:`phy.zf_equalize` ``(y, h, no)`` returns ``(y, no_eff)`` unchanged (what a
    demapper wants) and :func:`phy.mmse_equalize` ``(y, h, no)`` returns the biased MMSE estimate
    ``y / (1 + no_eff)`` with error variance ``no_eff / (1 + no_eff)`` (what a JSCC decoder
    wants), so :class:`phy.AnalogLink` works unchanged.

    Args:
        model: TDL power-delay profile, one of ``"A"``..``"E"`` (``"D"``, ``"E"`` are LoS).
        delay_spread_s: RMS delay spread in seconds (> 0); scales the profile's tap delays.
        carrier_frequency_hz: carrier frequency in Hz (> 0); sets the Doppler shift.
        ue_speed_mps: maximum UE speed in m/s (>= 0); each grid's speed is uniform in
            ``[0, ue_speed_mps]``.
        subcarrier_spacing_hz: subcarrier spacing in Hz (> 0).
        fft_size: subcarriers per OFDM symbol (>= 1).
        num_ofdm_symbols: OFDM symbols per resource grid (slot), >= 1.
        cyclic_prefix_length: cyclic prefix in samples, in ``[0, fft_size]``.
        pilot_ofdm_symbol_indices: OFDM symbols that carry pilots (Kronecker pattern).
        channel_estimation: ``"perfect"`` or ``"ls"``.
        precision: Sionna precision (``None``, ``"single"``, ``"double"``).
        device: Sionna device (fixed at construction).

    Example:
        >>> ch = OFDMTDL(model="C", delay_spread_s=300e-9, channel_estimation="ls")
        >>> out = ch(x, snr_db=15.0)          # x: complex [B, n], unit energy
        >>> x_mmse, mse = phy.mmse_equalize(out.y, out.h, out.no)
    """

    equalized = True

    def __init__(
        self,
        model: str = "A",
        *,
        delay_spread_s: float = 100e-9,
        carrier_frequency_hz: float = 3.5e9,
        ue_speed_mps: float = 3.0,
        subcarrier_spacing_hz: float = 30e3,
        fft_size: int = 72,
        num_ofdm_symbols: int = 14,
        cyclic_prefix_length: int = 6,
        pilot_ofdm_symbol_indices: Sequence[int] = (2, 11),
        channel_estimation: str = "perfect",
        precision: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(precision=precision, device=device)
        self.model = check_choice("model", model, TDL_MODELS)
        self.delay_spread_s = check_positive_float("delay_spread_s", delay_spread_s)
        self.carrier_frequency_hz = check_positive_float("carrier_frequency_hz",
                                                         carrier_frequency_hz)
        self.ue_speed_mps = check_positive_float("ue_speed_mps", ue_speed_mps, allow_zero=True)
        self.subcarrier_spacing_hz = check_positive_float("subcarrier_spacing_hz",
                                                          subcarrier_spacing_hz)
        self.fft_size = check_positive_int("fft_size", fft_size)
        self.num_ofdm_symbols = check_positive_int("num_ofdm_symbols", num_ofdm_symbols)
        self.cyclic_prefix_length = check_positive_int("cyclic_prefix_length",
                                                       cyclic_prefix_length, minimum=0,
                                                       maximum=self.fft_size)
        self.channel_estimation = check_choice("channel_estimation", channel_estimation,
                                               CHANNEL_ESTIMATIONS)
        self.pilot_ofdm_symbol_indices = _check_pilot_indices(
            pilot_ofdm_symbol_indices, self.num_ofdm_symbols, self.channel_estimation)

        kw = {"precision": self.precision, "device": self.device}
        pilots = list(self.pilot_ofdm_symbol_indices)
        self._rg = ResourceGrid(
            num_ofdm_symbols=self.num_ofdm_symbols,
            fft_size=self.fft_size,
            subcarrier_spacing=self.subcarrier_spacing_hz,
            num_tx=1,
            num_streams_per_tx=1,
            cyclic_prefix_length=self.cyclic_prefix_length,
            pilot_pattern="kronecker" if pilots else "empty",
            pilot_ofdm_symbol_indices=pilots or None,
            **kw,
        )
        # One transmitter with one stream, received by one receiver.
        self._sm = StreamManagement(np.ones((1, 1), dtype=int), 1)
        self._tdl = TDL(
            self.model,
            delay_spread=self.delay_spread_s,
            carrier_frequency=self.carrier_frequency_hz,
            min_speed=0.0,
            max_speed=self.ue_speed_mps,
            **kw,
        )
        self._rg_mapper = ResourceGridMapper(self._rg, **kw)
        self._ofdm_channel = OFDMChannel(self._tdl, self._rg, normalize_channel=False,
                                         return_channel=True, **kw)
        self._estimator = (LSChannelEstimator(self._rg, interpolation_type="lin", **kw)
                           if self.channel_estimation == "ls" else None)
        # Double precision: no_eff = 1/d - 1 cancels catastrophically in float32 above ~65 dB
        # (it rounds to 0 or below, which mmse_equalize rightly refuses).
        self._equalizer = LMMSEEqualizer(self._rg, self._sm, precision="double",
                                         device=self.device)

    # ------------------------------------------------------------------ properties

    @property
    def resource_grid(self) -> ResourceGrid:
        """The Sionna :class:`~sionna.phy.ofdm.ResourceGrid` (one slot)."""
        return self._rg

    @property
    def num_data_symbols_per_grid(self) -> int:
        """Data resource elements per grid (all REs minus the pilots)."""
        return int(self._rg.num_data_symbols)

    @property
    def bandwidth_hz(self) -> float:
        """Occupied bandwidth ``fft_size * subcarrier_spacing_hz`` in Hz."""
        return float(self._rg.bandwidth)

    @property
    def grid_duration_s(self) -> float:
        """Duration of one grid, ``num_ofdm_symbols`` OFDM symbols including cyclic prefixes."""
        return float(self.num_ofdm_symbols * self._rg.ofdm_symbol_duration)

    @property
    def overhead(self) -> float:
        """Fraction of the grid's time-frequency resources that carry no data.

        A grid occupies ``(fft_size + cyclic_prefix_length) * num_ofdm_symbols`` complex samples
        at the sample rate ``bandwidth_hz``; ``num_data_symbols_per_grid`` of them carry data.
        The rest is pilots and cyclic prefix: ``1 - data / samples``. (Zero padding of the last
        grid of a transmission is not included; it depends on ``n``, see :meth:`grids_for`.)
        """
        samples = (self.fft_size + self.cyclic_prefix_length) * self.num_ofdm_symbols
        return 1.0 - self.num_data_symbols_per_grid / samples

    def grids_for(self, n: int) -> int:
        """Resource grids (slots) needed for ``n`` data symbols: ``ceil(n / data per grid)``."""
        check_positive_int("n", n)
        return -(-n // self.num_data_symbols_per_grid)

    # ------------------------------------------------------------------ link

    def propagate(self, x: torch.Tensor,
                  no: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Send ``x`` ``[..., n]`` at noise variance ``no``; return ``(y, h, no_eff)``.

        ``no`` is ``[]`` or broadcastable to ``[..., 1]`` (one value per transmission).
        """
        lead = tuple(x.shape[:-1])
        n = int(x.shape[-1])
        rows = math.prod(lead)
        nd = self.num_data_symbols_per_grid
        g = self.grids_for(n)

        # [rows, n] -> zero-padded [rows * G, 1 tx, 1 stream, nd]: grid k of row r is r*G + k.
        xf = x.reshape(rows, n)
        if g * nd != n:
            xf = torch.nn.functional.pad(xf, (0, g * nd - n))
        xg = xf.reshape(rows * g, 1, 1, nd)

        no = torch.as_tensor(no, dtype=self.dtype, device=self.device)
        if no.numel() == 1:
            no_g = no.reshape(())
        else:
            try:
                no_rows = torch.broadcast_to(no, (*lead, 1)).reshape(rows)
            except RuntimeError as err:
                raise ValueError(
                    f"no of shape {tuple(no.shape)} must be a scalar or one value per "
                    f"transmission, broadcastable to {(*lead, 1)} for x of shape "
                    f"{tuple(x.shape)}"
                ) from err
            no_g = no_rows.repeat_interleave(g)  # [rows * G]: each grid keeps its row's no

        x_rg = self._rg_mapper(xg)                       # [rows*G, 1, 1, S, F]
        y_rg, h_freq = self._ofdm_channel(x_rg, no_g)    # y [rows*G,1,1,S,F], h [.,1,1,1,1,S,F]
        if self._estimator is None:
            h_hat = h_freq
            err_var = torch.zeros((), dtype=self.dtype, device=self.device)
        else:
            h_hat, err_var = self._estimator(y_rg, no_g)
        x_hat, no_eff = self._equalizer(y_rg, h_hat, err_var, no_g)  # [rows*G, 1, 1, nd]

        y = x_hat.to(self.cdtype).reshape(rows, g * nd)[:, :n].reshape(x.shape)
        no_eff = no_eff.to(self.dtype).reshape(rows, g * nd)[:, :n].reshape(x.shape)
        # Guard against a non-positive value from pathological rounding.
        no_eff = no_eff.clamp_min(torch.finfo(self.dtype).tiny)
        h = torch.ones((), dtype=y.dtype, device=y.device).expand(y.shape)
        return y, h, no_eff

    def __repr__(self) -> str:
        return (
            f"OFDMTDL(model={self.model!r}, delay_spread_s={self.delay_spread_s:g}, "
            f"carrier_frequency_hz={self.carrier_frequency_hz:g}, "
            f"ue_speed_mps={self.ue_speed_mps:g}, "
            f"subcarrier_spacing_hz={self.subcarrier_spacing_hz:g}, fft_size={self.fft_size}, "
            f"num_ofdm_symbols={self.num_ofdm_symbols}, "
            f"cyclic_prefix_length={self.cyclic_prefix_length}, "
            f"pilot_ofdm_symbol_indices={self.pilot_ofdm_symbol_indices}, "
            f"channel_estimation={self.channel_estimation!r})"
        )
