"""The codec interface every JSCC model implements.

A codec maps images ``[B, 3, H, W]`` with values in [0, 1] to a real latent ``z`` (any shape
``[B, ...]``), sends ``z`` through a :class:`phy.AnalogLink` (which packs pairs of reals into
complex symbols and normalizes their power per image) and decodes the received latent.

Channel bandwidth ratio (CBR) = complex channel uses / source dimensions
``= ceil(numel(z[0]) / 2) / (3 H W)``; :meth:`JSCCCodec.cbr` computes it for an image size.
"""

from __future__ import annotations

import torch
from torch import nn

from phy import AnalogLink, AnalogResult

__all__ = ["JSCCCodec", "as_float_images"]

#: Float dtypes converted to float32 by :func:`as_float_images`.
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Float images may stray this far outside [0, 1] (rounding) before they are refused.
_RANGE_SLACK = 1e-3


def as_float_images(img: torch.Tensor, name: str = "img") -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 is divided by 255, float16 / bfloat16 / float64 are
    converted; float values outside [0, 1] (beyond rounding) and other dtypes are refused."""
    if not isinstance(img, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [B, 3, H, W], got {type(img).__name__}")
    if img.dtype == torch.uint8:
        return img.to(torch.float32).div_(255.0)
    if img.dtype not in _FLOATS:
        raise ValueError(f"{name} must be uint8 (0-255) or float (0-1) images, got dtype "
                         f"{img.dtype}")
    out = img if img.dtype == torch.float32 else img.to(torch.float32)
    if out.numel():
        lo, hi = float(out.min()), float(out.max())
        if not (lo >= -_RANGE_SLACK and hi <= 1 + _RANGE_SLACK):
            raise ValueError(f"{name} holds float values in [{lo:.4g}, {hi:.4g}]; float images "
                             "must lie in [0, 1] (pass uint8 for 0-255 images)")
    return out


class JSCCCodec(nn.Module):
    """Base class: ``encode``/``decode`` are the model; ``forward`` puts the PHY between them.

    Subclasses implement :meth:`encode` and :meth:`decode`. ``snr_db`` is the channel SNR
    (Es/N0, dB) as a float or a ``[B]`` tensor; SNR-adaptive codecs use it, others ignore it.
    """

    #: True if the codec conditions on the SNR (it then needs ``snr_db`` in encode/decode).
    snr_adaptive: bool = False

    def encode(self, img: torch.Tensor, snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z_hat: torch.Tensor,
               snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def latent_shape(self, image_shape: tuple[int, int]) -> tuple[int, ...]:
        """Latent shape (without batch) for an image of ``(H, W)`` pixels."""
        with torch.no_grad():
            z = self.encode(torch.zeros(1, 3, *image_shape), 10.0)
        return tuple(z.shape[1:])

    def cbr(self, image_shape: tuple[int, int]) -> float:
        """Complex channel uses per source dimension for ``(H, W)`` RGB images."""
        d = 1
        for s in self.latent_shape(image_shape):
            d *= s
        return ((d + 1) // 2) / (3 * image_shape[0] * image_shape[1])

    def transmit(self, img: torch.Tensor, link: AnalogLink,
                 snr_db: float | torch.Tensor) -> tuple[torch.Tensor, AnalogResult]:
        """Encoder → link → decoder; returns the image and the link's result."""
        z = self.encode(img, snr_db)
        r = link.send(z, snr_db)
        return self.decode(r.z_hat.to(img.device), snr_db), r

    def forward(self, img: torch.Tensor, link: AnalogLink,
                snr_db: float | torch.Tensor) -> torch.Tensor:
        return self.transmit(img, link, snr_db)[0]
