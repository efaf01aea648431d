"""Reporting of ``semcom quickstart``: the CSVs, figures and ``summary.md`` of a
:class:`~experiments.recipes.quickstart.QuickstartResult`, all in the quickstart's own folder.

Per section (:func:`write_quickstart_section`): ``analog_mse.csv``/``.png``;
``link_curves.csv``/``.png`` (the link-curves figure); ``link_adaptation.csv``;
``psnr_vs_snr.csv``/``.png`` (the main figure); the demo's checkpoint is written by the
computation; ``wdmoe_policies.csv``/``.png``, ``wdmoe_links.csv``/``.png`` (latency against
accuracy) and ``wdmoe_timings.csv`` (wall times, apart so that the other CSVs repeat).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting.link_curves import link_curves_figure
from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir
from experiments.reporting.wdmoe import plot_latency_vs_quality, summary_table

if TYPE_CHECKING:
    from experiments.recipes.quickstart import QuickstartResult

__all__ = ["WDMOE_FILES", "quickstart_summary", "write_quickstart_report",
           "write_quickstart_section"]

#: (CSV, figure) of each split-MoE sweep, in the order of ``QuickstartResult.wdmoe``.
WDMOE_FILES = (("wdmoe_policies.csv", "wdmoe_policies.png"),
               ("wdmoe_links.csv", "wdmoe_links.png"))


def _analog(res: ResultsDir, result: QuickstartResult) -> None:
    rows = [dataclasses.asdict(p) for p in result.analog]
    res.write_csv("analog_mse.csv", rows)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name in dict.fromkeys(p.channel for p in result.analog):
        sel = [p for p in result.analog if p.channel == name]
        ax.plot([p.snr_db for p in sel], [p.mse_db for p in sel], "o", label=f"{name} (sim.)")
        ax.plot([p.snr_db for p in sel], [p.theory_db for p in sel], "-",
                label=f"{name} (theory)")
    finish_axes(ax, "SNR $E_s/N_0$ (dB)", "MSE per complex symbol (dB)",
                "AnalogLink + MMSE equalizer")
    fig.tight_layout()
    res.save_figure(fig, "analog_mse.png")
    plt.close(fig)


def _digital(res: ResultsDir, result: QuickstartResult) -> None:
    assert result.digital is not None
    # as ``semcom link-curves`` writes them: a BER/BLER not measured is an empty cell
    res.write_csv("link_curves.csv", [
        {k: "" if k in ("ber", "bler") and math.isnan(v) else v for k, v in r.items()}
        for r in result.digital.rows])
    fig = link_curves_figure(result.digital)
    res.save_figure(fig, "link_curves.png")
    plt.close(fig)


def _adaptation(res: ResultsDir, result: QuickstartResult) -> None:
    res.write_csv("link_adaptation.csv", [dataclasses.asdict(p) for p in result.adaptation])


def _pretrained(res: ResultsDir, result: QuickstartResult) -> None:
    from experiments.recipes.pretrained_curves import plot_curves

    res.write_csv("psnr_vs_snr.csv", [vars(p) for p in result.pretrained])
    fig = plot_curves(result.pretrained, f"AWGN, CBR 1/12, {result.image_crops} held-out "
                                         "crops 128x128 (astronaut, coffee, flower)")
    res.save_figure(fig, "psnr_vs_snr.png")
    plt.close(fig)


def _wdmoe(res: ResultsDir, result: QuickstartResult) -> None:
    timings = []
    for (csv_name, png_name), r in zip(WDMOE_FILES, result.wdmoe, strict=False):
        if not r.rows:
            continue
        res.write_csv(csv_name, r.rows)
        fig = plot_latency_vs_quality(r.rows)
        res.save_figure(fig, png_name)
        plt.close(fig)
        timings += [{"sweep": csv_name.removesuffix(".csv"), **t} for t in r.timings]
    if timings:
        res.write_csv("wdmoe_timings.csv", timings)


_WRITERS = {"analog": _analog, "digital": _digital, "adaptation": _adaptation,
            "pretrained": _pretrained, "wdmoe": _wdmoe}


def write_quickstart_section(res: ResultsDir, section: str, result: QuickstartResult) -> None:
    """The files of one section of ``result`` (a name of
    :data:`~experiments.recipes.quickstart.SECTIONS`) in ``res``."""
    writer = _WRITERS.get(section)
    if writer is not None:
        writer(res, result)


def write_quickstart_report(result: QuickstartResult, res: ResultsDir) -> None:
    """Every section's files and ``summary.md`` of a finished ``result`` in ``res``."""
    for section in _WRITERS:
        write_quickstart_section(res, section, result)
    res.write_summary(quickstart_summary(result))


def _pretrained_table(result: QuickstartResult) -> list[str]:
    cols = ["jscc", "jscc+cddm", "jpeg2000+ldpc/best-mcs", "jpeg2000+capacity"]
    lines = ["| SNR (dB) | ADJSCC | ADJSCC + CDDM | JPEG2000+LDPC, best MCS | "
             "JPEG2000 + capacity |", "|---|---|---|---|---|"]
    points = result.pretrained
    for s in result.config.image_snr_db:
        cells = []
        for c in cols:
            p = next((p for p in points if p.method == c and p.snr_db == s), None)
            if p is None:
                cells.append("")
            else:
                note = f" ({p.note})" if c.endswith("best-mcs") else ""
                cells.append(f"{p.psnr:.2f}{note}")
        lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    return lines


def _demo_line(result: QuickstartResult) -> str:
    demo = result.demo
    assert demo is not None
    where = ("" if demo.checkpoint is None
             else f" (checkpoint `{demo.checkpoint.name}`)")
    return (f"An ADJSCC (32 filters, CBR 1/12) trained here for {demo.steps} steps on "
            f"the built-in photos{where}: PSNR "
            + ", ".join(f"{r.psnr:.2f} dB at {r.snr_db:g} dB" for r in demo.scores)
            + ". Train a real one with `semcom train-jscc --config "
            "experiments/configs/pretrained/adjscc_awgn_cbr1-12.yaml`.")


def quickstart_summary(result: QuickstartResult) -> str:
    """``summary.md``: a table per section (sections not run are left out) and where the
    files are."""
    from experiments.recipes.link_curves import snr_at_bler

    lines = ["# semcom quickstart"]
    if result.analog:
        lines += ["", "## Analog link (MSE per complex symbol, dB)", "",
                  "| channel | SNR (dB) | simulated | theory | link's noise_var |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p.channel} | {p.snr_db:g} | {p.mse_db:.2f} | {p.theory_db:.2f} | "
                  f"{p.predicted_db:.2f} |" for p in result.analog]
    if result.digital is not None:
        dcfg, drows = result.digital.config, result.digital.rows
        lines += ["", f"## Digital link on {dcfg.channel.upper()} (5G LDPC, "
                  f"{dcfg.block_bits} info bits per block)", "",
                  "| MCS | SNR for BLER 10 % (dB) |", "|---|---|"]
        for label in dict.fromkeys(r["label"] for r in drows):
            s = snr_at_bler([r for r in drows if r["label"] == label])
            lines.append(f"| {label} | {'n/a' if s is None else f'{s:.2f}'} |")
    if result.adaptation:
        lines += ["", "## Link adaptation (BLER <= 10 %, AWGN, 20 MHz, no overhead)", "",
                  "| SNR (dB) | MCS | rate (Mbit/s) | capacity (Mbit/s) |", "|---|---|---|---|"]
        lines += [f"| {p.snr_db:g} | {'none' if p.mcs is None else p.mcs} | "
                  f"{p.rate_mbps:.1f} | {p.capacity_mbps:.1f} |" for p in result.adaptation]
    if result.pretrained:
        lines += ["", "## Pretrained ADJSCC and ADJSCC + CDDM against JPEG2000 + 5G LDPC "
                  "(AWGN, CBR 1/12, PSNR in dB; plot `psnr_vs_snr.png`)", ""]
        lines += _pretrained_table(result)
    if result.demo is not None:
        lines += ["", "## Train your own (demo)", "", _demo_line(result)]
    if result.wdmoe:
        limits = " and ".join(str(r.config.limit) for r in result.wdmoe)
        lines += ["", f"## Split MoE language model over the PHY (tiny Mixtral, {limits} "
                  "problems)", ""]
        for r in result.wdmoe:
            lines += [*summary_table(r.rows), ""]
    lines += ["", _files_line(result)]
    return "\n".join(lines) + "\n"


def _files_line(result: QuickstartResult) -> str:
    parts = []
    if result.digital is not None:
        parts.append("digital curves `link_curves.csv` (plot `link_curves.png`)")
    if result.adaptation:
        parts.append("link adaptation `link_adaptation.csv`")
    if result.wdmoe:
        parts.append("split MoE " + ", ".join(
            f"`{c}` (plot `{p}`)" for (c, p), _ in zip(WDMOE_FILES, result.wdmoe,
                                                        strict=False))
            + " and `wdmoe_timings.csv`")
    if not parts:
        return "CSVs and plots: in this folder."
    return "In this folder: " + "; ".join(parts) + "."
