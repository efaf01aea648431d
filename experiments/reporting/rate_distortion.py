"""Reporting of ``semcom rate-distortion``: the bpp–PSNR figure and the summary table of a
:class:`~experiments.recipes.rate_distortion.RateDistortionResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.reporting.results import ResultsDir

if TYPE_CHECKING:
    from experiments.recipes.rate_distortion import RateDistortionResult

__all__ = ["plot_rate_distortion", "rate_distortion_summary", "write_rate_distortion_report"]


def plot_rate_distortion(result: RateDistortionResult) -> plt.Figure:
    """Mean PSNR (dB) against the bits per pixel actually used, one curve per codec."""
    fig, ax = plt.subplots(figsize=(6, 4))
    mean = result.mean_rows()
    for codec in result.codecs:
        sel = [r for r in mean if r["codec"] == codec.name]
        ax.plot([r["bpp"] for r in sel], [r["psnr"] for r in sel], "o-",
                label=codec.description)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{result.num_images} images {result.height}x{result.width} from "
                 f"{result.config.data}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def rate_distortion_summary(result: RateDistortionResult) -> str:
    """``summary.md``: mean PSNR per codec and rate, with the budget fill and the share of
    images coded where not all could be."""
    rates = result.config.bpp
    head = " | ".join(f"{b:g} bpp" for b in rates)
    lines = ["# Rate-distortion of the source codecs (mean PSNR, dB)", "",
             f"{result.num_images} images {result.height}x{result.width} from "
             f"`{result.config.data}`; in brackets the mean budget fill and, where some images "
             "could not be coded at that rate (the smallest stream is larger), the share that "
             "could.", "",
             f"| codec | {head} |", "|---" * (len(rates) + 1) + "|"]
    mean = result.mean_rows()
    for codec in result.codecs:
        cells = ["n/a (none coded)" if r["coded"] == 0 else
                 f"{r['psnr']:.2f} ({r['fill']:.2f}"
                 + ("" if r["coded"] == 1 else f", {r['coded']:.0%} coded") + ")"
                 for r in mean if r["codec"] == codec.name]
        lines.append(f"| {codec.description} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_rate_distortion_report(result: RateDistortionResult, res: ResultsDir) -> None:
    """``mean.csv``, ``rate_distortion.png`` and ``summary.md`` of ``result`` in ``res``."""
    res.write_csv("mean.csv", result.mean_rows())
    fig = plot_rate_distortion(result)
    res.save_figure(fig, "rate_distortion.png")
    plt.close(fig)
    res.write_summary(rate_distortion_summary(result))
