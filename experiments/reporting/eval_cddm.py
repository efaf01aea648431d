"""Reporting of ``semcom eval-cddm``'s channel-MSE section: the figure and the table of the
rows of :func:`experiments.recipes.eval_cddm.measure_channel_mse` (the image section is
:mod:`experiments.reporting.eval_images`'s)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir

__all__ = ["channel_mse_table", "plot_channel_mse", "write_channel_mse_report"]


def plot_channel_mse(rows: Sequence[dict], title: str, raw: bool) -> plt.Figure:
    """Channel MSE (dB per symbol) against SNR: MMSE, its closed form, MMSE + CDDM and, when
    ``raw`` (AWGN), the received signal itself."""
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [r["snr_db"] for r in rows]
    ax.plot(x, [r["mse_mmse_db"] for r in rows], "o-", label="MMSE")
    ax.plot(x, [r["theory_mmse_db"] for r in rows], "k:", label="MMSE, closed form")
    if raw:
        ax.plot(x, [r["mse_raw_db"] for r in rows], "s--", label="raw (no equalizer)")
    ax.plot(x, [r["mse_cddm_db"] for r in rows], "D-", lw=2, label="MMSE + CDDM")
    finish_axes(ax, "SNR $E_s/N_0$ (dB)", "channel MSE per symbol (dB)", title, title_size=9,
                legend={"fontsize": 8})
    fig.tight_layout()
    return fig


def channel_mse_table(rows: Sequence[dict]) -> str:
    """The summary section: steps, MSE of MMSE and MMSE + CDDM, the gain and the closed form
    per SNR."""
    lines = ["# Channel MSE (dB per complex symbol)", "",
             "| SNR (dB) | steps | MMSE | MMSE + CDDM | gain (dB) | MMSE closed form |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['snr_db']:g} | {r['steps']} | {r['mse_mmse_db']:.2f} | "
                     f"{r['mse_cddm_db']:.2f} | {r['gain_vs_mmse_db']:+.2f} | "
                     f"{r['theory_mmse_db']:.2f} |")
    return "\n".join(lines) + "\n"


def write_channel_mse_report(rows: Sequence[dict], res: ResultsDir, title: str,
                             raw: bool) -> str:
    """``channel_mse.csv`` and ``.png`` in ``res``; returns :func:`channel_mse_table`."""
    res.write_csv("channel_mse.csv", rows)
    fig = plot_channel_mse(rows, title, raw)
    res.save_figure(fig, "channel_mse.png")
    plt.close(fig)
    return channel_mse_table(rows)
