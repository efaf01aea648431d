"""Separate source and channel coding baselines: JPEG2000, HEVC intra (BPG-class) or AVIF
over 5G LDPC + QAM or an ideal code.

See :mod:`jscc.baselines.source` (the source codecs by name, each rate-controlled to a byte
budget) and :mod:`jscc.baselines.digital` (the baselines at a channel bandwidth ratio).
"""

from __future__ import annotations

from .digital import (
    JPEG2000LDPC,
    REASONS,
    BaselineResult,
    BitBudget,
    JPEG2000Capacity,
    MCSChoice,
    SeparateCapacity,
    SeparateLDPC,
    best_mcs_envelope,
    image_channel_uses,
    image_psnr,
)
from .jpeg2000 import (
    J2KDecodeError,
    J2KEncoding,
    decode,
    default_num_resolutions,
    encode_to_budget,
    encode_to_budget_info,
    min_stream_bytes,
)
from .source import SOURCE_CODECS, SourceCodec, source_codec

__all__ = [
    "JPEG2000LDPC",
    "REASONS",
    "SOURCE_CODECS",
    "BaselineResult",
    "BitBudget",
    "J2KDecodeError",
    "J2KEncoding",
    "JPEG2000Capacity",
    "MCSChoice",
    "SeparateCapacity",
    "SeparateLDPC",
    "SourceCodec",
    "best_mcs_envelope",
    "decode",
    "default_num_resolutions",
    "encode_to_budget",
    "encode_to_budget_info",
    "image_channel_uses",
    "image_psnr",
    "min_stream_bytes",
    "source_codec",
]
