"""Learned separate source-channel coding baseline: a scale-hyperprior codec over 5G LDPC.

:class:`LearnedLDPC` is the ``learned+ldpc`` baseline: a CompressAI
:class:`~compressai.models.ScaleHyperprior` (bmshj2018-hyperprior) codec, or a *rate ladder* of
them trained at different rate-distortion weights λ, whose entropy-coded stream goes through the
same :class:`phy.DigitalLink` as :class:`~jscc.baselines.digital.JPEG2000LDPC`, with exactly the
same bit budget (the budget of an internal :class:`JPEG2000LDPC`), the same fallback image and
the same :class:`~jscc.baselines.digital.BaselineResult`. :class:`LearnedCapacity` is the same
codec over an ideal capacity-achieving code (the budget of :class:`JPEG2000Capacity`).

**Rate control.** The ladder is ordered from the lowest to the highest rate (ascending λ). Each
image is coded with the highest-rate model whose serialized stream fits the budget; if none
fits the image is ``"budget_too_small"`` (fallback).

**Container** (:func:`pack_stream` / :func:`unpack_stream`): self-delimiting, so the zero
padding up to the code blocks can follow it::

    uvarint model index | uvarint zH | uvarint zW | uvarint len(y) | uvarint len(z) | y | z

(``uvarint``: little-endian base-128, 7 bits per byte, high bit = more bytes follow.) ``zH x
zW`` is the hyper-latent size (``H/64 x W/64`` after padding). The receiver knows the image
size ``H x W`` (as for JPEG2000): images whose sides are not multiples of 64 are padded
(replicate, bottom/right) before coding and cropped after decoding.

**Ladders on disk** (:func:`save_ladder` / :func:`load_ladder`): one ``torch.save`` file of
plain dicts, numbers and tensors (loads with ``weights_only=True``): per model ``N``, ``M``,
``lmbda`` and its ``state_dict`` including the entropy-coder tables. Train one with
``semcom train-hyperprior``.

The codecs run on the CPU in float32 (the range coder needs encoder and decoder to compute the
same hyper-prior scales; both run here in the same process).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from compressai.models import ScaleHyperprior

from phy import MCS, Channel

from ..checks import check_hyperpriors, check_images
from .digital import (
    JPEG2000LDPC,
    BaselineResult,
    BitBudget,
    JPEG2000Capacity,
    _FallbackMixin,
    _snr_per_image,
    send_error_free,
    send_streams,
)

__all__ = [
    "LADDER_FORMAT",
    "ContainerError",
    "LearnedCapacity",
    "LearnedLDPC",
    "Stream",
    "compressed_bytes",
    "load_ladder",
    "pack_stream",
    "save_ladder",
    "unpack_stream",
]

#: ``format`` tag of a ladder file.
LADDER_FORMAT = "semcom-hyperprior-ladder"
LADDER_VERSION = 1
#: Spatial downsampling of the scale-hyperprior's hyper-latent ``z``.
DOWNSAMPLING = 64


# ---------------------------------------------------------------------------------- container
class ContainerError(ValueError):
    """A byte string is not a valid stream container."""


class Stream(NamedTuple):
    """One coded image: model index, hyper-latent shape ``(zH, zW)``, ``y`` and ``z`` bytes."""

    model: int
    shape: tuple[int, int]
    y: bytes
    z: bytes


def _put_uvarint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"uvarint values must be >= 0, got {value}")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _get_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ContainerError("truncated stream header")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise ContainerError("header field too long")


def pack_stream(stream: Stream) -> bytes:
    """Serialize a :class:`Stream` into the container (see the module docstring)."""
    out = bytearray()
    for v in (stream.model, stream.shape[0], stream.shape[1], len(stream.y), len(stream.z)):
        _put_uvarint(out, int(v))
    return bytes(out) + bytes(stream.y) + bytes(stream.z)


def unpack_stream(data: bytes) -> Stream:
    """Parse a container; bytes after its end (zero padding) are ignored.

    Raises:
        ContainerError: truncated or malformed data.
    """
    pos = 0
    fields = []
    for _ in range(5):
        v, pos = _get_uvarint(data, pos)
        fields.append(v)
    model, zh, zw, ny, nz = fields
    if zh < 1 or zw < 1:
        raise ContainerError(f"invalid hyper-latent shape {(zh, zw)}")
    if pos + ny + nz > len(data):
        raise ContainerError(f"stream needs {pos + ny + nz} bytes, got {len(data)}")
    y = bytes(data[pos:pos + ny])
    z = bytes(data[pos + ny:pos + ny + nz])
    return Stream(model, (zh, zw), y, z)


def compressed_bytes(enc: dict) -> int:
    """Bytes of the ``y`` and ``z`` strings of a ``compress`` output (all images)."""
    return sum(len(s) for strings in enc["strings"] for s in strings)


# ---------------------------------------------------------------------------------- ladders

def save_ladder(models: ScaleHyperprior | Sequence[ScaleHyperprior], path: str | os.PathLike,
                lambdas: Sequence[float] | None = None) -> None:
    """Write a ladder atomically (temporary file + ``os.replace``).

    ``lambdas`` default to each model's ``lmbda`` attribute (NaN if missing). Entropy-coder
    tables are built first if a model has none (``update()``).
    """
    models = check_hyperpriors(models)
    if lambdas is None:
        lambdas = [float(getattr(m, "lmbda", math.nan)) for m in models]
    if len(lambdas) != len(models):
        raise ValueError(f"{len(lambdas)} lambdas for {len(models)} models")
    entries = []
    for m, lmbda in zip(models, lambdas, strict=True):
        m.update()
        state = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
        entries.append({"N": int(m.N), "M": int(m.M), "lmbda": float(lmbda),
                        "state_dict": state})
    payload = {"format": LADDER_FORMAT, "version": LADDER_VERSION, "models": entries}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_ladder(path: str | os.PathLike) -> list[ScaleHyperprior]:
    """Read a ladder written by :func:`save_ladder` (``weights_only=True``).

    Returns the models on the CPU in eval mode, sorted by ascending λ (their ``lmbda``
    attribute), with entropy-coder tables ready.
    """
    from ..checkpoints import read_torch_file

    payload = read_torch_file(path, "a hyperprior ladder (jscc.baselines.learned.save_ladder)")
    if not isinstance(payload, dict) or payload.get("format") != LADDER_FORMAT:
        raise ValueError(f"{path} is not a hyperprior ladder file")
    if payload.get("version") != LADDER_VERSION:
        raise ValueError(f"unsupported ladder version {payload.get('version')!r}")
    models = []
    for e in payload["models"]:
        m = ScaleHyperprior(int(e["N"]), int(e["M"]))
        m.load_state_dict(e["state_dict"])
        m.eval()
        m.update()
        m.lmbda = float(e["lmbda"])
        models.append(m)
    return sorted(models, key=lambda m: (math.isnan(m.lmbda), m.lmbda))


# ---------------------------------------------------------------------------------- codec
class _LadderCodec:
    """Shared coding part of the learned baselines (CPU, float32, eval mode)."""

    def _init_models(self, models: ScaleHyperprior | Sequence[ScaleHyperprior]) -> None:
        self.models = check_hyperpriors(models)
        for m in self.models:
            m.eval()
            m.update()

    @staticmethod
    def _pad(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % DOWNSAMPLING, (-w) % DOWNSAMPLING
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    @torch.no_grad()
    def encode(self, img: torch.Tensor, model: int) -> bytes:
        """Container bytes of one image ``[3, H, W]`` coded with ladder model ``model``."""
        m = self.models[model]
        x = self._pad(img.detach().float().cpu().unsqueeze(0))
        enc = m.compress(x)
        shape = tuple(int(s) for s in enc["shape"])
        return pack_stream(Stream(model, shape, enc["strings"][0][0], enc["strings"][1][0]))

    @torch.no_grad()
    def decode(self, data: bytes, size: tuple[int, int]) -> torch.Tensor:
        """Image ``[3, H, W]`` from container bytes (padding after the container is ignored).

        Raises:
            ContainerError: malformed container, unknown model or wrong shape for ``size``.
        """
        s = unpack_stream(data)
        if s.model >= len(self.models):
            raise ContainerError(f"model index {s.model} not in a ladder of "
                                 f"{len(self.models)}")
        h, w = size
        expected = (math.ceil(h / DOWNSAMPLING), math.ceil(w / DOWNSAMPLING))
        if s.shape != expected:
            raise ContainerError(f"hyper-latent shape {s.shape} does not fit a {h}x{w} image")
        try:
            out = self.models[s.model].decompress([[s.y], [s.z]], torch.Size(s.shape))
        except (RuntimeError, ValueError, IndexError, OverflowError) as e:
            raise ContainerError(f"entropy decoding failed: {e}") from e
        x_hat = out["x_hat"][0, :, :h, :w].float()
        if not bool(torch.isfinite(x_hat).all()):
            raise ContainerError("decoded image is not finite")
        return x_hat.clamp(0.0, 1.0)

    def encode_to_budget(self, img: torch.Tensor, budget_bytes: int) -> bytes | None:
        """Container of the highest-rate model (last first) that fits ``budget_bytes``."""
        if budget_bytes <= 0:
            return None
        for idx in reversed(range(len(self.models))):
            data = self.encode(img, idx)
            if len(data) <= budget_bytes:
                return data
        return None


class LearnedLDPC(_LadderCodec, _FallbackMixin):
    """Scale-hyperprior codec (rate ladder) + CRC24B + 5G LDPC + QAM at a fixed MCS.

    Same channel, budget (:meth:`budget`), fallback and result as
    :class:`~jscc.baselines.digital.JPEG2000LDPC` (an internal instance, :attr:`digital`,
    supplies the budget and the :class:`phy.DigitalLink`): each image's container is
    zero-padded to its code blocks and sent with ``link.send_bits``; any failed CRC makes the
    image ``"lost"``, a stream that cannot be decoded ``"undecodable"``, and an image for
    which no ladder model fits the budget ``"budget_too_small"`` (fallback in all three).

    Args:
        channel: a :class:`phy.Channel`.
        mcs: a :class:`phy.MCS` or an index into ``table``.
        cbr: complex channel uses per source dimension.
        models: one :class:`~compressai.models.ScaleHyperprior` or a ladder, ascending rate.
        block_bits: information bits per code block (``None``: 1024).
        fallback_image: colour ``[3]`` or image ``[3, H, W]`` (``None``: mid-grey 0.5).
        **kwargs: further :class:`JPEG2000LDPC` arguments (``table``, ``num_iter``, link
            arguments).
    """

    def __init__(self, channel: Channel, mcs: MCS | int, cbr: float | Fraction,
                 models: ScaleHyperprior | Sequence[ScaleHyperprior],
                 block_bits: int | None = None,
                 fallback_image: torch.Tensor | float | None = None, **kwargs: Any) -> None:
        self.digital = JPEG2000LDPC(channel, mcs, cbr, block_bits, fallback_image, **kwargs)
        self.link = self.digital.link
        self.mcs = self.digital.mcs
        self.cbr = self.digital.cbr
        self.block_bits = self.digital.block_bits
        self._fallback = self.digital.fallback_image
        self._init_models(models)

    def __repr__(self) -> str:
        return (f"LearnedLDPC({self.link.channel!r}, mcs={self.mcs.name}, cbr={self.cbr}, "
                f"models={len(self.models)}, block_bits={self.block_bits})")

    def budget(self, height: int, width: int) -> BitBudget:
        """Code blocks and information bits of one image (as :meth:`JPEG2000LDPC.budget`)."""
        return self.digital.budget(height, width)

    @torch.no_grad()
    def transmit(self, img: torch.Tensor, snr_db: float | torch.Tensor) -> BaselineResult:
        """Send a batch ``[B, 3, H, W]`` (values in [0, 1]) at ``snr_db`` (scalar or ``[B]``)."""
        check_images(img)
        _snr_per_image(snr_db, img.shape[0])  # validate before any work
        h, w = img.shape[-2:]
        return send_streams(self.link, self.budget(h, w), img, snr_db, self.fallback_for(h, w),
                            self.encode_to_budget, self.decode, ContainerError)


class LearnedCapacity(_LadderCodec, _FallbackMixin):
    """Scale-hyperprior codec (rate ladder) over an ideal capacity-achieving code.

    Budget per image ``floor(uses * log2(1 + SNR))`` bits, as
    :class:`~jscc.baselines.digital.JPEG2000Capacity`; no channel errors.

    Args:
        cbr: complex channel uses per source dimension.
        models: one :class:`~compressai.models.ScaleHyperprior` or a ladder, ascending rate.
        fallback_image: as in :class:`LearnedLDPC`.
    """

    def __init__(self, cbr: float | Fraction,
                 models: ScaleHyperprior | Sequence[ScaleHyperprior],
                 fallback_image: torch.Tensor | float | None = None) -> None:
        self.ideal = JPEG2000Capacity(cbr, fallback_image)
        self.cbr = self.ideal.cbr
        self._fallback = self.ideal.fallback_image
        self._init_models(models)

    def __repr__(self) -> str:
        return f"LearnedCapacity(cbr={self.cbr}, models={len(self.models)})"

    def budget_bits(self, height: int, width: int, snr_db: float) -> int:
        """``floor(uses * log2(1 + SNR))`` for one ``H x W`` image."""
        return self.ideal.budget_bits(height, width, snr_db)

    @torch.no_grad()
    def transmit(self, img: torch.Tensor, snr_db: float | torch.Tensor) -> BaselineResult:
        """Code each image to its capacity budget and decode it (no channel errors)."""
        check_images(img)
        return send_error_free(self.cbr, self.budget_bits, img, snr_db,
                               self.fallback_for(*img.shape[-2:]), self.encode_to_budget,
                               self.decode, ContainerError)
