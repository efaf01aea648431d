"""Source codecs of the separate (digital) baselines, by name.

Each codec codes an image ``[3, H, W]`` in [0, 1] to at most a byte budget and decodes the
bytes back (zero padding after the stream allowed):

=============  ============================================  ===============================
name           codec                                          module
=============  ============================================  ===============================
``jpeg2000``   JPEG2000 (OpenJPEG through Pillow)             :mod:`jscc.baselines.jpeg2000`
``hevc``       HEVC intra (x265 through pillow-heif), the      :mod:`jscc.baselines.hevc`
               codec inside BPG ("BPG-class")
``avif``       AV1 intra (libavif through Pillow)             :mod:`jscc.baselines.avif`
=============  ============================================  ===============================

The learned codec (a CompressAI hyperprior ladder, :mod:`jscc.baselines.learned`) needs its
trained models and is built from them instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import avif, hevc, jpeg2000

__all__ = ["SOURCE_CODECS", "SourceCodec", "source_codec"]


@dataclass(frozen=True)
class SourceCodec:
    """A source codec with exact budget control.

    Attributes:
        name: registry name.
        encode_to_budget: ``(img [3, H, W], budget_bytes) -> bytes | None`` (``None``: even
            the smallest stream exceeds the budget); never longer than the budget.
        decode: ``(data, (H, W)) -> img [3, H, W]``; raises one of ``decode_errors`` on data
            it cannot decode.
        decode_errors: the exceptions ``decode`` raises for bad data.
        description: one line for tables and plots.
    """

    name: str
    encode_to_budget: Callable[[torch.Tensor, int], bytes | None]
    decode: Callable[[bytes, tuple[int, int]], torch.Tensor]
    decode_errors: tuple[type[Exception], ...]
    description: str


SOURCE_CODECS: dict[str, SourceCodec] = {
    "jpeg2000": SourceCodec("jpeg2000", jpeg2000.encode_to_budget, jpeg2000.decode,
                            (jpeg2000.J2KDecodeError,), "JPEG2000 (OpenJPEG)"),
    "hevc": SourceCodec("hevc", hevc.encode_to_budget, hevc.decode, (hevc.HEVCDecodeError,),
                        "HEVC intra, BPG-class (x265)"),
    "avif": SourceCodec("avif", avif.encode_to_budget, avif.decode, (avif.AVIFDecodeError,),
                        "AVIF, AV1 intra (libavif)"),
}


def source_codec(name: str | SourceCodec) -> SourceCodec:
    """The registered codec ``name`` (a :class:`SourceCodec` passes through)."""
    if isinstance(name, SourceCodec):
        return name
    if name not in SOURCE_CODECS:
        raise ValueError(f"source codec must be one of {list(SOURCE_CODECS)}, got {name!r}")
    return SOURCE_CODECS[name]
