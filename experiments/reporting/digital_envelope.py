"""Reporting of ``semcom digital-envelope``: the summary table of a
:class:`~experiments.recipes.digital_envelope.DigitalEnvelopeResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from experiments.recipes.digital_envelope import DigitalEnvelopeResult

__all__ = ["digital_envelope_summary"]


def digital_envelope_summary(result: DigitalEnvelopeResult) -> str:
    """``summary.md``: per SNR the best MCS, its mean PSNR, the delivered fraction, whether
    the best lies inside the searched window, and the capacity bound."""
    cfg = result.config
    lines = [f"# JPEG2000 + 5G LDPC best-MCS envelope (AWGN, CBR {cfg.cbr:.4f}, "
             f"{result.num_images} images from {cfg.data}, crop {cfg.crop})", "",
             "| SNR (dB) | best MCS | PSNR (dB) | delivered | inside window | "
             "capacity bound (dB) |", "|---|---|---|---|---|---|"]
    lines += [f"| {e['snr_db']:g} | {e['mcs']} | {e['psnr']:.2f} | {e['delivered']:.2f} | "
              f"{e['inside']} | {e['capacity_psnr']:.2f} |" for e in result.envelope]
    return "\n".join(lines) + "\n"
