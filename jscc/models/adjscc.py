"""ADJSCC: attention deep JSCC that adapts to the channel SNR (Xu et al., IEEE TCSVT 2022).

The backbone is :class:`jscc.models.deepjscc.ConvJSCC` (GDN/IGDN, PReLU); an
attention-feature (AF) module follows every hidden encoder and decoder stage:

    context = [global average pool of x (C values), side information (S values)]
    weights = sigmoid(W2 · relu(W1 · context))      W1: (C+S) → max(8, C/16), W2: → C
    x       = x · weights                          (channel-wise scaling)

The side information is the SNR, normalized to ``(snr_db - lo) / (hi - lo)`` with
``snr_range_db = (lo, hi)`` (``snr_db / 20`` for the default range 0–20 dB; SNRs outside the
range extrapolate linearly). With ``use_csi=True`` the decoder's AF modules also get the
per-image channel-gain statistic ``mean |h|^2`` over the latent's channel uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from phy import AnalogLink, AnalogResult

from .deepjscc import ConvJSCC
from .registry import register_codec

__all__ = ["ADJSCC", "AFModule"]


class AFModule(nn.Module):
    """Attention-feature module: channel-wise scaling from pooled features and side info.

    Args:
        channels: feature channels ``C`` of the input ``x`` ``[B, C, H, W]``.
        side_dim: length ``S`` of the side information ``[B, S]`` (e.g. 1 for the SNR).
        reduction: hidden width is ``max(min_hidden, C // reduction)`` (16 in the paper).
        min_hidden: lower bound of the hidden width (default 8): with narrow features a
            single hidden ReLU unit is often dead at initialization, which makes the module
            ignore the SNR. The paper's 256 filters give 16 either way.
    """

    def __init__(self, channels: int, side_dim: int, reduction: int = 16,
                 min_hidden: int = 8) -> None:
        super().__init__()
        self.side_dim = side_dim
        hidden = max(min_hidden, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels + side_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
        if side is None or side.shape != (x.shape[0], self.side_dim):
            got = None if side is None else tuple(side.shape)
            raise ValueError(f"AF module needs side information [B, {self.side_dim}], got {got}")
        context = torch.cat([x.mean(dim=(2, 3)), side.to(x.dtype)], dim=1)
        return x * self.mlp(context)[:, :, None, None]


def _per_example(name: str, value: float | torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """A float or a ``[B]`` / ``[B, 1]`` tensor → ``[B, 1]`` on ``ref``'s device and dtype."""
    b = ref.shape[0]
    t = torch.as_tensor(value, dtype=ref.dtype).to(ref.device)
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() == 0:
        t = t.expand(b)
    if t.shape != (b,):
        raise ValueError(
            f"{name} must be a float or one value per example (shape [{b}]), got shape "
            f"{tuple(t.shape)}"
        )
    return t[:, None]


@register_codec("adjscc")
class ADJSCC(ConvJSCC):
    """SNR-adaptive CNN JSCC: the backbone of :class:`~jscc.models.deepjscc.DeepJSCC` plus AF
    modules that condition every hidden stage on the SNR (one model for a range of SNRs).

    ``CBR = C · (H/f)(W/f) / 2 / (3HW) = C / (6 f²)`` with ``f = 2^s`` as for DeepJSCC
    (``C / 96`` for the paper's ``s = 2``).

    Args:
        cbr: channel bandwidth ratio, a multiple of ``1/(6 f²)`` (``C = 6 f² · cbr`` latent
            channels; 1/96 steps for the default ``f = 4``).
        snr_range_db: ``(lo, hi)`` training SNR range (Es/N0, dB); the AF modules see
            ``(snr_db - lo) / (hi - lo)``.
        use_csi: also feed the decoder's AF modules the per-image ``mean |h|^2`` over the
            latent's channel uses (``decode(..., csi=...)``; :meth:`transmit` computes it from
            the link's ``h``). Without ``csi`` the decoder assumes ``mean |h|^2 = 1``.
        num_filters, num_blocks, kernel_size, first_kernel_size: backbone, as for DeepJSCC
            (the paper: 256 filters, first kernel 9).
        af_reduction: AF hidden width is ``max(8, channels // af_reduction)`` (paper: 16).
        downsampling_stages: number of stride-2 stages ``s`` (default 2 as in the paper,
            ``CBR = C/96``; 4 gives a ÷16 latent with ``CBR = C/1536``).

    ``snr_db`` (float or ``[B]`` tensor) is required by :meth:`encode` and :meth:`decode`.
    """

    snr_adaptive = True

    def __init__(self, cbr: float = 1 / 12, snr_range_db: tuple[float, float] = (0.0, 20.0),
                 use_csi: bool = False, num_filters: int | Sequence[int] = 64,
                 num_blocks: int | None = None, kernel_size: int = 5,
                 first_kernel_size: int = 5, af_reduction: int = 16,
                 downsampling_stages: int = 2) -> None:
        lo, hi = (float(v) for v in snr_range_db)
        if not lo < hi:
            raise ValueError(f"snr_range_db must be (low, high) with low < high, got "
                             f"{snr_range_db!r}")
        if isinstance(af_reduction, bool) or not isinstance(af_reduction, int) or af_reduction < 1:
            raise ValueError(f"af_reduction must be a positive int, got {af_reduction!r}")
        dec_side = 2 if use_csi else 1
        super().__init__(
            cbr, num_filters, num_blocks, kernel_size, first_kernel_size,
            encoder_hook=lambda ch: AFModule(ch, 1, af_reduction),
            decoder_hook=lambda ch: AFModule(ch, dec_side, af_reduction),
            downsampling_stages=downsampling_stages,
        )
        self.snr_range_db = (lo, hi)
        self.use_csi = bool(use_csi)

    def normalized_snr(self, snr_db: float | torch.Tensor | None,
                       ref: torch.Tensor) -> torch.Tensor:
        """``(snr_db - lo) / (hi - lo)`` as ``[B, 1]`` (``B = ref.shape[0]``)."""
        if snr_db is None:
            raise ValueError("ADJSCC is SNR-adaptive: pass snr_db (float or [B] tensor, dB)")
        lo, hi = self.snr_range_db
        return (_per_example("snr_db", snr_db, ref) - lo) / (hi - lo)

    @staticmethod
    def csi_from_h(h: torch.Tensor) -> torch.Tensor:
        """Per-image CSI statistic: ``mean |h|^2`` over the channel uses, ``[B, n]`` → ``[B]``."""
        return (h.real.square() + h.imag.square()).reshape(h.shape[0], -1).mean(dim=1)

    def _encoder_side(self, img: torch.Tensor,
                      snr_db: float | torch.Tensor | None) -> torch.Tensor:
        return self.normalized_snr(snr_db, img)

    def _decoder_side(self, z_hat: torch.Tensor, snr_db: float | torch.Tensor | None,
                      csi: float | torch.Tensor | None = None) -> torch.Tensor:
        side = self.normalized_snr(snr_db, z_hat)
        if not self.use_csi:
            if csi is not None:
                raise ValueError("csi was given but this ADJSCC was built with use_csi=False")
            return side
        csi_t = _per_example("csi", 1.0 if csi is None else csi, z_hat)
        return torch.cat([side, csi_t], dim=1)

    def decode(self, z_hat: torch.Tensor, snr_db: float | torch.Tensor | None = None,
               csi: float | torch.Tensor | None = None) -> torch.Tensor:
        """Received latent → images; ``csi``: per-image ``mean |h|^2`` (float or ``[B]``),
        used only with ``use_csi=True`` (default 1)."""
        self._check_latent(z_hat)
        return self.decoder(z_hat, self._decoder_side(z_hat, snr_db, csi))

    def transmit(self, img: torch.Tensor, link: AnalogLink,
                 snr_db: float | torch.Tensor) -> tuple[torch.Tensor, AnalogResult]:
        """Encoder → link → decoder; with ``use_csi`` the decoder gets ``csi_from_h(r.h)``."""
        z = self.encode(img, snr_db)
        r = link.send(z, snr_db)
        csi = self.csi_from_h(r.h.to(img.device)) if self.use_csi else None
        return self.decode(r.z_hat.to(img.device), snr_db, csi=csi), r
