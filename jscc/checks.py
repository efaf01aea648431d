"""Input validation of :mod:`jscc` (generic checks are :mod:`phy.checks`)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_hyperpriors", "check_images", "check_odd_kernel"]


def check_hyperpriors(models: Any) -> list[Any]:
    """One CompressAI ``ScaleHyperprior`` or a non-empty sequence of them, as a list."""
    from compressai.models import ScaleHyperprior

    if isinstance(models, ScaleHyperprior):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one ScaleHyperprior")
    for m in models:
        if not isinstance(m, ScaleHyperprior):
            raise TypeError(f"models must be compressai ScaleHyperprior, got {type(m).__name__}")
    return models


def check_images(img: torch.Tensor) -> None:
    """A batch of images ``[B, 3, H, W]``, floating point, finite (values in [0, 1])."""
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"img must be a torch.Tensor [B, 3, H, W], got {type(img).__name__}")
    if img.dim() != 4 or img.shape[1] != 3 or img.shape[0] < 1:
        raise ValueError(f"img must have shape [B, 3, H, W] with B >= 1, got {tuple(img.shape)}")
    if not img.is_floating_point():
        raise ValueError(f"img must be floating point with values in [0, 1], got {img.dtype}")
    if not bool(torch.isfinite(img).all()):
        raise ValueError("img contains NaN/Inf")


def check_odd_kernel(name: str, k: int) -> int:
    """A convolution kernel size: a positive odd int."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"{name} must be a positive odd int, got {k!r}")
    return k
