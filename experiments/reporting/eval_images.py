"""Reporting of ``semcom eval-images`` (and of the recipes built on it): mean rows, the
PSNR-vs-SNR figure and the summary table of an
:class:`~experiments.recipes.eval_images.EvalImagesResult`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir
from jscc.baselines import SOURCE_CODECS, best_mcs_envelope

if TYPE_CHECKING:
    from experiments.recipes.eval_images import EvalImagesResult

__all__ = ["eval_images_summary", "mean_rows", "plot_psnr_vs_snr", "write_eval_images_report"]


def mean_rows(rows: Sequence[dict]) -> list[dict]:
    """Per (method, SNR): mean ``psnr`` (dB), ``msssim`` and the ``delivered`` fraction of
    per-image rows; then per source codec and SNR the best-MCS envelope (``<codec>+ldpc/
    best-mcs``, the MCS of best mean PSNR in ``best``)."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["snr_db"]), []).append(r)
    out = []
    for (method, s), g in groups.items():
        out.append({"method": method, "snr_db": s,
                    "psnr": sum(r["psnr"] for r in g) / len(g),
                    "msssim": sum(r["msssim"] for r in g) / len(g),
                    "delivered": sum(r["status"] == "ok" for r in g) / len(g)})
    # envelope over MCSs: best mean PSNR per SNR, per source codec
    for family in sorted({r["method"].split("/")[0] for r in out if "+ldpc/" in r["method"]}):
        for s in sorted({r["snr_db"] for r in out}):
            cands = [r for r in out if r["snr_db"] == s and r["method"].startswith(family + "/")
                     and r["method"] != family + "/best-mcs"]
            if cands:
                choice = best_mcs_envelope({r["method"]: r["psnr"] for r in cands})
                best = next(r for r in cands if r["method"] == choice.key)
                out.append({"method": f"{family}/best-mcs", "snr_db": s, "psnr": best["psnr"],
                            "msssim": best["msssim"], "delivered": best["delivered"],
                            "best": best["method"].split("/")[1]})
    return out


#: Colour and marker of each source codec's curves, and its name in legends.
_SOURCE_STYLE = {"jpeg2000": ("k", "s"), "hevc": ("C0", "o"), "avif": ("C1", "D"),
                 "learned": ("C2", "^")}
_SOURCE_LABEL = {"jpeg2000": "JPEG2000", "hevc": "HEVC (BPG-class)", "avif": "AVIF",
                 "learned": "hyperprior"}


def plot_psnr_vs_snr(mean_rows: list[dict], title: str) -> plt.Figure:
    """Mean PSNR against SNR: JSCC curves as lines, the digital MCS curves and each source
    codec's best-MCS envelope as steps (each MCS falls off a cliff), capacity bounds dotted."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = list(dict.fromkeys(r["method"] for r in mean_rows))
    for m in methods:
        sel = sorted((r for r in mean_rows if r["method"] == m), key=lambda r: r["snr_db"])
        x = [r["snr_db"] for r in sel]
        y = [r["psnr"] for r in sel]
        if m == "jscc":
            ax.plot(x, y, "o-", lw=2.2, color="C3", label="JSCC (analog)")
        elif m.startswith("jscc+"):
            label = m.replace("jscc+", "JSCC + ").replace("cddm", "CDDM")
            ax.plot(x, y, "D-", lw=1.8, label=label.replace("+redecoder", ", re-trained decoder"))
        elif m.endswith("+ldpc/best-mcs") or m.endswith("+capacity"):
            src = m.split("+")[0]
            color, marker = _SOURCE_STYLE.get(src, ("C4", "v"))
            name = _SOURCE_LABEL.get(src, src)
            if m.endswith("/best-mcs"):
                ax.step(x, y, where="post", lw=2, color=color, label=f"{name}+LDPC, best MCS")
                ax.plot(x, y, marker, color=color, ms=4)
            else:
                ax.plot(x, y, ":", lw=1.5, color=color, label=f"{name} + capacity")
        else:
            ax.step(x, y, "--", where="post", lw=0.9, alpha=0.7, label=m)
    finish_axes(ax, "SNR $E_s/N_0$ (dB)", "PSNR (dB)", title, title_size=9,
                legend={"fontsize": 7, "ncol": 2})
    fig.tight_layout()
    return fig


def eval_images_summary(result: EvalImagesResult, extra_methods: Sequence[str] = ()) -> str:
    """``summary.md``: mean PSNR per SNR of JSCC, ``extra_methods`` and every separate
    system's best-MCS envelope (with its MCS) and capacity bound."""
    mean_rows = result.mean_rows()
    cfg = result.config
    snrs = sorted({r["snr_db"] for r in mean_rows})
    sources = [*SOURCE_CODECS, "learned"]
    separate = [m for src in sources for m in (f"{src}+ldpc/best-mcs", f"{src}+capacity")]
    methods = [m for m in ("jscc", *extra_methods, *separate)
               if any(r["method"] == m for r in mean_rows)]
    lines = ["# Image transmission: mean PSNR (dB)", "",
             f"channel `{cfg.channel}`, CBR {result.cbr:.4f}, "
             f"{result.num_images} images from `{cfg.data}`", "",
             "| SNR (dB) | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for s in snrs:
        vals = []
        for m in methods:
            r = next((r for r in mean_rows if r["method"] == m and r["snr_db"] == s), None)
            v = "n/a" if r is None or not math.isfinite(r["psnr"]) else f"{r['psnr']:.2f}"
            if m.endswith("/best-mcs") and r is not None:
                v += f" ({r['best']})"
            vals.append(v)
        lines.append(f"| {s:g} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def write_eval_images_report(result: EvalImagesResult, res: ResultsDir,
                             extra_methods: Sequence[str] = ()) -> str:
    """``per_image.csv`` (numbers), ``mean.csv``, ``psnr_vs_snr.png`` of ``result`` in
    ``res``; returns the summary (:func:`eval_images_summary`) for the caller to extend and
    write."""
    res.write_csv("per_image.csv", result.rows)
    means = result.mean_rows()
    res.write_csv("mean.csv", means)
    fig = plot_psnr_vs_snr(means, f"{result.config.channel}, CBR {result.cbr:.4f}, "
                                  f"{result.num_images} images {result.height}x{result.width}")
    res.save_figure(fig, "psnr_vs_snr.png")
    plt.close(fig)
    return eval_images_summary(result, extra_methods)
