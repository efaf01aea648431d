"""Rate-distortion curves of the source codecs (no channel): mean PSNR against bits per pixel.

Every codec of :data:`jscc.baselines.source.SOURCE_CODECS` (JPEG2000, HEVC intra, AVIF) codes
each image to ``floor(bpp * H * W / 8)`` bytes with its own rate control (never above the
budget) and the decoded image is scored. ``bpp`` counts the bytes a link would carry (the HEIF
and AVIF boxes deflated against their template, :mod:`jscc.baselines.isobmff`). Writes
``per_image.csv`` (streamed: one row per image, codec and rate as it finishes), ``mean.csv``,
``rate_distortion.png`` and ``summary.md``.

Usage::

    python -m experiments.recipes.rate_distortion --data ../shared/datasets/cbsd68 --crop 256
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from experiments.cli import entry_point
from experiments.recipes.eval_images import load_images
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, Names, PositiveInt
from jscc.baselines.source import SOURCE_CODECS, source_codec
from jscc.metrics import psnr

__all__ = ["run_rate_distortion"]

DEFAULT_BPP = (0.125, 0.25, 0.5, 1.0)


def run_rate_distortion(*, data: str = "builtin", crop: PositiveInt | None = 256,
                        codecs: Names = Names(SOURCE_CODECS),
                        bpp: FloatGrid = FloatGrid(DEFAULT_BPP),
                        max_images: PositiveInt | None = None,
                        out: str | Path = "results", seed: int = 0,
                        progress: bool = True) -> ResultsDir:
    """Code every image at every rate with every codec and write the results folder.

    Args:
        data: ``builtin`` or an image folder.
        crop: centre crop size in pixels (None: whole images).
        codecs: source codecs (:data:`jscc.baselines.SOURCE_CODECS`).
        bpp: rates in bits per pixel.
        max_images: use at most this many images.
        out: root folder of the results.
        seed: recorded in the manifest (the codecs are deterministic).
        progress: show a progress bar.
    """
    chosen = [source_codec(c) for c in Names.parse(codecs)]
    rates = [float(b) for b in FloatGrid.parse(bpp)]
    if not rates or min(rates) <= 0 or not all(math.isfinite(b) for b in rates):
        raise ValueError(f"bpp must be positive bits per pixel, got {list(bpp)}")
    images = load_images(data, crop, max_images)
    n, _, h, w = images.shape
    config = {"data": data, "crop": crop, "codecs": [c.name for c in chosen], "bpp": rates,
              "num_images": n}
    res = ResultsDir.create("rate_distortion", config, seed, root=out)
    rows: list[dict] = []
    bar = tqdm(total=n * len(rates) * len(chosen), desc="rate-distortion", unit="code",
               disable=not progress)
    with res, bar:
        for codec in chosen:
            for b in rates:
                budget = math.floor(b * h * w / 8)
                for i in range(n):
                    s = codec.encode_to_budget(images[i], budget)
                    if s is None:
                        p, used = math.nan, 0
                    else:
                        x_hat = codec.decode(s, (h, w))
                        p, used = float(psnr(x_hat[None], images[i][None])), len(s)
                    rows.append({"codec": codec.name, "bpp_budget": b, "image": i,
                                 "budget_bytes": budget, "bytes": used,
                                 "bpp": 8 * used / (h * w), "psnr": p})
                    bar.update()
                res.write_csv("per_image.csv", rows)
        mean = []
        for codec in chosen:
            for b in rates:
                g = [r for r in rows if r["codec"] == codec.name and r["bpp_budget"] == b]
                ok = [r for r in g if math.isfinite(r["psnr"])]
                mean.append({"codec": codec.name, "bpp_budget": b,
                             "bpp": sum(r["bpp"] for r in ok) / max(len(ok), 1),
                             "psnr": sum(r["psnr"] for r in ok) / len(ok) if ok else math.nan,
                             "fill": (sum(r["bytes"] / r["budget_bytes"] for r in ok)
                                      / max(len(ok), 1)),
                             "fill_min": min((r["bytes"] / r["budget_bytes"] for r in ok),
                                             default=math.nan),
                             "coded": len(ok) / len(g)})
        res.write_csv("mean.csv", mean)
        fig, ax = plt.subplots(figsize=(6, 4))
        for codec in chosen:
            sel = [r for r in mean if r["codec"] == codec.name]
            ax.plot([r["bpp"] for r in sel], [r["psnr"] for r in sel], "o-",
                    label=codec.description)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{n} images {h}x{w} from {data}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        res.save_figure(fig, "rate_distortion.png")
        plt.close(fig)
        head = " | ".join(f"{b:g} bpp" for b in rates)
        lines = ["# Rate-distortion of the source codecs (mean PSNR, dB)", "",
                 f"{n} images {h}x{w} from `{data}`; in brackets the mean budget fill and, "
                 "where some images could not be coded at that rate (the smallest stream is "
                 "larger), the share that could.", "",
                 f"| codec | {head} |", "|---" * (len(rates) + 1) + "|"]
        for codec in chosen:
            cells = ["n/a (none coded)" if r["coded"] == 0 else
                     f"{r['psnr']:.2f} ({r['fill']:.2f}"
                     + ("" if r["coded"] == 1 else f", {r['coded']:.0%} coded") + ")"
                     for r in mean if r["codec"] == codec.name]
            lines.append(f"| {codec.description} | " + " | ".join(cells) + " |")
        res.write_summary("\n".join(lines) + "\n")
    return res


#: ``python -m experiments.recipes.rate_distortion`` = ``semcom rate-distortion``.
main = entry_point("rate-distortion")


if __name__ == "__main__":
    raise SystemExit(main())
