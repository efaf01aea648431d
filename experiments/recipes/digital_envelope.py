"""The best-MCS envelope of JPEG2000 + 5G LDPC on an image set, searching MCSs near link
adaptation's choice only.

    semcom digital-envelope --data ../shared/datasets/cbsd68 --crop 256 --snr_db 0:20:5 \\
        --window 2 [--cbr 0.0833] [--out results]

For a fixed bandwidth a higher MCS carries more bits, so a decoded image is better; the
envelope at SNR ``s`` is therefore set by the highest MCSs that still decode. Instead of
decoding every MCS at every SNR, this decodes the MCSs within ``window`` indices of
:func:`phy.select_mcs` at 10 % BLER (1024-bit blocks, AWGN), and reports whether the best
one lies strictly inside the window (``inside``): when it does, MCSs outside the window cannot
do better (below: fewer bits; above: the decoding fails more often). Every image is JPEG2000
coded to each MCS's budget and sent through :class:`phy.DigitalLink` (one transmission).
Writes ``envelope.csv`` (per SNR and MCS), ``summary.md`` and the usual manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import phy
from experiments.cli import entry_point
from experiments.recipes.config import config_dict, optional_positive_int, resolve_config
from experiments.recipes.eval_images import load_images
from experiments.reporting.digital_envelope import digital_envelope_summary
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, PositiveInt
from jscc.baselines import JPEG2000LDPC, JPEG2000Capacity, best_mcs_envelope
from jscc.metrics import psnr

__all__ = ["DigitalEnvelopeConfig", "DigitalEnvelopeResult", "find_digital_envelope", "main",
           "run_digital_envelope"]

_MAX_MCS = 28  # the highest index of the qam64 table


@dataclass(frozen=True)
class DigitalEnvelopeConfig:
    """What ``semcom digital-envelope`` searches (checked when built).

    Attributes:
        data: ``builtin`` or an image folder.
        crop: centre crop size in pixels (None: whole images).
        snr_db: Es/N0 grid in dB (``start:stop:step`` or ``a,b,c``).
        window: MCS indices searched on each side of :func:`phy.select_mcs`'s choice (>= 0).
        cbr: channel bandwidth ratio (complex channel uses per source dimension).
        max_images: use at most this many images.
        seed: seed of the link noise.
    """

    data: str = "builtin"
    crop: PositiveInt | None = 256
    snr_db: FloatGrid = FloatGrid((0.0, 5.0, 10.0, 15.0, 20.0))
    window: int = 2
    cbr: float = 1 / 12
    max_images: PositiveInt | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", FloatGrid.parse(self.snr_db))
        for name in ("crop", "max_images"):
            object.__setattr__(self, name, optional_positive_int(name, getattr(self, name)))
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 0:
            raise ValueError(f"window must be an int >= 0 (MCS indices), got {self.window!r}")
        if not 0 < self.cbr <= 1:
            raise ValueError(f"cbr must be in (0, 1], got {self.cbr!r}")


@dataclass
class DigitalEnvelopeResult:
    """The search of a :class:`DigitalEnvelopeConfig`.

    Attributes:
        config: what was searched.
        num_images: images evaluated.
        rows: one per (SNR, MCS) decoded: ``snr_db``, ``mcs``, mean ``psnr`` (dB),
            ``delivered`` (fraction of images).
        envelope: one per SNR: the best ``mcs``, its ``psnr`` and ``delivered``, ``inside``
            (the best lies strictly inside the window, so no MCS outside it does better) and
            ``capacity_psnr`` (dB, JPEG2000 at the capacity bound).
    """

    config: DigitalEnvelopeConfig
    num_images: int
    rows: list[dict]
    envelope: list[dict]


def find_digital_envelope(cfg: DigitalEnvelopeConfig, images: torch.Tensor, *,
                          on_rows: Callable[[list[dict]], Any] | None = None,
                          progress: bool = True) -> DigitalEnvelopeResult:
    """Decode the MCSs near link adaptation's choice at every SNR of ``cfg`` for ``images``
    (``[N, 3, H, W]`` in [0, 1]); ``on_rows`` gets the rows so far after each MCS."""
    rows: list[dict] = []
    envelope: list[dict] = []
    with torch.no_grad():
        phy.set_seed(cfg.seed)
        cap = JPEG2000Capacity(cfg.cbr)
        for s in (float(x) for x in cfg.snr_db):
            centre = phy.select_mcs(s, target_bler=0.1, channel="awgn")
            c = 0 if centre is None else centre.index
            cands = range(max(0, c - cfg.window), min(_MAX_MCS, c + cfg.window) + 1)
            per = {}
            for m in tqdm(cands, desc=f"{s:g} dB", disable=not progress):
                r = JPEG2000LDPC(phy.AWGN(), m, cfg.cbr).transmit(images, s)
                per[m] = r
                rows.append({"snr_db": s, "mcs": m, "psnr": float(r.psnr.mean()),
                             "delivered": sum(x == "ok" for x in r.reason) / len(r.reason)})
                if on_rows is not None:
                    on_rows(rows)
            best, value = best_mcs_envelope({m: v.psnr.mean() for m, v in per.items()})
            deliv = sum(x == "ok" for x in per[best].reason) / images.shape[0]
            # below the window: fewer bits, so no better once the best delivers every image;
            # above it: more bits, so the window must reach past the best
            inside = (best > min(cands) or best == 0 or deliv == 1.0) and (
                best < max(cands) or best == _MAX_MCS)
            bound = float(psnr(cap.transmit(images, s).img_hat, images).mean())
            envelope.append({"snr_db": s, "mcs": best, "psnr": float(value),
                             "delivered": deliv, "inside": inside, "capacity_psnr": bound})
    return DigitalEnvelopeResult(cfg, int(images.shape[0]), rows, envelope)


def run_digital_envelope(cfg: DigitalEnvelopeConfig | None = None, *,
                         out: str | Path = "results", progress: bool = True,
                         **settings: Any) -> ResultsDir:
    """``semcom digital-envelope``: :func:`find_digital_envelope` into a results folder
    (``envelope.csv`` streamed per SNR and MCS, ``summary.md``).

    Args:
        cfg: what to search; or give its fields as keywords (``settings``).
        out: root folder of the results.
        progress: show progress bars.
    """
    cfg = resolve_config(DigitalEnvelopeConfig, cfg, settings)
    images = load_images(cfg.data, cfg.crop, cfg.max_images)
    res = ResultsDir.create("digital_envelope",
                            {**config_dict(cfg), "num_images": images.shape[0]}, cfg.seed,
                            root=out)
    with res:
        result = find_digital_envelope(
            cfg, images, progress=progress,
            on_rows=lambda rows: res.write_csv("envelope.csv", rows))
        res.write_summary(digital_envelope_summary(result))
    return res


#: ``python -m experiments.recipes.digital_envelope`` = ``semcom digital-envelope``.
main = entry_point("digital-envelope")


if __name__ == "__main__":
    raise SystemExit(main())
