"""One interface for every image transmission system, and one registry that builds them.

An :class:`ImageSystem` sends a batch of images ``[B, 3, H, W]`` (values in [0, 1]) at an SNR
and returns an :class:`ImageResult`. Two kinds ship here:

* :class:`JSCCSystem`: a deep-JSCC codec (any :class:`jscc.JSCCCodec`: pretrained, a
  checkpoint, or a codec with a CDDM in front of its decoder) over :class:`phy.AnalogLink`.
* :class:`SeparateSystem`: a source codec (``jpeg2000``, ``hevc``, ``avif``; see
  :mod:`jscc.baselines.source`) over a channel code: ``ldpc`` (CRC24B + 5G LDPC + QAM at one
  MCS, :class:`phy.DigitalLink`) or ``capacity`` (an ideal code at the Shannon rate).

:func:`build_system` builds them by name: ``"jscc"`` (``codec=`` a codec or
``"pretrained:<name>"``/checkpoint path), ``"<source>+ldpc"`` (``mcs=``) and
``"<source>+capacity"``; other packages add their own kinds with :func:`register_system`
(:mod:`cddm` registers ``"jscc+cddm"``). Every system spends ``floor(cbr * 3 H W)`` complex
channel uses per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

import torch

import phy
from phy import Registry

from .baselines.digital import (
    BaselineResult,
    SeparateCapacity,
    SeparateLDPC,
    _as_fraction,
    image_channel_uses,
)
from .baselines.source import SOURCE_CODECS
from .metrics import ms_ssim, psnr

__all__ = ["CHANNEL_CODES", "SYSTEMS", "ImageResult", "ImageSystem", "JSCCSystem", "SeparateSystem",
           "available_systems", "build_system", "register_system"]

#: Channel codes of a :class:`SeparateSystem`.
CHANNEL_CODES = ("ldpc", "capacity")


@dataclass(frozen=True)
class ImageResult:
    """What an :class:`ImageSystem` delivers for ``B`` images.

    Attributes:
        img_hat: received images ``[B, 3, H, W]`` in [0, 1].
        psnr: PSNR per image against the input (dB), ``[B]``.
        msssim: MS-SSIM per image, ``[B]``.
        delivered: the image arrived (analog: always; digital: every CRC passed and the
            stream decoded), bool ``[B]``.
        reason: ``"ok"`` or why not (``"lost"``, ``"budget_too_small"``, ``"undecodable"``).
        channel_uses: complex channel uses allotted to one image.
        bits: bits sent per image (digital: the source stream; analog: 0), int64 ``[B]``.
    """

    img_hat: torch.Tensor
    psnr: torch.Tensor
    msssim: torch.Tensor
    delivered: torch.Tensor
    reason: list[str]
    channel_uses: int
    bits: torch.Tensor

    @property
    def mean_psnr(self) -> float:
        return float(self.psnr.double().mean())


@runtime_checkable
class ImageSystem(Protocol):
    """``transmit(img [B, 3, H, W], snr_db) -> ImageResult``, with a ``name``."""

    name: str

    def transmit(self, img: torch.Tensor, snr_db: float) -> ImageResult: ...


def _scored(img: torch.Tensor, img_hat: torch.Tensor, delivered: torch.Tensor,
            reason: list[str], uses: int, bits: torch.Tensor) -> ImageResult:
    img_hat = img_hat.clamp(0, 1)
    return ImageResult(img_hat=img_hat, psnr=psnr(img_hat, img), msssim=ms_ssim(img_hat, img),
                       delivered=delivered, reason=reason, channel_uses=uses, bits=bits)


class JSCCSystem:
    """A deep-JSCC codec over :class:`phy.AnalogLink` on ``channel``.

    Args:
        codec: a :class:`jscc.JSCCCodec` (called as ``codec(img, link, snr_db)``).
        channel: a :class:`phy.Channel` or a name of :func:`phy.make_channel`.
        cbr: the codec's channel bandwidth ratio (for :attr:`ImageResult.channel_uses`).
        name: the system's name (default ``"jscc"``).
        batch_size: images per forward pass.
    """

    def __init__(self, codec: torch.nn.Module, channel: phy.Channel | str, cbr: float,
                 name: str = "jscc", batch_size: int = 16) -> None:
        if not callable(codec):
            raise TypeError(f"codec must be a JSCC codec, got {type(codec).__name__}")
        self.codec = codec.eval()
        self.link = phy.AnalogLink(phy.make_channel(channel) if isinstance(channel, str)
                                   else channel)
        self.cbr = _as_fraction(cbr)
        self.name = name
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"JSCCSystem({self.name!r}, {self.link!r}, cbr={self.cbr})"

    @torch.no_grad()
    def transmit(self, img: torch.Tensor, snr_db: float) -> ImageResult:
        outs = [self.codec(img[i:i + self.batch_size], self.link, float(snr_db))
                for i in range(0, img.shape[0], self.batch_size)]
        b = img.shape[0]
        return _scored(img, torch.cat(outs), torch.ones(b, dtype=torch.bool), ["ok"] * b,
                       image_channel_uses(self.cbr, *img.shape[-2:]),
                       torch.zeros(b, dtype=torch.int64))


class SeparateSystem:
    """A source codec over a channel code (``"ldpc"`` at ``mcs``, or ``"capacity"``).

    Args:
        source: a source codec name (:data:`jscc.baselines.source.SOURCE_CODECS`) or object.
        channel_code: ``"ldpc"`` or ``"capacity"``.
        channel: a :class:`phy.Channel` or a name (``ldpc`` only; capacity is the AWGN bound).
        cbr: complex channel uses per source dimension.
        mcs: the MCS of ``ldpc`` (a :class:`phy.MCS` or an index into ``table``).
        **kwargs: further :class:`jscc.baselines.SeparateLDPC` arguments (``block_bits``,
            ``fallback_image``, ``table``, ...).
    """

    def __init__(self, source: Any, channel_code: str, channel: phy.Channel | str = "awgn",
                 cbr: float | Fraction = Fraction(1, 12), mcs: phy.MCS | int | None = None,
                 **kwargs: Any) -> None:
        if channel_code not in CHANNEL_CODES:
            raise ValueError(f"channel_code must be one of {list(CHANNEL_CODES)}, got "
                             f"{channel_code!r}")
        if channel_code == "ldpc":
            if mcs is None:
                raise ValueError("an ldpc system needs mcs= (a phy.MCS or an MCS index)")
            ch = phy.make_channel(channel) if isinstance(channel, str) else channel
            self.baseline: SeparateLDPC | SeparateCapacity = SeparateLDPC(
                ch, mcs, cbr, source=source, **kwargs)
            self.mcs = self.baseline.mcs
        else:
            if mcs is not None:
                raise ValueError("a capacity system has no MCS; drop mcs=")
            self.baseline = SeparateCapacity(cbr, kwargs.pop("fallback_image", None),
                                             source=source)
            if kwargs:
                raise TypeError(f"unexpected arguments for a capacity system: {sorted(kwargs)}")
            self.mcs = None
        self.source = self.baseline.source
        self.channel_code = channel_code
        self.cbr = self.baseline.cbr
        self.name = f"{self.source.name}+{channel_code}" + (
            f"/MCS{self.mcs.index}" if self.mcs is not None and self.mcs.index is not None
            else "")

    def __repr__(self) -> str:
        return f"SeparateSystem({self.name!r}, {self.baseline!r})"

    def transmit(self, img: torch.Tensor, snr_db: float) -> ImageResult:
        r: BaselineResult = self.baseline.transmit(img, snr_db)
        return _scored(img, r.img_hat, r.ok, list(r.reason), r.channel_uses, r.bits_used)


SystemFactory = Callable[..., ImageSystem]
#: Image systems by name; each factory takes ``channel=`` and ``cbr=`` keywords.
SYSTEMS: Registry[ImageSystem] = Registry("image system",
                                          hints={"jscc+cddm": "import cddm to add it"})


def register_system(name: str, factory: SystemFactory, *, overwrite: bool = False) -> None:
    """Make ``build_system(name, channel=..., cbr=..., **kw)`` call ``factory``."""
    SYSTEMS.register(name, factory, overwrite=overwrite)


def available_systems() -> list[str]:
    """Names :func:`build_system` accepts."""
    return SYSTEMS.available()


def build_system(name: str, *, channel: phy.Channel | str = "awgn",
                 cbr: float | Fraction | None = None, **kwargs: Any) -> ImageSystem:
    """The image system ``name`` (see the module doc; a spec string may add options) on
    ``channel`` at ``cbr``."""
    return SYSTEMS.build(name, channel=channel, cbr=cbr, **kwargs)


def _jscc(*, channel: phy.Channel | str, cbr: float | None, codec: Any = None,
          **kwargs: Any) -> JSCCSystem:
    if codec is None:
        raise ValueError("the jscc system needs codec= (a JSCC codec, 'pretrained:<name>' or "
                         "a checkpoint path)")
    if isinstance(codec, str):
        from .pretrained import codec_from_ref

        codec, ref_cbr = codec_from_ref(codec)
        cbr = ref_cbr if cbr is None else cbr
    if cbr is None:
        raise ValueError("cbr must be given with a codec object")
    return JSCCSystem(codec, channel, cbr, **kwargs)


def _separate(source: str, code: str) -> SystemFactory:
    def factory(*, channel: phy.Channel | str, cbr: float | None, **kwargs: Any
                ) -> SeparateSystem:
        if cbr is None:
            raise ValueError(f"{source}+{code} needs cbr= (channel uses per source dimension)")
        return SeparateSystem(source, code, channel, cbr, **kwargs)

    return factory


register_system("jscc", _jscc)
for _src in SOURCE_CODECS:
    for _code in CHANNEL_CODES:
        register_system(f"{_src}+{_code}", _separate(_src, _code))
