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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from experiments.cli import entry_point
from experiments.recipes.config import config_dict, optional_positive_int, resolve_config
from experiments.recipes.eval_images import load_images
from experiments.reporting.rate_distortion import write_rate_distortion_report
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, Names, PositiveInt
from jscc.baselines.source import SOURCE_CODECS, SourceCodec, source_codec
from jscc.metrics import psnr

__all__ = ["RateDistortionConfig", "RateDistortionResult", "measure_rate_distortion",
           "run_rate_distortion"]

DEFAULT_BPP = (0.125, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class RateDistortionConfig:
    """What ``semcom rate-distortion`` measures (checked when built).

    Attributes:
        data: ``builtin`` or an image folder.
        crop: centre crop size in pixels (None: whole images).
        codecs: source codecs (:data:`jscc.baselines.SOURCE_CODECS`).
        bpp: rates in bits per pixel.
        max_images: use at most this many images.
        seed: recorded in the manifest (the codecs are deterministic).
    """

    data: str = "builtin"
    crop: PositiveInt | None = 256
    codecs: Names = Names(SOURCE_CODECS)
    bpp: FloatGrid = FloatGrid(DEFAULT_BPP)
    max_images: PositiveInt | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        names = tuple(source_codec(c).name for c in Names.parse(self.codecs))
        object.__setattr__(self, "codecs", Names(names))
        rates = [float(b) for b in FloatGrid.parse(self.bpp)]
        if not rates or min(rates) <= 0 or not all(math.isfinite(b) for b in rates):
            raise ValueError(f"bpp must be positive bits per pixel, got {list(self.bpp)}")
        object.__setattr__(self, "bpp", FloatGrid(rates))
        for name in ("crop", "max_images"):
            object.__setattr__(self, name, optional_positive_int(name, getattr(self, name)))


@dataclass
class RateDistortionResult:
    """The measurements of a :class:`RateDistortionConfig`.

    Attributes:
        config: what was measured.
        num_images, height, width: the image set (pixels).
        rows: one per (codec, rate, image): ``budget_bytes``, ``bytes`` used, ``bpp`` used and
            ``psnr`` (dB; nan where the smallest stream exceeds the budget).
    """

    config: RateDistortionConfig
    num_images: int
    height: int
    width: int
    rows: list[dict]

    @property
    def codecs(self) -> list[SourceCodec]:
        return [source_codec(c) for c in self.config.codecs]

    def mean_rows(self) -> list[dict]:
        """Per (codec, rate): mean ``bpp`` and ``psnr`` over the coded images, mean and least
        budget ``fill``, and the share ``coded``."""
        mean = []
        for codec in self.config.codecs:
            for b in self.config.bpp:
                g = [r for r in self.rows if r["codec"] == codec and r["bpp_budget"] == b]
                ok = [r for r in g if math.isfinite(r["psnr"])]
                mean.append({"codec": codec, "bpp_budget": b,
                             "bpp": sum(r["bpp"] for r in ok) / max(len(ok), 1),
                             "psnr": sum(r["psnr"] for r in ok) / len(ok) if ok else math.nan,
                             "fill": (sum(r["bytes"] / r["budget_bytes"] for r in ok)
                                      / max(len(ok), 1)),
                             "fill_min": min((r["bytes"] / r["budget_bytes"] for r in ok),
                                             default=math.nan),
                             "coded": len(ok) / len(g)})
        return mean


def measure_rate_distortion(cfg: RateDistortionConfig, images: torch.Tensor, *,
                            on_rows: Callable[[list[dict]], Any] | None = None,
                            progress: bool = True) -> RateDistortionResult:
    """Code every image of ``images`` (``[N, 3, H, W]`` in [0, 1]) at every rate of ``cfg``
    with every codec (``floor(bpp H W / 8)`` bytes at most) and score the decoded image;
    ``on_rows`` gets the rows so far after each (codec, rate)."""
    n, _, h, w = images.shape
    rows: list[dict] = []
    codecs = [source_codec(c) for c in cfg.codecs]
    bar = tqdm(total=n * len(cfg.bpp) * len(codecs), desc="rate-distortion", unit="code",
               disable=not progress)
    with bar:
        for codec in codecs:
            for b in cfg.bpp:
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
                if on_rows is not None:
                    on_rows(rows)
    return RateDistortionResult(cfg, n, h, w, rows)


def run_rate_distortion(cfg: RateDistortionConfig | None = None, *,
                        out: str | Path = "results", progress: bool = True,
                        **settings: Any) -> ResultsDir:
    """``semcom rate-distortion``: :func:`measure_rate_distortion` into a results folder
    (``per_image.csv`` streamed, then ``mean.csv``, ``rate_distortion.png``, ``summary.md``).

    Args:
        cfg: what to measure; or give its fields as keywords (``settings``).
        out: root folder of the results.
        progress: show a progress bar.
    """
    cfg = resolve_config(RateDistortionConfig, cfg, settings)
    images = load_images(cfg.data, cfg.crop, cfg.max_images)
    res = ResultsDir.create("rate_distortion",
                            {**config_dict(cfg), "num_images": images.shape[0]}, cfg.seed,
                            root=out)
    with res:
        result = measure_rate_distortion(
            cfg, images, progress=progress,
            on_rows=lambda rows: res.write_csv("per_image.csv", rows))
        write_rate_distortion_report(result, res)
    return res


#: ``python -m experiments.recipes.rate_distortion`` = ``semcom rate-distortion``.
main = entry_point("rate-distortion")


if __name__ == "__main__":
    raise SystemExit(main())
