"""PSNR against SNR of the shipped JSCC and JSCC + CDDM against JPEG2000 + 5G LDPC.

The curves of the quickstart's main figure, computed in memory:

* ``jscc``: the pretrained codec (:func:`jscc.build_codec` with ``pretrained=True``) through
  :class:`phy.AnalogLink`;
* ``jscc+cddm``: :meth:`cddm.pipeline.JSCCWithCDDM.from_pretrained` (its stage-3 decoder
  nearest to each SNR);
* ``jpeg2000+ldpc/MCS<i>``: JPEG2000 at each MCS's budget over 5G LDPC (one transmission);
  ``jpeg2000+ldpc/best-mcs``: their envelope (:func:`jscc.baselines.best_mcs_envelope`);
* ``jpeg2000+capacity``: JPEG2000 at the Shannon budget (the separation bound).

A digital curve is a step function of the SNR (an MCS either decodes or does not), so the
plot draws it as steps: the value measured at a grid SNR holds up to the next grid point, and
the cliff shows as a vertical drop at the grid point where decoding starts to fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import phy
from jscc.baselines import JPEG2000LDPC, JPEG2000Capacity, best_mcs_envelope
from jscc.evaluation import evaluate_codec
from jscc.metrics import psnr

__all__ = ["CurvePoint", "plot_curves", "pretrained_curves"]


@dataclass(frozen=True)
class CurvePoint:
    """Mean PSNR (dB) of ``method`` at ``snr_db`` (dB); ``note`` holds e.g. the best MCS."""

    method: str
    snr_db: float
    psnr: float
    delivered: float = 1.0
    note: str = ""


def pretrained_curves(images: torch.Tensor, *, codec: str = "adjscc", cbr: float = 1 / 12,
                      snr_db: Sequence[float], cddm_snr_db: Sequence[float] | None = None,
                      mcs: Sequence[int] = (5, 9, 13, 17, 22), seed: int = 0,
                      progress: Callable[[str], None] | None = None) -> list[CurvePoint]:
    """All curves on ``images`` ``[N, 3, H, W]`` over AWGN (see the module docstring).

    ``cddm_snr_db`` (default ``snr_db``) is the grid of the JSCC + CDDM curve: its sampler
    costs tens of network passes per image, so it may be coarser.
    """
    from cddm import pretrained as cddm_pretrained
    from cddm.pipeline import JSCCWithCDDM
    from jscc import build_codec

    say = progress or (lambda _msg: None)
    out: list[CurvePoint] = []
    link = phy.AnalogLink(phy.AWGN())
    model = build_codec(codec, cbr=cbr, pretrained=True, channel="awgn")
    say("pretrained JSCC")
    for r in evaluate_codec(model.transmit, images, link, snr_db, seed=seed):
        out.append(CurvePoint("jscc", r.snr_db, r.psnr))
    cddm_name = cddm_pretrained.find(codec, cbr, "awgn")
    systems: dict[float, JSCCWithCDDM] = {}  # one pipeline per shipped stage-3 decoder
    for s in (cddm_snr_db if cddm_snr_db is not None else snr_db):
        say(f"JSCC + CDDM at {s:g} dB")
        nearest = cddm_pretrained.nearest_decoder_snr(cddm_name, s)
        if nearest not in systems:
            systems[nearest] = JSCCWithCDDM.from_pretrained(codec, cbr=cbr, channel="awgn",
                                                            snr_db=s)
        system = systems[nearest]
        r = evaluate_codec(system.transmit, images, link, [s], seed=seed)[0]
        out.append(CurvePoint("jscc+cddm", r.snr_db, r.psnr,
                              note=f"decoder {system.decoder_snr_db:g} dB"))
    phy.set_seed(seed)
    digital = {m: JPEG2000LDPC(phy.AWGN(), m, cbr) for m in mcs}
    capacity = JPEG2000Capacity(cbr)
    for s in snr_db:
        say(f"JPEG2000 + LDPC at {s:g} dB")
        per_mcs = {}
        for m, bl in digital.items():
            res = bl.transmit(images, float(s))
            per_mcs[f"MCS{m}"] = res
            out.append(CurvePoint(f"jpeg2000+ldpc/MCS{m}", float(s), float(res.psnr.mean()),
                                  delivered=sum(r == "ok" for r in res.reason) / len(res.reason)))
        best, value = best_mcs_envelope({k: v.psnr.mean() for k, v in per_mcs.items()})
        out.append(CurvePoint("jpeg2000+ldpc/best-mcs", float(s), float(value), note=str(best)))
        cap = capacity.transmit(images, float(s))
        out.append(CurvePoint("jpeg2000+capacity", float(s), float(psnr(cap.img_hat,
                                                                         images).mean())))
    return out


def plot_curves(points: Sequence[CurvePoint], title: str) -> plt.Figure:
    """JSCC lines with markers, digital curves as steps (see the module docstring)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    methods = list(dict.fromkeys(p.method for p in points))

    def xy(m: str) -> tuple[list[float], list[float]]:
        sel = sorted((p for p in points if p.method == m), key=lambda p: p.snr_db)
        return [p.snr_db for p in sel], [p.psnr for p in sel]

    for m in methods:
        x, y = xy(m)
        if m == "jscc":
            ax.plot(x, y, "o-", lw=2.2, color="C3", label="ADJSCC (pretrained)")
        elif m == "jscc+cddm":
            ax.plot(x, y, "D-", lw=1.8, color="C1", label="ADJSCC + CDDM (pretrained)")
        elif m == "jpeg2000+ldpc/best-mcs":
            ax.step(x, y, where="post", lw=2.2, color="k",
                    label="JPEG2000 + 5G LDPC, best MCS")
        elif m == "jpeg2000+capacity":
            ax.plot(x, y, "k:", lw=1.4, label="JPEG2000 + capacity (bound)")
        elif m.startswith("jpeg2000+ldpc/"):
            ax.step(x, y, where="post", lw=0.9, alpha=0.6, ls="--",
                    label=m.replace("jpeg2000+ldpc/", "JPEG2000+LDPC "))
    ax.set_xlabel("SNR $E_s/N_0$ (dB)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig
