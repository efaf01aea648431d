"""CNN deep JSCC (Bourtsoulatze, Kurka and Gündüz, IEEE TCCN 2019) with GDN layers.

This module also holds the convolutional backbone that :mod:`jscc.models.adjscc` reuses:
:class:`ConvEncoder` / :class:`ConvDecoder` are stacks of stages ``conv → (I)GDN → PReLU``
with an optional hook after each hidden stage (ADJSCC plugs its attention-feature modules
in there), and :class:`ConvJSCC` is the codec built on them.

Architecture (``num_filters=F`` as an int, ``num_blocks=n``, kernel ``k``, first kernel ``k0``,
``downsampling_stages=s``, default 2 as in the papers)::

    encoder: conv k0×k0 /2 (3→F)   → GDN → PReLU   [→ hook]
             (s-1) × (conv k×k /2 (F→F) → GDN → PReLU [→ hook])
             n × (conv k×k /1 (F→F) → GDN → PReLU  [→ hook])
             conv k×k   /1 (F→C)                    latent [B, C, H/2^s, W/2^s], real, linear
    decoder: convT k×k /1 (C→F)    → IGDN → PReLU  [→ hook]
             n × (convT k×k /1 (F→F) → IGDN → PReLU [→ hook])
             (s-1) × (convT k×k ×2 (F→F) → IGDN → PReLU [→ hook])
             convT k0×k0 ×2 (F→3)  → sigmoid        image in [0, 1]

``s = 4`` gives a ÷16 latent, the depth of the analysis/synthesis transforms of learned image
compression and of SwinJSCC (CBR 1/12 then needs ``C = 128``). On two CPU cores such a model
(128 filters, batch 8 of 128×128 crops, Adam 5e-4) learned far more slowly than the default
÷4 one: 21 dB on CBSD68 crops after 3000 steps (40 minutes), nearly the same at 0 and 20 dB;
it is meant for GPU-sized training.

GDN and inverse GDN are CompressAI's :class:`compressai.layers.GDN`. The latent is not
power-normalized here: :class:`phy.AnalogLink` normalizes each image's symbols to unit energy.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence

import torch

with warnings.catch_warnings():
    # CompressAI 1.2.6 warns about torch.jit.script / torch.cuda.amp at import; not ours.
    warnings.simplefilter("ignore", FutureWarning)
    from compressai.layers import GDN
from torch import nn

from phy.checks import check_positive_int

from ..checks import check_odd_kernel
from .base import JSCCCodec, as_float_images
from .registry import register_codec

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "ConvJSCC",
    "DeepJSCC",
    "latent_channels_for_cbr",
]

#: Builds the module that runs after a hidden stage with ``channels`` feature maps; it is
#: called as ``module(x, side)`` where ``side`` is the codec's side information ``[B, S]``.
HookFactory = Callable[[int], nn.Module]

#: Default number of stride-2 stages (the papers' backbone): a ÷4 latent.
DOWNSAMPLING_STAGES = 2
#: Spatial downsampling factor of the default backbone (two stride-2 convolutions).
DOWNSAMPLING = 2**DOWNSAMPLING_STAGES
#: Allowed numbers of stride-2 stages.
_STAGES_RANGE = (1, 6)


def cbr_denominator(downsampling_stages: int = DOWNSAMPLING_STAGES) -> int:
    """``2 · 3 · 4^s``: 2 reals per complex channel use × 3 colours × ``2^s × 2^s`` pixels per
    latent position, so that ``CBR = C / cbr_denominator(s)`` (96 for ``s = 2``, 1536 for 4)."""
    return 2 * 3 * 4 ** check_positive_int("downsampling_stages", downsampling_stages,
                                 minimum=_STAGES_RANGE[0], maximum=_STAGES_RANGE[1])


def latent_channels_for_cbr(cbr: float, downsampling_stages: int = DOWNSAMPLING_STAGES) -> int:
    """Number of latent channels ``C = D · cbr`` with ``D = 6 · 4^s`` (96 for the default two
    stride-2 stages); ValueError unless it is a positive integer.

    With ``s`` stride-2 downsamplings an ``H × W`` RGB image gives ``C · H · W / 4^s`` reals, i.e.
    ``C · H · W / (2 · 4^s)`` complex channel uses for ``3 · H · W`` source dimensions.
    """
    d = cbr_denominator(downsampling_stages)
    allowed = (f"allowed values are k/{d}, k = 1, 2, ..., e.g. 1/12 (C={d // 12}), "
               f"1/6 (C={d // 6})")
    if isinstance(cbr, bool) or not isinstance(cbr, numbers.Real) or not math.isfinite(cbr):
        raise ValueError(f"cbr must be a finite number C/{d}; {allowed}; got {cbr!r}")
    cbr = float(cbr)
    c = cbr * d
    c_int = round(c)
    if cbr <= 0 or c_int < 1 or abs(c - c_int) > 1e-6:
        raise ValueError(
            f"cbr must be C/{d} for a positive integer number of latent channels C "
            f"(CBR = C/{d} with {downsampling_stages} stride-2 downsamplings); {allowed}; got "
            f"cbr={cbr!r} ({d}·cbr = {c:.6g})"
        )
    return c_int



def _filter_list(num_filters: int | Sequence[int], num_blocks: int | None,
                 stages: int = DOWNSAMPLING_STAGES) -> list[int]:
    """Hidden-stage widths: an int F gives ``[F] * (stages + num_blocks)``; a sequence is used
    as is (its first ``stages`` entries are the stride-2 stages)."""
    if isinstance(num_filters, int) and not isinstance(num_filters, bool):
        blocks = 2 if num_blocks is None else num_blocks
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
            raise ValueError(f"num_blocks must be an int >= 0, got {num_blocks!r}")
        filters = [num_filters] * (stages + blocks)
    else:
        filters = list(num_filters)
        if len(filters) < stages:
            raise ValueError(
                "num_filters as a sequence needs one width per hidden encoder stage, at least "
                f"{stages} (the stride-2 stages), got {num_filters!r}"
            )
        if num_blocks is not None and num_blocks != len(filters) - stages:
            raise ValueError(
                f"num_blocks={num_blocks!r} contradicts num_filters={num_filters!r} "
                f"({len(filters) - stages} stride-1 stages); leave num_blocks out"
            )
    for f in filters:
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise ValueError(f"num_filters must hold positive ints, got {num_filters!r}")
    return filters


class _Stage(nn.Module):
    """``conv → (I)GDN → PReLU`` followed by an optional hook ``hook(x, side)``."""

    def __init__(self, conv: nn.Module, channels: int, inverse: bool,
                 hook: nn.Module | None) -> None:
        super().__init__()
        self.conv = conv
        self.gdn = GDN(channels, inverse=inverse)
        self.act = nn.PReLU(channels)
        self.hook = hook

    def forward(self, x: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
        x = self.act(self.gdn(self.conv(x)))
        if self.hook is not None:
            x = self.hook(x, side)
        return x


class ConvEncoder(nn.Module):
    """Image ``[B, 3, H, W]`` → real latent ``[B, C, H/2^s, W/2^s]`` (see the module docstring).

    Args:
        filters: width of each hidden stage; the first ``s`` have stride 2, the rest stride 1.
        latent_channels: ``C``.
        kernel_size: kernel of every convolution but the first.
        first_kernel_size: kernel of the first convolution.
        hook: optional factory of a module run after each hidden stage as ``m(x, side)``.
        downsampling_stages: ``s``, the number of stride-2 stages (default 2).
    """

    def __init__(self, filters: Sequence[int], latent_channels: int, kernel_size: int = 5,
                 first_kernel_size: int = 5, hook: HookFactory | None = None,
                 downsampling_stages: int = DOWNSAMPLING_STAGES) -> None:
        super().__init__()
        stages = []
        in_ch = 3
        for i, f in enumerate(filters):
            k = first_kernel_size if i == 0 else kernel_size
            conv = nn.Conv2d(in_ch, f, k, stride=2 if i < downsampling_stages else 1,
                             padding=k // 2)
            stages.append(_Stage(conv, f, inverse=False, hook=hook(f) if hook else None))
            in_ch = f
        self.stages = nn.ModuleList(stages)
        self.out = nn.Conv2d(in_ch, latent_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x, side)
        return self.out(x)


class ConvDecoder(nn.Module):
    """Latent ``[B, C, h, w]`` → image ``[B, 3, 2^s h, 2^s w]`` in [0, 1]; mirror of
    :class:`ConvEncoder`.

    Takes the encoder's ``filters`` (in encoder order) and mirrors them with transposed
    convolutions and inverse GDN; the last layer is a stride-2 transposed convolution to 3
    channels followed by a sigmoid.
    """

    def __init__(self, filters: Sequence[int], latent_channels: int, kernel_size: int = 5,
                 first_kernel_size: int = 5, hook: HookFactory | None = None,
                 downsampling_stages: int = DOWNSAMPLING_STAGES) -> None:
        super().__init__()
        filters = list(filters)
        n = len(filters)
        k = kernel_size
        conv = nn.ConvTranspose2d(latent_channels, filters[-1], k, stride=1, padding=k // 2)
        stages = [_Stage(conv, filters[-1], inverse=True, hook=hook(filters[-1]) if hook else None)]
        # Mirror of encoder stage i (filters[i-1] → filters[i], stride 2 for i < s).
        for i in range(n - 1, 0, -1):
            stride = 2 if i < downsampling_stages else 1
            conv = nn.ConvTranspose2d(filters[i], filters[i - 1], k, stride=stride, padding=k // 2,
                                      output_padding=stride - 1)
            stages.append(_Stage(conv, filters[i - 1], inverse=True,
                                 hook=hook(filters[i - 1]) if hook else None))
        self.stages = nn.ModuleList(stages)
        k0 = first_kernel_size
        self.out = nn.ConvTranspose2d(filters[0], 3, k0, stride=2, padding=k0 // 2,
                                      output_padding=1)

    def forward(self, z: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        for stage in self.stages:
            z = stage(z, side)
        return torch.sigmoid(self.out(z))


class ConvJSCC(JSCCCodec):
    """Shared base of :class:`DeepJSCC` and ADJSCC: a ConvEncoder / ConvDecoder pair.

    Channel bandwidth ratio: with ``s`` stride-2 stages (``f = 2^s``) the latent has ``C``
    channels at ``H/f × W/f``, so one image uses ``C · (H/f) · (W/f) / 2`` complex channel uses
    for ``3 · H · W`` source dimensions::

        CBR = C · (H/f) · (W/f) / 2 / (3 · H · W) = C / (6 f²)     (C / 96 for s = 2)

    and ``C = 6 f² · cbr`` must be a positive integer (``s = 2``: 1/24 → 4, 1/12 → 8, 1/6 → 16;
    ``s = 4``: 1/12 → 128). (For odd ``C`` and odd ``(H/f)(W/f)`` the link pads one zero real,
    so the image uses half a channel use more than the nominal CBR implies.)

    Subclasses add side information (e.g. the SNR) by passing hook factories and overriding
    :meth:`_encoder_side` / :meth:`_decoder_side`.
    """

    def __init__(self, cbr: float = 1 / 12, num_filters: int | Sequence[int] = 64,
                 num_blocks: int | None = None, kernel_size: int = 5,
                 first_kernel_size: int = 5, *, encoder_hook: HookFactory | None = None,
                 decoder_hook: HookFactory | None = None,
                 downsampling_stages: int = DOWNSAMPLING_STAGES) -> None:
        super().__init__()
        self.downsampling_stages = check_positive_int("downsampling_stages", downsampling_stages,
                                 minimum=_STAGES_RANGE[0], maximum=_STAGES_RANGE[1])
        self.downsampling = 2**self.downsampling_stages
        self.latent_channels = latent_channels_for_cbr(cbr, self.downsampling_stages)
        self.filters = _filter_list(num_filters, num_blocks, self.downsampling_stages)
        check_odd_kernel("kernel_size", kernel_size)
        check_odd_kernel("first_kernel_size", first_kernel_size)
        self.encoder = ConvEncoder(self.filters, self.latent_channels, kernel_size,
                                   first_kernel_size, hook=encoder_hook,
                                   downsampling_stages=self.downsampling_stages)
        self.decoder = ConvDecoder(self.filters, self.latent_channels, kernel_size,
                                   first_kernel_size, hook=decoder_hook,
                                   downsampling_stages=self.downsampling_stages)

    @property
    def nominal_cbr(self) -> float:
        """``C / (6 f²)``: the CBR for every image size with an even ``(H/f)·(W/f)·C``."""
        return self.latent_channels / cbr_denominator(self.downsampling_stages)

    # ------------------------------------------------------------------ checks
    def _check_size(self, h: int, w: int) -> None:
        f = self.downsampling
        if h % f or w % f or h < f or w < f:
            raise ValueError(
                f"image height and width must be positive multiples of {f} "
                f"({self.downsampling_stages} stride-2 downsamplings), got {h}x{w}; crop or pad "
                "the images"
            )

    def _check_image(self, img: torch.Tensor) -> None:
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"img must be [B, 3, H, W], got shape {tuple(img.shape)}")
        self._check_size(int(img.shape[2]), int(img.shape[3]))

    def _check_latent(self, z_hat: torch.Tensor) -> None:
        if z_hat.dim() != 4 or z_hat.shape[1] != self.latent_channels:
            f = self.downsampling
            raise ValueError(
                f"z_hat must be [B, {self.latent_channels}, H/{f}, W/{f}], got shape "
                f"{tuple(z_hat.shape)}"
            )

    def latent_shape(self, image_shape: tuple[int, int]) -> tuple[int, ...]:
        h, w = (int(s) for s in image_shape)
        self._check_size(h, w)
        f = self.downsampling
        return (self.latent_channels, h // f, w // f)

    # ------------------------------------------------------------------ hooks
    def _encoder_side(self, img: torch.Tensor,
                      snr_db: float | torch.Tensor | None) -> torch.Tensor | None:
        return None

    def _decoder_side(self, z_hat: torch.Tensor, snr_db: float | torch.Tensor | None,
                      csi: float | torch.Tensor | None = None) -> torch.Tensor | None:
        return None

    # ------------------------------------------------------------------ model
    def encode(self, img: torch.Tensor, snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] (or uint8) → real latent ``[B, C, H/f, W/f]``
        (``f = 2^s``; not normalized)."""
        img = as_float_images(img)
        self._check_image(img)
        return self.encoder(img, self._encoder_side(img, snr_db))

    def decode(self, z_hat: torch.Tensor,
               snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        """Received latent ``[B, C, h, w]`` → images ``[B, 3, f h, f w]`` in [0, 1]."""
        self._check_latent(z_hat)
        return self.decoder(z_hat, self._decoder_side(z_hat, snr_db))


@register_codec("deepjscc")
class DeepJSCC(ConvJSCC):
    """CNN deep JSCC with GDN/IGDN and PReLU, one model per training SNR (SNR-agnostic).

    ``CBR = C · (H/4)(W/4) / 2 / (3HW) = C / 96``: ``cbr`` must be a multiple of 1/96
    (1/24 → C=4, 1/12 → C=8, 1/6 → C=16); H and W must be multiples of 4.

    Args:
        cbr: channel bandwidth ratio (complex channel uses per source dimension), ``C/96``.
        num_filters: width of the hidden stages: an int (default 64, sized for CPU training;
            the ADJSCC paper uses 256) or one width per hidden encoder stage, e.g.
            ``(16, 32, 32, 32)`` for Bourtsoulatze et al.'s encoder; the decoder mirrors it.
        num_blocks: stride-1 stages after the stride-2 ones when ``num_filters`` is an
            int (default 2).
        kernel_size: kernel of all convolutions but the first (default 5).
        first_kernel_size: kernel of the first encoder / last decoder convolution (default 5;
            the ADJSCC paper uses 9).
        downsampling_stages: number of stride-2 stages ``s`` (default 2: ``CBR = C/96``; with 4,
            ``CBR = C/1536`` and H, W multiples of 16).

    ``snr_db`` is accepted by :meth:`encode` and :meth:`decode` and ignored.
    """

    snr_adaptive = False

    def __init__(self, cbr: float = 1 / 12, num_filters: int | Sequence[int] = 64,
                 num_blocks: int | None = None, kernel_size: int = 5,
                 first_kernel_size: int = 5,
                 downsampling_stages: int = DOWNSAMPLING_STAGES) -> None:
        super().__init__(cbr, num_filters, num_blocks, kernel_size, first_kernel_size,
                         downsampling_stages=downsampling_stages)
