"""Per-image quality metrics for JSCC: MSE, PSNR and MS-SSIM.

All functions take ``img`` (the reconstruction) and ``ref`` (the original), float tensors
``[B, C, H, W]`` (or one image ``[C, H, W]``, treated as ``B = 1``) of the same shape with
values in ``[0, data_range]``, and return one value per image, a ``[B]`` tensor, so callers
average over a batch or a whole test set themselves (``psnr(x_hat, x).mean()`` is the mean
PSNR, not the PSNR of the mean MSE; :func:`batch_mean` averages and :func:`psnr_from_mse`
converts). ``ref`` must lie in ``[0, data_range]`` (1e-3 · ``data_range`` of slack), ``img``
may stray outside (an unclamped decoder); half precision is computed in float32. All are
differentiable, so MS-SSIM can be a training loss.

MS-SSIM by image size (``s`` = the smaller of H and W), see :func:`msssim_method`:

* ``s > 160``: ``"ms_ssim_5"``, :func:`pytorch_msssim.ms_ssim`, the standard 5-scale index
  (11-tap Gaussian window, σ = 1.5, valid convolution, weights 0.0448, 0.2856, 0.3001,
  0.2363, 0.1333). pytorch_msssim needs ``s > 160``.
* ``24 <= s <= 160``: ``"ms_ssim_3"``, torchmetrics'
  ``multiscale_structural_similarity_index_measure`` with 3 scales, ``kernel_size=3`` and
  the first three standard weights renormalised to sum to 1 (0.0709, 0.4531, 0.4760), so the
  value is a weighted geometric mean like the 5-scale index (ReLU on negative terms). Note:
  with its default Gaussian window torchmetrics only uses ``kernel_size`` for its size check;
  it filters with an 11-tap Gaussian, σ = 1.5, on reflect-padded images, so the coarsest
  scale (s/4) must be at least 6 pixels.
* ``6 <= s < 24``: ``"ssim"``, single-scale SSIM (torchmetrics, same 11-tap Gaussian window,
  reflect padding).
* ``s < 6``: ValueError.

Values from different methods are not comparable; compare images of one size.
"""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim as _pm_ms_ssim
from torch import Tensor
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure as _tm_ms_ssim,
)
from torchmetrics.functional.image import structural_similarity_index_measure as _tm_ssim

__all__ = [
    "MSSSIM_WEIGHTS",
    "PSNR_MAX_DB",
    "batch_mean",
    "ms_ssim",
    "mse",
    "msssim_method",
    "psnr",
    "psnr_from_mse",
]

#: PSNR of identical images (and the cap for any MSE below ``data_range² · 10^(-10)``).
PSNR_MAX_DB = 100.0

#: The standard 5-scale MS-SSIM weights (Wang, Simoncelli, Bovik 2003).
MSSSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_W3 = tuple(w / sum(MSSSIM_WEIGHTS[:3]) for w in MSSSIM_WEIGHTS[:3])

_MIN_SIDE_5 = 161  # pytorch_msssim: smaller side > (11 - 1) * 2**4
_MIN_SIDE_3 = 24   # torchmetrics, 3 scales: smaller side // 4 >= 6 (reflect pad of 5)
_MIN_SIDE_SSIM = 6  # torchmetrics SSIM: reflect pad of 5 < side
_RANGE_SLACK = 1e-3


def _prepare(img: Tensor, ref: Tensor, data_range: float) -> tuple[Tensor, Tensor]:
    if not isinstance(img, Tensor) or not isinstance(ref, Tensor):
        raise TypeError(f"img and ref must be tensors, got {type(img).__name__} and "
                        f"{type(ref).__name__}")
    if img.shape != ref.shape:
        raise ValueError(f"img and ref must have the same shape, got {list(img.shape)} and "
                         f"{list(ref.shape)}")
    if img.ndim == 3:
        img, ref = img.unsqueeze(0), ref.unsqueeze(0)
    if img.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W] or [C, H, W], got shape "
                         f"{list(img.shape)}")
    if img.numel() == 0:
        raise ValueError(f"empty images, shape {list(img.shape)}")
    if not img.is_floating_point() or not ref.is_floating_point():
        raise ValueError(f"expected float images in [0, data_range], got {img.dtype} and "
                         f"{ref.dtype} (convert uint8 with x.float() / 255)")
    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range)
            and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    dtype = torch.promote_types(img.dtype, ref.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    img, ref = img.to(dtype), ref.to(dtype)
    lo, hi = torch.aminmax(ref.detach())
    slack = _RANGE_SLACK * data_range
    if not (lo.item() >= -slack and hi.item() <= data_range + slack):
        raise ValueError(f"ref values must lie in [0, {data_range:g}] (data_range), got "
                         f"[{lo.item():.4g}, {hi.item():.4g}]")
    return img, ref


def mse(img: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean squared error per image, ``[B]``."""
    img, ref = _prepare(img, ref, data_range)
    return (img - ref).square().flatten(1).mean(dim=1)


def psnr_from_mse(mse_value: Tensor, data_range: float = 1.0) -> Tensor:
    """``10 log10(data_range² / mse)`` in dB, capped at :data:`PSNR_MAX_DB`."""
    peak = float(data_range) ** 2
    floor = peak * 10.0 ** (-PSNR_MAX_DB / 10.0)
    return 10.0 * torch.log10(peak / mse_value.clamp_min(floor))


def psnr(img: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR per image in dB, ``[B]``: ``10 log10(data_range² / MSE)`` over all C·H·W values.

    Identical images (MSE below ``data_range² · 1e-10``) give :data:`PSNR_MAX_DB` = 100 dB
    instead of infinity, so means over a test set stay finite.
    """
    return psnr_from_mse(mse(img, ref, data_range), data_range)


def msssim_method(height: int, width: int) -> str:
    """Which index :func:`ms_ssim` computes for ``height × width`` images:
    ``"ms_ssim_5"``, ``"ms_ssim_3"`` or ``"ssim"`` (ValueError below 6 pixels)."""
    s = min(int(height), int(width))
    if s >= _MIN_SIDE_5:
        return "ms_ssim_5"
    if s >= _MIN_SIDE_3:
        return "ms_ssim_3"
    if s >= _MIN_SIDE_SSIM:
        return "ssim"
    raise ValueError(f"images of {height}x{width} pixels are too small for SSIM "
                     f"(the smaller side must be >= {_MIN_SIDE_SSIM})")


def ms_ssim(img: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """MS-SSIM per image, ``[B]`` (1 for identical images); the method depends on the image
    size as the module docstring lists (:func:`msssim_method`)."""
    img, ref = _prepare(img, ref, data_range)
    method = msssim_method(img.shape[-2], img.shape[-1])
    dr = float(data_range)
    if method == "ms_ssim_5":
        return _pm_ms_ssim(img, ref, data_range=dr, size_average=False, win_size=11,
                           weights=list(MSSSIM_WEIGHTS))
    if method == "ms_ssim_3":
        return _tm_ms_ssim(img, ref, data_range=dr, kernel_size=3, betas=_W3,
                           reduction="none", normalize="relu")
    return _tm_ssim(img, ref, data_range=dr, reduction="none")


def batch_mean(values: Tensor) -> float:
    """Mean of per-image values as a Python float (NaN for an empty tensor)."""
    v = values.detach().double()
    return float(v.mean()) if v.numel() else math.nan
