"""Reporting of ``semcom wdmoe``: the latency/quality figures and the summary table of a
:class:`~experiments.recipes.wdmoe.WDMoEResult` (rows as computed, or read back from
``results.csv``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir, cell_float

if TYPE_CHECKING:
    from experiments.recipes.wdmoe import WDMoEResult

__all__ = ["TEXT_WINDOW", "plot_latency_vs_quality", "summary_table", "wdmoe_summary",
           "write_wdmoe_report"]

#: Bytes predicted per window when the model is the shipped text model (``model="text"``).
TEXT_WINDOW = 128


def _snr_label(s: float | None) -> str:
    return "budget" if s is None else f"{s:g} dB"


def _experts(r: dict[str, Any]) -> str:
    """Experts per token, or a dash for a layer-split baseline (no experts cross the air)."""
    v = cell_float(r["experts_per_token_mean"])
    return "—" if math.isnan(v) else f"{v:.2f}"


def _is_text(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("bits_per_byte") not in (None, "") for r in rows)


def _axes(rows: list[dict[str, Any]]) -> tuple[Any, str, Any, str]:
    """(x of a row, x label, y of a row, y label) of the latency/quality plots.

    Generated answers are scored per decoded token; held-out text is scored in prefill (one
    forward pass per batch of windows, no decoding), so its latency is per forward pass and its
    quality is bits per byte (lower is better).
    """
    if _is_text(rows):
        return (lambda r: cell_float(r["prefill_latency_mean_s"]) * 1e3,
                "latency per forward pass (ms)",
                lambda r: cell_float(r["bits_per_byte"]), "held-out bits per byte")
    return (lambda r: cell_float(r["latency_per_token_mean_s"]) * 1e3,
            "decode latency per token (ms)",
            lambda r: cell_float(r["accuracy"]) * 100, "exact-match accuracy (%)")


def plot_latency_vs_quality(rows: list[dict[str, Any]]) -> plt.Figure:
    """The figure of ``latency_vs_accuracy.png``: latency against accuracy (bits per byte for
    text) of ``rows``, one colour per policy, points labelled with their link when several
    links share the plot."""
    x_of, x_label, y_of, y_label = _axes(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    # label points with their link only when several links share the plot
    several = len({(r["transport_spec"], str(r["snr_db"])) for r in rows}) > 1
    for i, p in enumerate(dict.fromkeys(r["policy_spec"] for r in rows)):
        sel = [r for r in rows if r["policy_spec"] == p]
        ax.scatter([x_of(r) for r in sel], [y_of(r) for r in sel], label=p, color=f"C{i}")
        for r in sel if several else ():
            snr = None if r["snr_db"] in ("", None) else cell_float(r["snr_db"])
            ax.annotate(f"{r['transport_spec']} {_snr_label(snr)}", (x_of(r), y_of(r)),
                        fontsize=6, alpha=0.7)
    finish_axes(ax, x_label, y_label, legend={"fontsize": 7, "title": "policy"})
    fig.tight_layout()
    return fig


def _plots(res: ResultsDir, rows: list[dict[str, Any]]) -> None:
    _, _, y_of, y_label = _axes(rows)
    fig = plot_latency_vs_quality(rows)
    res.save_figure(fig, "latency_vs_accuracy.png")
    plt.close(fig)
    swept = [r for r in rows if r["snr_db"] not in ("", None)]
    if swept:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for t in dict.fromkeys(r["transport_spec"] for r in swept):
            for p in dict.fromkeys(r["policy_spec"] for r in swept):
                sel = sorted((r for r in swept if r["transport_spec"] == t
                              and r["policy_spec"] == p), key=lambda r: cell_float(r["snr_db"]))
                if sel:
                    ax.plot([cell_float(r["snr_db"]) for r in sel], [y_of(r) for r in sel], "o-",
                            label=f"{t} / {p}")
        finish_axes(ax, "link SNR (dB)", y_label, legend={"fontsize": 7})
        fig.tight_layout()
        res.save_figure(fig, "accuracy_vs_snr.png")
        plt.close(fig)


def _pct(key: str) -> Any:
    return lambda r: f"{cell_float(r[key]) * 100:.1f}"


def _ms(key: str, digits: int) -> Any:
    return lambda r: f"{cell_float(r[key]) * 1e3:.{digits}f}"


#: Summary columns after transport, SNR and policy: (header, cell of a row).
_TASK_COLUMNS = (("accuracy (%)", _pct("accuracy")),
                 ("latency/token mean (ms)", _ms("latency_per_token_mean_s", 3)),
                 ("p95 (ms)", _ms("latency_per_token_p95_s", 3)),
                 ("experts/token", _experts),
                 ("dropped (%)", _pct("experts_dropped_fraction")),
                 ("lost (%)", _pct("experts_lost_fraction")),
                 ("kbit DL/token", lambda r: f"{cell_float(r['bits_dl_per_token']) / 1e3:.1f}"))
_TEXT_COLUMNS = (("bits/byte", lambda r: f"{cell_float(r['bits_per_byte']):.3f}"),
                 ("next-byte accuracy (%)", _pct("accuracy")),
                 ("latency/forward (ms)", _ms("prefill_latency_mean_s", 1)),
                 ("experts/token", _experts),
                 ("dropped (%)", _pct("experts_dropped_fraction")),
                 ("lost (%)", _pct("experts_lost_fraction")),
                 ("kbit DL/byte",
                  lambda r: format(cell_float(r["bits_dl_total"])
                                   / cell_float(r["num_examples"]) / 1e3, ".1f")))


def wdmoe_summary(result: WDMoEResult) -> str:
    """``summary.md``: the sweep's settings and :func:`summary_table`."""
    cfg = result.config
    lines = ["# WDMoE over the PHY", "",
             f"model `{cfg.model}`, {cfg.devices} devices, {cfg.bandwidth_mhz:g} MHz, "
             f"{cfg.limit} examples, compute model {cfg.compute_model}", ""]
    return "\n".join(lines + summary_table(result.rows)) + "\n"


def write_wdmoe_report(result: WDMoEResult, res: ResultsDir) -> None:
    """The figures and ``summary.md`` of ``result`` in ``res`` (nothing without rows)."""
    if result.rows:
        _plots(res, result.rows)
        res.write_summary(wdmoe_summary(result))


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown lines of the summary's results table (with its lead-in for text models)
    for the rows of ``results.csv`` (as written, or read back)."""
    lines: list[str] = []
    columns = _TASK_COLUMNS
    if _is_text(rows):
        columns = _TEXT_COLUMNS
        lines += [f"Held-out text ({TEXT_WINDOW}-byte windows of standard-library modules "
                  "never seen in training), scored in prefill: bits per byte (lower is "
                  "better), next-byte accuracy, simulated latency per forward pass of a batch "
                  "of windows, and bits on the downlink per scored byte:", ""]
    lines += ["| transport | SNR | policy | " + " | ".join(h for h, _ in columns) + " |",
              "|---" * (3 + len(columns)) + "|"]
    for r in rows:
        snr = "budget" if r["snr_db"] in ("", None) else f"{cell_float(r['snr_db']):g} dB"
        lines.append(f"| {r['transport_spec']} | {snr} | {r['policy_spec']} | "
                     + " | ".join(cell(r) for _, cell in columns) + " |")
    return lines
