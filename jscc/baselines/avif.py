"""AVIF (AV1 intra, libavif through Pillow) coded to an exact byte budget.

Pillow writes AVIF with libavif (and its AV1 encoder) when built with it
(``PIL.features.check("avif")``). 4:2:0 chroma. As for HEVC, the file's ISOBMFF boxes are sent
deflate-coded against a template (:mod:`jscc.baselines.isobmff`).

**Rate control.** Pillow's ``quality`` (0..100, mapped by libavif onto the AV1 quantizer) is
bisected for the largest stream that fits: about 7 encodes. It is never above the budget; the
quality steps are coarser than HEVC's search (on CBSD68's 256x256 crops: 96 % fill on average,
69 % of the streams above 95 %, the worst 86 %), and the smallest AVIF stream (~1 KB at
256x256) does not fit 0.125 bpp for some images.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
from PIL import Image, features

from .isobmff import decode_picture, header_dictionary, pack
from .jpeg2000 import to_uint8_hwc

__all__ = ["AVIFDecodeError", "decode", "encode", "encode_to_budget"]

QUALITY_MAX = 100


class AVIFDecodeError(ValueError):
    """The bytes are not a decodable AVIF picture of the expected size."""


def _check_avif() -> None:
    if not features.check("avif"):  # pragma: no cover - the pinned Pillow wheels have it
        raise RuntimeError("this Pillow has no AVIF support (Pillow >= 11.3 wheels include "
                           "libavif); the AVIF baseline needs it")


def _encode_raw(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="AVIF", quality=int(quality), subsampling="4:2:0")
    return buf.getvalue()


@functools.lru_cache(maxsize=16)
def _template(height: int, width: int) -> bytes:
    return header_dictionary(_encode_raw(np.full((height, width, 3), 128, np.uint8), 0))


def encode(img: np.ndarray | torch.Tensor, quality: int) -> bytes:
    """One AVIF picture at ``quality`` (0..100), packed for the link."""
    _check_avif()
    if isinstance(quality, bool) or not 0 <= int(quality) <= QUALITY_MAX:
        raise ValueError(f"quality must be in [0, {QUALITY_MAX}], got {quality!r}")
    arr = to_uint8_hwc(img)
    return pack(_encode_raw(arr, quality), _template(*arr.shape[:2]))


def encode_to_budget(img: np.ndarray | torch.Tensor, budget_bytes: int) -> bytes | None:
    """The largest stream of at most ``budget_bytes``, or ``None`` when even quality 0 does
    not fit."""
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 0:
        raise ValueError(f"budget_bytes must be an int >= 0, got {budget_bytes!r}")
    arr = to_uint8_hwc(img)
    best = encode(arr, 0)
    if len(best) > budget_bytes:
        return None
    lo, hi = 0, QUALITY_MAX + 1  # quality lo fits, hi does not (or is past the range)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        s = encode(arr, mid)
        if len(s) <= budget_bytes:
            lo, best = mid, s
        else:
            hi = mid
    return best


def _open_rgb(f: io.BytesIO) -> Image.Image:
    im = Image.open(f)
    im.load()
    return im.convert("RGB")


def decode(data: bytes, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """``[3, H, W]`` float32 in [0, 1] from a packed stream (zero padding allowed)."""
    return decode_picture(data, shape, _template, _open_rgb, AVIFDecodeError)
