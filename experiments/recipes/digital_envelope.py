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

from pathlib import Path

import torch
from tqdm.auto import tqdm

import phy
from experiments.cli import entry_point
from experiments.recipes.eval_images import load_images
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, PositiveInt
from jscc.baselines import JPEG2000LDPC, JPEG2000Capacity, best_mcs_envelope
from jscc.metrics import psnr

__all__ = ["main", "run_digital_envelope"]


def run_digital_envelope(*, data: str = "builtin", crop: PositiveInt | None = 256,
                         snr_db: FloatGrid = FloatGrid((0.0, 5.0, 10.0, 15.0, 20.0)),
                         window: int = 2, cbr: float = 1 / 12,
                         max_images: PositiveInt | None = None, seed: int = 0,
                         out: str | Path = "results") -> ResultsDir:
    """Find the best MCS per SNR near link adaptation's choice and write the results folder.

    Args:
        data: ``builtin`` or an image folder.
        crop: centre crop size in pixels (None: whole images).
        snr_db: Es/N0 grid in dB (``start:stop:step`` or ``a,b,c``).
        window: MCS indices searched on each side of :func:`phy.select_mcs`'s choice (>= 0).
        cbr: channel bandwidth ratio (complex channel uses per source dimension).
        max_images: use at most this many images.
        seed: seed of the link noise.
        out: root folder of the results.
    """
    snrs = [float(s) for s in FloatGrid.parse(snr_db)]
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be an int >= 0 (MCS indices), got {window!r}")
    if not 0 < cbr <= 1:
        raise ValueError(f"cbr must be in (0, 1], got {cbr!r}")
    images = load_images(data, crop, max_images)
    config = {"data": data, "crop": crop, "snr_db": snrs, "window": window, "cbr": cbr,
              "max_images": max_images, "num_images": images.shape[0]}
    res = ResultsDir.create("digital_envelope", config, seed, root=out)
    rows, lines = [], ["| SNR (dB) | best MCS | PSNR (dB) | delivered | inside window | "
                       "capacity bound (dB) |", "|---|---|---|---|---|---|"]
    with res, torch.no_grad():
        phy.set_seed(seed)
        cap = JPEG2000Capacity(cbr)
        for s in snrs:
            centre = phy.select_mcs(s, target_bler=0.1, channel="awgn")
            c = 0 if centre is None else centre.index
            cands = range(max(0, c - window), min(28, c + window) + 1)
            per = {}
            for m in tqdm(cands, desc=f"{s:g} dB"):
                r = JPEG2000LDPC(phy.AWGN(), m, cbr).transmit(images, s)
                per[m] = r
                rows.append({"snr_db": s, "mcs": m, "psnr": float(r.psnr.mean()),
                             "delivered": sum(x == "ok" for x in r.reason) / len(r.reason)})
                res.write_csv("envelope.csv", rows)  # streamed: one row per MCS
            best, value = best_mcs_envelope({m: v.psnr.mean() for m, v in per.items()})
            deliv = sum(x == "ok" for x in per[best].reason) / images.shape[0]
            # below the window: fewer bits, so no better once the best delivers every image;
            # above it: more bits, so the window must reach past the best
            inside = (best > min(cands) or best == 0 or deliv == 1.0) and (
                best < max(cands) or best == 28)
            bound = float(psnr(cap.transmit(images, s).img_hat, images).mean())
            lines.append(f"| {s:g} | {best} | {value:.2f} | {deliv:.2f} | {inside} | "
                         f"{bound:.2f} |")
        res.write_summary(f"# JPEG2000 + 5G LDPC best-MCS envelope (AWGN, CBR {cbr:.4f}, "
                          f"{images.shape[0]} images from {data}, crop {crop})\n\n"
                          + "\n".join(lines) + "\n")
    return res


#: ``python -m experiments.recipes.digital_envelope`` = ``semcom digital-envelope``.
main = entry_point("digital-envelope")


if __name__ == "__main__":
    raise SystemExit(main())
