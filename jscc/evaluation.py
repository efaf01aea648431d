"""PSNR and MS-SSIM of a JSCC codec over an analog link, on crops or whole images.

:func:`evaluate_codec` is the measurement behind the model cards of :mod:`jscc.pretrained` and
the quickstart. Whole images whose sides are not multiples of the codec's downsampling factor
are reflect-padded to the next multiple (:func:`pad_to_multiple`); the metrics are computed on
the original pixels only and the padded area is counted in the channel uses (the CBR of such an
image is slightly above the nominal one; the rows report the channel uses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import phy

from .metrics import ms_ssim, psnr

__all__ = ["CodecScore", "evaluate_codec", "pad_to_multiple"]


def pad_to_multiple(img: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``[B, 3, H, W]`` on the bottom and right to multiples of ``multiple``;
    returns the padded batch and the original ``(H, W)``."""
    h, w = int(img.shape[-2]), int(img.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return img, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(img, (0, pw, 0, ph), mode=mode), (h, w)


@dataclass(frozen=True)
class CodecScore:
    """Mean metrics of one SNR point.

    Attributes:
        snr_db: channel SNR (Es/N0, dB).
        psnr: mean PSNR over the images (dB).
        msssim: mean MS-SSIM over the images.
        channel_uses: complex channel uses per image, averaged over the images.
        num_images: images evaluated.
    """

    snr_db: float
    psnr: float
    msssim: float
    channel_uses: float
    num_images: int


#: ``fn(img, link, snr_db) -> (img_hat, AnalogResult)``, e.g. ``codec.transmit``.
TransmitFn = Callable[[torch.Tensor, phy.AnalogLink, float], tuple[torch.Tensor, phy.AnalogResult]]


@torch.no_grad()
def evaluate_codec(transmit: TransmitFn, images: torch.Tensor | Sequence[torch.Tensor],
                   link: phy.AnalogLink, snr_db: Sequence[float], *, multiple: int = 4,
                   batch_size: int = 16, seed: int = 0,
                   progress: Callable[[int], None] | None = None) -> list[CodecScore]:
    """Mean PSNR / MS-SSIM of ``transmit`` at every SNR.

    Args:
        transmit: the system, e.g. ``codec.transmit`` or ``JSCCWithCDDM(...).transmit``.
        images: ``[N, 3, H, W]`` in [0, 1], or a sequence of ``[3, H, W]`` images of different
            sizes (whole images: evaluated one at a time).
        link: the analog link (its channel sets the channel model).
        snr_db: SNRs (dB).
        multiple: pad images to multiples of this (the codec's downsampling factor).
        batch_size: images per call for a stacked batch.
        seed: ``phy.set_seed(seed)`` before each SNR, so every SNR sees the same noise stream.
        progress: called with the number of images done after every call.
    """
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ValueError(f"images must be [N, 3, H, W] or a list of [3, H, W], got shape "
                             f"{tuple(images.shape)}")
        batches = [images[i:i + batch_size] for i in range(0, images.shape[0], batch_size)]
    else:
        batches = [im[None] for im in images]
    if not batches:
        raise ValueError("images is empty")
    scores = []
    for s in snr_db:
        phy.set_seed(seed)
        p, m, uses, n = [], [], 0.0, 0
        for x in batches:
            xp, (h, w) = pad_to_multiple(x, multiple)
            x_hat, r = transmit(xp, link, float(s))
            x_hat = x_hat[..., :h, :w].clamp(0, 1)
            p += psnr(x_hat, x).tolist()
            m += ms_ssim(x_hat, x).tolist()
            uses += float(r.channel_uses) * x.shape[0]  # channel uses per example
            n += x.shape[0]
            if progress is not None:
                progress(x.shape[0])
        scores.append(CodecScore(float(s), sum(p) / n, sum(m) / n, uses / n, n))
    return scores
