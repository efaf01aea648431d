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

__all__ = ["JSCCCodec"]


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
