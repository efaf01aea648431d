"""Reporting of ``semcom link-curves``: the BER/BLER figure and the summary table of a
:class:`~experiments.recipes.link_curves.LinkCurvesResult` (the CSV rows stream while the
recipe runs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting.results import ResultsDir

if TYPE_CHECKING:
    from experiments.recipes.link_curves import LinkCurvesResult

__all__ = ["link_curves_figure", "link_curves_summary", "plot_link_curves",
           "write_link_curves_report"]


def plot_link_curves(rows: Sequence[dict], title: str) -> plt.Figure:
    """BER and BLER against Es/N0 (dB), one curve per MCS label, of rows with numbers
    (:func:`~experiments.recipes.link_curves.link_curve_numbers`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for label in dict.fromkeys(r["label"] for r in rows):
        sel = [r for r in rows if r["label"] == label and r["num_blocks"] > 0]
        for ax, key in zip(axes, ("ber", "bler"), strict=True):
            pts = [(r["snr_db"], r[key]) for r in sel if r[key] > 0]
            if pts:
                ax.semilogy(*zip(*pts, strict=True), marker="o", ms=3, label=label)
    for ax, key in zip(axes, ("BER (information bits)", "BLER (CRC failures)"), strict=True):
        ax.set_xlabel("SNR $E_s/N_0$ (dB)")
        ax.set_ylabel(key)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(bottom=1e-6)
    axes[1].axhline(0.1, color="grey", ls=":", lw=1)
    if axes[1].get_legend_handles_labels()[0]:  # a curve with a failed block
        axes[1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _kind(result: LinkCurvesResult) -> str:
    return "abstraction (BLER table)" if result.config.abstraction else "decoded"


def link_curves_summary(result: LinkCurvesResult, resumed_from: str | None = None) -> str:
    """``summary.md``: the SNR of BLER 10 % of every MCS beside its Shannon limit."""
    cfg = result.config
    lines = [f"# Link curves on `{cfg.channel}`", "",
             f"{cfg.block_bits} information bits per block, seed {cfg.seed}, {_kind(result)}. "
             "SNR is Es/N0.", "",
             "| MCS | SE (bit/use) | SNR for BLER 10 % (dB) | Shannon limit (dB) |",
             "|---|---|---|---|"]
    at_10 = result.snr_at_bler(0.1)
    for m in cfg.mcs_list:
        s = at_10[m.name]
        shannon = 10 * math.log10(2**m.spectral_efficiency - 1)
        lines.append(f"| {m.name} | {m.spectral_efficiency:.3f} | "
                     f"{'n/a' if s is None else f'{s:.2f}'} | {shannon:.2f} |")
    lines += ["", "Points with `num_blocks = 0` were not simulated (early stop after the first "
              "error-free point): their BER and BLER are empty in the CSV."]
    if resumed_from is not None:
        lines += ["", f"Resumed from `{resumed_from}`."]
    return "\n".join(lines) + "\n"


def link_curves_figure(result: LinkCurvesResult) -> plt.Figure:
    """The figure of ``link_curves.png``: :func:`plot_link_curves` of ``result``, titled with
    its channel, block size and kind."""
    cfg = result.config
    return plot_link_curves(result.rows, f"{cfg.channel}: CRC24B + 5G LDPC, {cfg.block_bits} "
                                         f"info bits/block, {_kind(result)}")


def write_link_curves_report(result: LinkCurvesResult, res: ResultsDir,
                             resumed_from: str | None = None) -> None:
    """``link_curves.png`` and ``summary.md`` of ``result`` in ``res``."""
    fig = link_curves_figure(result)
    res.save_figure(fig, "link_curves.png")
    plt.close(fig)
    res.write_summary(link_curves_summary(result, resumed_from))
