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
from experiments.reporting.plots import finish_axes
from jscc.baselines import best_mcs_envelope
from jscc.systems import ImageSystem

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
    """All curves on ``images`` ``[N, 3, H, W]`` over AWGN (see the module docstring), every
    one from a :func:`jscc.systems.build_system` image system.

    ``cddm_snr_db`` (default ``snr_db``) is the grid of the JSCC + CDDM curve: its sampler
    costs tens of network passes per image, so it may be coarser. The analog systems are
    seeded with ``seed`` before each SNR (every SNR sees the same noise stream); the digital
    ones once, before the whole digital sweep.
    """
    import cddm  # noqa: F401  (registers the jscc+cddm image system)
    from cddm import pretrained as cddm_pretrained
    from jscc import pretrained as jscc_pretrained
    from jscc.systems import build_system

    say = progress or (lambda _msg: None)
    out: list[CurvePoint] = []
    plain = build_system("jscc", channel="awgn", cbr=cbr, codec=jscc_pretrained.PRETRAINED_PREFIX
                         + jscc_pretrained.find(codec, cbr, "awgn"))
    say("pretrained JSCC")
    for s in snr_db:
        phy.set_seed(seed)
        out.append(CurvePoint("jscc", float(s), plain.transmit(images, float(s)).mean_psnr))
    cddm_name = cddm_pretrained.find(codec, cbr, "awgn")
    systems: dict[float, ImageSystem] = {}  # one pipeline per shipped stage-3 decoder
    for s in (cddm_snr_db if cddm_snr_db is not None else snr_db):
        say(f"JSCC + CDDM at {s:g} dB")
        nearest = cddm_pretrained.nearest_decoder_snr(cddm_name, s)
        if nearest not in systems:
            systems[nearest] = build_system("jscc+cddm", channel="awgn", cbr=cbr, codec=codec,
                                            snr_db=s)
        phy.set_seed(seed)
        r = systems[nearest].transmit(images, float(s))
        out.append(CurvePoint("jscc+cddm", float(s), r.mean_psnr,
                              note=f"decoder {nearest:g} dB"))
    phy.set_seed(seed)
    digital = {m: build_system("jpeg2000+ldpc", channel=phy.AWGN(), cbr=cbr, mcs=m)
               for m in mcs}
    capacity = build_system("jpeg2000+capacity", cbr=cbr)
    for s in snr_db:
        say(f"JPEG2000 + LDPC at {s:g} dB")
        per_mcs = {}
        for m, system in digital.items():
            r = system.transmit(images, float(s))
            per_mcs[f"MCS{m}"] = r.mean_psnr
            out.append(CurvePoint(f"jpeg2000+ldpc/MCS{m}", float(s), r.mean_psnr,
                                  delivered=float(r.delivered.float().mean())))
        best, value = best_mcs_envelope(per_mcs)
        out.append(CurvePoint("jpeg2000+ldpc/best-mcs", float(s), float(value), note=str(best)))
        out.append(CurvePoint("jpeg2000+capacity", float(s),
                              capacity.transmit(images, float(s)).mean_psnr))
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
    finish_axes(ax, "SNR $E_s/N_0$ (dB)", "PSNR (dB)", title, title_size=9,
                legend={"fontsize": 7, "ncol": 2, "loc": "lower right"})
    fig.tight_layout()
    return fig
