"""The best-MCS envelope of JPEG2000 + 5G LDPC on an image set, searching MCSs near link
adaptation's choice only.

    python -m experiments.recipes.digital_envelope --data ../shared/datasets/cbsd68 --crop 256 \\
        --snr-db 0:20:5 --window 2 [--cbr 0.0833] [--out results]

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

import argparse

import torch
from tqdm.auto import tqdm

import phy
from experiments.recipes.eval_images import load_images
from experiments.reporting.results import ResultsDir
from jscc.baselines import JPEG2000LDPC, JPEG2000Capacity, best_mcs_envelope
from jscc.metrics import psnr

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments.recipes.digital_envelope",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="image folder or 'builtin'")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--snr-db", default="0:20:5")
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--cbr", type=float, default=1 / 12)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results")
    a = p.parse_args(argv)
    if a.crop < 1 or a.window < 0:
        raise SystemExit("--crop must be >= 1 and --window >= 0")
    snrs = phy.parse_snr_range(a.snr_db)
    images = load_images(a.data, a.crop, a.max_images)
    res = ResultsDir.create("digital_envelope", {**vars(a), "num_images": images.shape[0]},
                            a.seed, root=a.out)
    rows, lines = [], ["| SNR (dB) | best MCS | PSNR (dB) | delivered | inside window | "
                       "capacity bound (dB) |", "|---|---|---|---|---|---|"]
    with res:
        phy.set_seed(a.seed)
        cap = JPEG2000Capacity(a.cbr)
        for s in snrs:
            centre = phy.select_mcs(float(s), target_bler=0.1, channel="awgn")
            c = 0 if centre is None else centre.index
            cands = range(max(0, c - a.window), min(28, c + a.window) + 1)
            per = {}
            for m in tqdm(cands, desc=f"{s:g} dB"):
                r = JPEG2000LDPC(phy.AWGN(), m, a.cbr).transmit(images, float(s))
                per[m] = r
                rows.append({"snr_db": float(s), "mcs": m, "psnr": float(r.psnr.mean()),
                             "delivered": sum(x == "ok" for x in r.reason) / len(r.reason)})
                res.write_csv("envelope.csv", rows)  # streamed: one row per MCS
            best, value = best_mcs_envelope({m: v.psnr.mean() for m, v in per.items()})
            deliv = sum(x == "ok" for x in per[best].reason) / images.shape[0]
            # below the window: fewer bits, so no better once the best delivers every image;
            # above it: more bits, so the window must reach past the best
            inside = (best > min(cands) or best == 0 or deliv == 1.0) and (
                best < max(cands) or best == 28)
            bound = float(psnr(cap.transmit(images, float(s)).img_hat, images).mean())
            lines.append(f"| {s:g} | {best} | {value:.2f} | {deliv:.2f} | {inside} | "
                         f"{bound:.2f} |")
            print(lines[-1], flush=True)
        text = (f"# JPEG2000 + 5G LDPC best-MCS envelope (AWGN, CBR {a.cbr:.4f}, "
                f"{images.shape[0]} images from {a.data}, crop {a.crop})\n\n"
                + "\n".join(lines) + "\n")
        res.write_summary(text)
    print(text)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
