"""BER/BLER Monte-Carlo sweeps of a :class:`phy.DigitalLink`, driven by Sionna's ``sim_ber``.

``sim_ber`` owns the stopping rules (a target number of block errors per SNR point, a cap on
batches, early stop after the first error-free point); we add a tqdm progress bar, the counts
behind every estimate (so confidence can be judged) and a channel factory by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from sionna.phy.utils import sim_ber
from tqdm.auto import tqdm

from .channels import AWGN, Channel, RayleighFading
from .checks import check_positive_int
from .digital import DigitalLink
from .registry import Registry

__all__ = ["CHANNELS", "CHANNEL_NAMES", "LinkPoint", "make_channel", "parse_snr_range",
           "simulate_link"]

#: Channels by name (:mod:`phy.registry`); :func:`make_channel` builds from a spec string.
CHANNELS: Registry[Channel] = Registry("channel")
CHANNELS.register("awgn", AWGN)
CHANNELS.register("rayleigh", lambda **kw: RayleighFading("symbol", **kw))
CHANNELS.register("rayleigh-block",
                  lambda coherence="frame", **kw: RayleighFading(coherence, **kw))


def _tdl(model: str) -> Callable[..., Channel]:
    def factory(**kwargs) -> Channel:
        from .ofdm import OFDMTDL

        return OFDMTDL(model=model, **kwargs)

    return factory


for _model in "ABCDE":
    CHANNELS.register(f"tdl-{_model.lower()}", _tdl(_model))

#: The built-in channel names (the ``--channel`` choices of the CLI).
CHANNEL_NAMES = tuple(CHANNELS.available())


def make_channel(name: str, **kwargs) -> Channel:
    """Build a channel from its spec (:data:`CHANNELS`).

    ``"awgn"``; ``"rayleigh"`` (i.i.d. per symbol); ``"rayleigh-block"`` (block fading with
    ``coherence`` symbols per block, ``"rayleigh-block:14"``; default one gain per
    transmission); ``"tdl-a"`` … ``"tdl-e"`` (:class:`phy.ofdm.OFDMTDL` with that 3GPP model).
    ``kwargs`` (e.g. ``device=``, ``coherence=``) go to the channel's constructor.

    Raises:
        ValueError: an unknown name (the message lists :data:`CHANNELS`) or bad arguments.
    """
    return CHANNELS.build(name, **kwargs)


def parse_snr_range(spec: str) -> list[float]:
    """``"start:stop:step"`` (stop included) or ``"a,b,c"`` → list of SNRs in dB."""
    try:
        if ":" in spec:
            parts = [float(p) for p in spec.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise ValueError
            n = round((stop - start) / step) + 1
            values = [round(start + i * step, 6) for i in range(n)
                      if start + i * step <= stop + 1e-9]
        else:
            values = [float(p) for p in spec.split(",") if p.strip()]
    except ValueError:
        raise ValueError(
            f"snr range must be 'start:stop:step' with step > 0 and stop >= start, or a comma "
            f"list of numbers (dB), got {spec!r}"
        ) from None
    if not values:
        raise ValueError(f"snr range {spec!r} contains no value")
    return values


@dataclass(frozen=True)
class LinkPoint:
    """One SNR point of a link curve (counts included); ``ber``/``bler`` are ``nan`` where
    the point was not simulated (``num_blocks == 0``)."""

    snr_db: float
    ber: float
    bler: float
    bit_errors: int
    block_errors: int
    num_bits: int
    num_blocks: int

    def as_row(self) -> dict:
        return asdict(self)


def simulate_link(link: DigitalLink, snr_dbs: Sequence[float], *, block_bits: int | None = None,
                  batch_size: int = 100, max_batches: int = 20, target_block_errors: int = 100,
                  target_bler: float | None = None, early_stop: bool = True,
                  progress: bool = True, desc: str | None = None) -> list[LinkPoint]:
    """Information-bit BER and residual BLER of ``link`` at each SNR (Es/N0, dB).

    Each point runs batches of ``batch_size`` code blocks of ``block_bits`` information bits
    (default ``link.block_bits``) until ``target_block_errors`` block errors or
    ``max_batches`` batches. With ``early_stop`` the sweep ends after the first point without
    any error, or, with ``target_bler``, after the first point below it; the points after it
    are reported as not simulated: ``num_blocks = 0`` and ``ber = bler = nan`` (unknown, not
    error-free).
    """
    k = link.block_bits if block_bits is None else check_positive_int("block_bits", block_bits)
    check_positive_int("batch_size", batch_size)
    check_positive_int("max_batches", max_batches)
    check_positive_int("target_block_errors", target_block_errors)
    snrs = [float(s) for s in snr_dbs]
    if not snrs:
        raise ValueError("snr_dbs must contain at least one SNR")

    def mc_fun(batch_size: int, ebno_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # sim_ber calls the SNR argument "ebno_db"; here it is Es/N0 in dB.
        bits = torch.randint(0, 2, (batch_size, k), device=link.device).float()
        return bits, link.send_bits(bits, float(ebno_db)).bits_hat

    bar = tqdm(total=len(snrs), desc=desc or f"{link.mcs.name}", unit="snr", disable=not progress,
               leave=False)
    counts: dict[int, tuple[int, int, int, int]] = {}
    def callback(mc_iter, snr_idx, ebno_dbs, bit_errors, block_errors, nb_bits, nb_blocks):
        i = int(snr_idx)
        counts[i] = (int(bit_errors[i]), int(block_errors[i]), int(nb_bits[i]), int(nb_blocks[i]))
        if i > bar.n:  # points before i are finished
            bar.update(i - bar.n)
        bar.set_postfix(snr_db=f"{snrs[i]:.1f}", blocks=counts[i][3], errors=counts[i][1])
        return sim_ber.CALLBACK_CONTINUE

    try:
        ber, bler = sim_ber(mc_fun, torch.tensor(snrs), batch_size=batch_size,
                            max_mc_iter=max_batches, num_target_block_errors=target_block_errors,
                            target_bler=target_bler, early_stop=early_stop, verbose=False,
                            callback=callback, device=link.device)
    finally:
        bar.update(len(snrs) - bar.n)
        bar.close()
    points = []
    for i, s in enumerate(snrs):
        be, bke, nb, nbl = counts.get(i, (0, 0, 0, 0))
        missing = nbl == 0  # never simulated: unknown, not error-free
        points.append(LinkPoint(snr_db=s, ber=math.nan if missing else float(ber[i]),
                                bler=math.nan if missing else float(bler[i]), bit_errors=be,
                                block_errors=bke, num_bits=nb, num_blocks=nbl))
    return points
