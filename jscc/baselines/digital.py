"""Separate source-channel coding baselines: JPEG2000 over 5G LDPC + QAM, and over an ideal code.

Both baselines spend the same channel bandwidth as a deep-JSCC codec with channel bandwidth
ratio ``cbr`` (complex channel uses per source dimension): an image ``[3, H, W]`` gets
``floor(cbr * 3 * H * W)`` complex channel uses (:func:`image_channel_uses`; a float ``cbr`` is
read as the nearest fraction with denominator <= 10^6, so ``1/12`` of 196608 is exactly 16384).
Every baseline has the method ``transmit(img [B, 3, H, W] in [0, 1], snr_db) ->``
:class:`BaselineResult`.

* :class:`JPEG2000LDPC` -- practical: JPEG2000 coded to the bit budget of a fixed MCS, sent with
  :class:`phy.DigitalLink` (CRC24B per code block, 5G LDPC, QAM, no HARQ since the bandwidth is
  fixed). One failed CRC loses the whole image (an entropy-coded stream is useless with a
  hole in it): the receiver shows the fallback image.
* :class:`JPEG2000Capacity` -- ideal: a capacity-achieving code carries
  ``floor(uses * log2(1 + SNR))`` bits without error (the usual upper bound in deep-JSCC papers).
* :func:`best_mcs_envelope` -- the best MCS at one SNR (a genie-aided link adaptation).

**Fallback image.** An image that does not arrive (CRC failure), cannot be decoded, or whose
budget is below the minimum JPEG2000 codestream (about 130-190 bytes, see
:mod:`jscc.baselines.jpeg2000`) is replaced by ``fallback_image``: a colour ``[3]`` (e.g. the
dataset mean) or an image ``[3, H, W]``; default mid-grey 0.5. This is what a receiver without
data would show, and it keeps PSNR defined. ``reason`` says why (``"ok"``, ``"lost"``,
``"budget_too_small"``, ``"undecodable"``).

**PSNR** per image is ``10 log10(1 / MSE)`` on [0, 1] pixel values against the input image
(inf for a perfect copy).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import torch

from phy import (
    DEFAULT_BLOCK_BITS,
    MCS,
    Channel,
    DigitalLink,
    capacity_bits_per_use,
    snr_per_example,
)
from phy.payload import bits_to_bytes, bytes_to_bits

from ..checks import check_images
from .source import SourceCodec, source_codec

__all__ = [
    "JPEG2000LDPC",
    "REASONS",
    "BaselineResult",
    "BitBudget",
    "JPEG2000Capacity",
    "MCSChoice",
    "SeparateCapacity",
    "SeparateLDPC",
    "best_mcs_envelope",
    "bits_to_bytes",
    "bytes_to_bits",
    "image_channel_uses",
    "image_psnr",
]

#: Encoded streams a JPEG2000LDPC keeps (image hash, budget) -> stream.
_STREAM_CACHE_SIZE = 4096

#: Values of :attr:`BaselineResult.reason`.
REASONS: tuple[str, ...] = ("ok", "lost", "budget_too_small", "undecodable")


# ---------------------------------------------------------------------------------- helpers
def _as_fraction(cbr: float | Fraction) -> Fraction:
    if isinstance(cbr, bool) or not isinstance(cbr, (int, float, Fraction, np.floating)):
        raise TypeError(f"cbr must be a number, got {type(cbr).__name__} {cbr!r}")
    if isinstance(cbr, Fraction):
        frac = cbr
    else:
        if not math.isfinite(float(cbr)):
            raise ValueError(f"cbr must be finite, got {cbr!r}")
        frac = Fraction(float(cbr)).limit_denominator(1_000_000)
    if frac <= 0:
        raise ValueError(f"cbr must be > 0 (complex channel uses per source dimension), "
                         f"got {cbr!r}")
    return frac


def image_channel_uses(cbr: float | Fraction, height: int, width: int) -> int:
    """Complex channel uses of one RGB image: ``floor(cbr * 3 * H * W)``."""
    return math.floor(_as_fraction(cbr) * 3 * int(height) * int(width))


def image_psnr(img_hat: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """PSNR per image ``[B]`` in dB, ``10 log10(1 / MSE)`` for values in [0, 1]."""
    mse = (img_hat.float() - img.float()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def _snr_per_image(snr_db: float | torch.Tensor, batch: int) -> list[float]:
    return snr_per_example(snr_db, batch)



def _fallback_tensor(fallback_image: torch.Tensor | float | None) -> torch.Tensor:
    if fallback_image is None:
        return torch.full((3, 1, 1), 0.5)
    t = torch.as_tensor(fallback_image, dtype=torch.float32).detach().cpu()
    if t.dim() == 0:
        t = t.expand(3)
    if t.dim() == 1 and t.shape[0] == 3:
        t = t.reshape(3, 1, 1)
    elif not (t.dim() == 3 and t.shape[0] == 3):
        raise ValueError(f"fallback_image must be a scalar, a colour [3] or an image [3, H, W], "
                         f"got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or float(t.min()) < 0.0 or float(t.max()) > 1.0:
        raise ValueError("fallback_image values must lie in [0, 1]")
    return t.clone()


class _FallbackMixin:
    _fallback: torch.Tensor

    @property
    def fallback_image(self) -> torch.Tensor:
        """The fallback as stored: ``[3, 1, 1]`` (a colour) or ``[3, H, W]``."""
        return self._fallback

    def fallback_for(self, height: int, width: int) -> torch.Tensor:
        """The fallback image ``[3, H, W]`` for this image size."""
        f = self._fallback
        if f.shape[1:] == (1, 1):
            return f.expand(3, height, width).clone()
        if tuple(f.shape[1:]) != (height, width):
            raise ValueError(f"fallback_image has size {tuple(f.shape[1:])}, images are "
                             f"{(height, width)}")
        return f.clone()


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class BaselineResult:
    """Result of ``transmit`` for a batch of ``B`` images.

    Attributes:
        img_hat: received images ``[B, 3, H, W]`` (float32, device of the input); the fallback
            image where ``fallback``.
        ok: the stream arrived intact (every CRC passed) and decoded, bool ``[B]``.
        fallback: the fallback image was shown, bool ``[B]`` (``== ~ok``).
        bits_budget: information bits the channel could carry for this image, int64 ``[B]``.
        bits_used: bits of the JPEG2000 codestream (``8 * bytes``; 0 if none), int64 ``[B]``.
        channel_uses: complex channel uses allotted to one image, ``floor(cbr * 3 H W)``.
        reason: one of :data:`REASONS` per image.
        psnr: PSNR per image against the input, float32 ``[B]`` (dB).
        channel_uses_spent: channel uses actually transmitted per image (whole code blocks;
            ``<= channel_uses``; equal to it for the ideal code).
    """

    img_hat: torch.Tensor
    ok: torch.Tensor
    fallback: torch.Tensor
    bits_budget: torch.Tensor
    bits_used: torch.Tensor
    channel_uses: int
    reason: list[str]
    psnr: torch.Tensor
    channel_uses_spent: int

    @property
    def num_fallback(self) -> int:
        """How many images were replaced by the fallback image."""
        return int(self.fallback.sum())

    @property
    def mean_psnr(self) -> float:
        """Mean of the per-image PSNRs (fallback images included)."""
        return float(self.psnr.double().mean())


@dataclass(frozen=True)
class BitBudget:
    """How :class:`JPEG2000LDPC` fills the channel uses of one image with code blocks.

    Attributes:
        channel_uses: complex channel uses allotted to the image.
        block_bits: information bits ``k`` per code block (CRC not included).
        num_blocks: code blocks sent.
        uses_per_block: channel uses of one code block, ``link.channel_uses_per_block(k)``.
        info_bits: ``num_blocks * block_bits``, the bit budget of the JPEG2000 stream.
    """

    channel_uses: int
    block_bits: int
    num_blocks: int
    uses_per_block: int

    @property
    def info_bits(self) -> int:
        return self.num_blocks * self.block_bits

    @property
    def budget_bytes(self) -> int:
        return self.info_bits // 8

    @property
    def channel_uses_spent(self) -> int:
        return self.num_blocks * self.uses_per_block


def _finish(img: torch.Tensor, img_hat: torch.Tensor, ok: list[bool], budgets: list[int],
            used: list[int], uses: int, reasons: list[str], spent: int) -> BaselineResult:
    ok_t = torch.tensor(ok, dtype=torch.bool)
    img_hat = img_hat.to(img.device)
    return BaselineResult(
        img_hat=img_hat,
        ok=ok_t.to(img.device),
        fallback=(~ok_t).to(img.device),
        bits_budget=torch.tensor(budgets, dtype=torch.int64, device=img.device),
        bits_used=torch.tensor(used, dtype=torch.int64, device=img.device),
        channel_uses=uses,
        reason=reasons,
        psnr=image_psnr(img_hat, img).float(),
        channel_uses_spent=spent,
    )


# ---------------------------------------------------------------------------------- LDPC
class SeparateLDPC(_FallbackMixin):
    """A source codec (JPEG2000, HEVC, AVIF) + CRC24B + 5G LDPC + QAM at a fixed MCS and
    bandwidth ratio.

    Bit budget (:meth:`budget`), exactly from the :class:`phy.DigitalLink` geometry: with
    ``k = block_bits`` (default 1024, the block size of the BLER tables), an image sends
    ``floor(uses / link.channel_uses_per_block(k))`` whole code blocks of ``k`` information
    bits, so the JPEG2000 budget is ``num_blocks * k`` bits (``// 8`` bytes) -- the channel uses
    times ``Qm * R``, less 24 CRC bits per block and the rounding of each codeword to whole
    symbols. The remaining ``< 1`` block of channel uses is left idle. If not even one block of
    ``k`` bits fits, one block with the largest ``k`` that fits is sent instead. (Such a budget,
    ``< k`` bits, is below the minimum codestream anyway for ``k <= 1024``.)

    ``transmit``: every image's stream is zero-padded to its blocks and sent; if any block fails
    its CRC the image is ``"lost"`` (fallback). Otherwise the stream is decoded; a decoder error
    gives ``"undecodable"`` (fallback). No HARQ: retransmissions would exceed the bandwidth.

    Args:
        channel: a :class:`phy.Channel` (AWGN, RayleighFading, OFDMTDL, ...).
        mcs: a :class:`phy.MCS` or an index into ``table``.
        cbr: complex channel uses per source dimension (e.g. ``1/12``).
        block_bits: information bits per code block (``None``: 1024).
        fallback_image: colour ``[3]`` or image ``[3, H, W]`` shown for lost images
            (``None``: mid-grey 0.5); e.g. the dataset mean colour.
        source: the source codec, a name of :data:`jscc.baselines.source.SOURCE_CODECS`
            (``"jpeg2000"``, ``"hevc"``, ``"avif"``) or a :class:`SourceCodec`.
        table: MCS table when ``mcs`` is an int (``"qam64"`` or ``"qam256"``).
        num_iter: LDPC decoder iterations.
        **link_kwargs: further :class:`phy.DigitalLink` arguments (``demapping``, ``device``...).
    """

    def __init__(self, channel: Channel, mcs: MCS | int, cbr: float | Fraction,
                 block_bits: int | None = None,
                 fallback_image: torch.Tensor | float | None = None, *,
                 source: str | SourceCodec = "jpeg2000",
                 table: str = "qam64", num_iter: int = 20, **link_kwargs: Any) -> None:
        if "max_transmissions" in link_kwargs:
            raise ValueError(f"{type(self).__name__} sends every block once (the bandwidth is "
                             "fixed); max_transmissions cannot be set")
        self.source = source_codec(source)
        k = DEFAULT_BLOCK_BITS if block_bits is None else block_bits
        self.link = DigitalLink(channel, mcs, table=table, block_bits=k, num_iter=num_iter,
                                max_transmissions=1, **link_kwargs)
        self.mcs = self.link.mcs
        self.cbr = _as_fraction(cbr)
        self.block_bits = self.link.block_bits
        self._fallback = _fallback_tensor(fallback_image)
        self._streams: dict[tuple, bytes | None] = {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.link.channel!r}, mcs={self.mcs.name}, "
                f"cbr={self.cbr}, block_bits={self.block_bits}, source={self.source.name!r})")

    def budget(self, height: int, width: int) -> BitBudget:
        """Code blocks and information bits of one ``H x W`` image (see the class docstring)."""
        uses = image_channel_uses(self.cbr, height, width)
        k = self.block_bits
        per_block = self.link.channel_uses_per_block(k)
        if uses >= per_block:
            return BitBudget(uses, k, uses // per_block, per_block)
        # fewer uses than one block: the largest k' < k whose block fits (uses grow with k')
        lo, hi = 0, k - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.link.channel_uses_per_block(mid) <= uses:
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            return BitBudget(uses, k, 0, per_block)
        return BitBudget(uses, lo, 1, self.link.channel_uses_per_block(lo))

    @torch.no_grad()
    def transmit(self, img: torch.Tensor, snr_db: float | torch.Tensor) -> BaselineResult:
        """Send a batch ``[B, 3, H, W]`` (values in [0, 1]) at ``snr_db`` (scalar or ``[B]``)."""
        check_images(img)
        _snr_per_image(snr_db, img.shape[0])  # validate before any work
        return send_streams(self.link, self.budget(*img.shape[-2:]), img, snr_db,
                            self.fallback_for(*img.shape[-2:]), self._encode,
                            self.source.decode, self.source.decode_errors)

    def _encode(self, x: torch.Tensor, budget_bytes: int) -> bytes | None:
        """The codec's ``encode_to_budget``, memoized: the stream depends on the image and the
        budget only, and an SNR sweep sends the same images at every SNR (up to 20 encodes
        each)."""
        key = (hashlib.sha1(x.numpy().tobytes()).hexdigest(), tuple(x.shape), budget_bytes)
        if key not in self._streams:
            if len(self._streams) >= _STREAM_CACHE_SIZE:
                self._streams.pop(next(iter(self._streams)))
            self._streams[key] = self.source.encode_to_budget(x, budget_bytes)
        return self._streams[key]


class JPEG2000LDPC(SeparateLDPC):
    """:class:`SeparateLDPC` with JPEG2000 as the source codec."""

    def __init__(self, channel: Channel, mcs: MCS | int, cbr: float | Fraction,
                 block_bits: int | None = None,
                 fallback_image: torch.Tensor | float | None = None, **kwargs: Any) -> None:
        super().__init__(channel, mcs, cbr, block_bits, fallback_image, source="jpeg2000",
                         **kwargs)


def send_streams(link: DigitalLink, plan: BitBudget, img: torch.Tensor,
                 snr_db: float | torch.Tensor, fallback: torch.Tensor,
                 encode: Callable[[torch.Tensor, int], bytes | None],
                 decode_stream: Callable[[bytes, tuple[int, int]], torch.Tensor],
                 decode_errors: type[Exception] | tuple[type[Exception], ...]
                 ) -> BaselineResult:
    """The separate chain shared by every source codec: encode each image to the plan's byte
    budget, send its whole code blocks through ``link``, decode what arrived intact.

    ``encode(img [3, H, W], budget_bytes)`` returns a stream or ``None`` (budget too small);
    ``decode_stream(data, (H, W))`` raises one of ``decode_errors`` on bad data. Any failed
    block loses its image ("lost"); every failure shows ``fallback``.
    """
    batch, _, h, w = img.shape
    snrs = _snr_per_image(snr_db, batch)
    x = img.detach().float().cpu()
    img_hat = fallback.unsqueeze(0).repeat(batch, 1, 1, 1)
    reasons = ["budget_too_small"] * batch
    used = [0] * batch
    ok = [False] * batch
    streams: dict[int, bytes] = {}
    if plan.num_blocks > 0:
        for i in range(batch):
            s = encode(x[i], plan.budget_bytes)
            if s is not None:
                streams[i] = s
                used[i] = 8 * len(s)
    if streams:
        order = sorted(streams)
        r = link.send_bytes([streams[i] for i in order], [snrs[i] for i in order],
                            num_blocks=plan.num_blocks, k=plan.block_bits)
        for j, i in enumerate(order):
            if not r.ok[j]:
                reasons[i] = "lost"
                continue
            try:
                img_hat[i] = decode_stream(r.data[j], (h, w))
            except decode_errors:
                reasons[i] = "undecodable"
                continue
            reasons[i] = "ok"
            ok[i] = True
    return _finish(img, img_hat, ok, [plan.info_bits] * batch, used, plan.channel_uses,
                   reasons, plan.channel_uses_spent)


# ---------------------------------------------------------------------------------- capacity
class SeparateCapacity(_FallbackMixin):
    """A source codec over an ideal capacity-achieving channel code (error free).

    Bit budget per image: ``floor(uses * log2(1 + SNR))`` with ``uses = floor(cbr * 3 H W)``
    and SNR = Es/N0 (:func:`phy.capacity_bits_per_use`). This is the AWGN capacity; for a
    fading channel at average SNR it is an upper bound on the ergodic capacity (Jensen), and no
    outage is modelled. Images whose budget is below the minimum codestream get the fallback
    image (``"budget_too_small"``).

    Args:
        cbr: complex channel uses per source dimension.
        fallback_image: as in :class:`SeparateLDPC`.
        source: the source codec (as in :class:`SeparateLDPC`).
    """

    def __init__(self, cbr: float | Fraction,
                 fallback_image: torch.Tensor | float | None = None, *,
                 source: str | SourceCodec = "jpeg2000") -> None:
        self.cbr = _as_fraction(cbr)
        self._fallback = _fallback_tensor(fallback_image)
        self.source = source_codec(source)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cbr={self.cbr}, source={self.source.name!r})"

    def budget_bits(self, height: int, width: int, snr_db: float) -> int:
        """``floor(uses * log2(1 + SNR))`` for one ``H x W`` image."""
        uses = image_channel_uses(self.cbr, height, width)
        return math.floor(uses * float(capacity_bits_per_use(float(snr_db))))

    @torch.no_grad()
    def transmit(self, img: torch.Tensor, snr_db: float | torch.Tensor) -> BaselineResult:
        """Code each image to its capacity budget and decode it (no channel errors)."""
        check_images(img)
        return send_error_free(self.cbr, self.budget_bits, img, snr_db,
                               self.fallback_for(*img.shape[-2:]), self.source.encode_to_budget,
                               self.source.decode, self.source.decode_errors)


class JPEG2000Capacity(SeparateCapacity):
    """:class:`SeparateCapacity` with JPEG2000 as the source codec."""

    def __init__(self, cbr: float | Fraction,
                 fallback_image: torch.Tensor | float | None = None) -> None:
        super().__init__(cbr, fallback_image, source="jpeg2000")


def send_error_free(cbr: Fraction, budget_bits: Callable[[int, int, float], int],
                    img: torch.Tensor, snr_db: float | torch.Tensor, fallback: torch.Tensor,
                    encode: Callable[[torch.Tensor, int], bytes | None],
                    decode_stream: Callable[[bytes, tuple[int, int]], torch.Tensor],
                    decode_errors: type[Exception] | tuple[type[Exception], ...]
                    ) -> BaselineResult:
    """The ideal-code chain shared by every source codec: encode each image to
    ``budget_bits(H, W, snr_db)`` and decode it without channel errors."""
    batch, _, h, w = img.shape
    snrs = _snr_per_image(snr_db, batch)
    uses = image_channel_uses(cbr, h, w)
    x = img.detach().float().cpu()
    img_hat = fallback.unsqueeze(0).repeat(batch, 1, 1, 1)
    budgets = [budget_bits(h, w, s) for s in snrs]
    ok, used, reasons = [False] * batch, [0] * batch, ["budget_too_small"] * batch
    for i in range(batch):
        s = encode(x[i], budgets[i] // 8)
        if s is None:
            continue
        used[i] = 8 * len(s)
        try:
            img_hat[i] = decode_stream(s, (h, w))
        except decode_errors:  # pragma: no cover - an untouched stream always decodes
            reasons[i] = "undecodable"
            continue
        ok[i], reasons[i] = True, "ok"
    return _finish(img, img_hat, ok, budgets, used, uses, reasons, uses)


# ---------------------------------------------------------------------------------- envelope
class MCSChoice(NamedTuple):
    """The best entry of :func:`best_mcs_envelope`: its key and its (mean) PSNR in dB."""

    key: Any
    psnr: float


def best_mcs_envelope(psnr_by_mcs: Mapping[Any, float | torch.Tensor | BaselineResult]
                      ) -> MCSChoice:
    """The best MCS at one SNR: ``max`` over MCSs of the mean PSNR.

    ``psnr_by_mcs`` maps any key (MCS index, :class:`phy.MCS`, name) to a PSNR in dB, a tensor
    of per-image PSNRs (averaged) or a :class:`BaselineResult` (its :attr:`~BaselineResult.
    mean_psnr`, lost images counted at their fallback PSNR). The maximum over MCSs at every SNR
    is the envelope of the per-MCS curves: a genie that picks one MCS per SNR for the whole
    test set (not per image, which would use knowledge of each noise realization). Ties go to
    the first key in iteration order.
    """
    if not psnr_by_mcs:
        raise ValueError("psnr_by_mcs must not be empty")
    best: MCSChoice | None = None
    for key, value in psnr_by_mcs.items():
        if isinstance(value, BaselineResult):
            p = value.mean_psnr
        elif isinstance(value, torch.Tensor):
            if value.numel() == 0:
                raise ValueError(f"empty PSNR tensor for {key!r}")
            p = float(value.double().mean())
        elif isinstance(value, (int, float, np.floating, np.integer)) \
                and not isinstance(value, bool):
            p = float(value)
        else:
            raise TypeError(f"PSNR for {key!r} must be a number, a tensor or a BaselineResult, "
                            f"got {type(value).__name__}")
        if math.isnan(p):
            raise ValueError(f"PSNR for {key!r} is NaN")
        if best is None or p > best.psnr:
            best = MCSChoice(key, p)
    assert best is not None
    return best
