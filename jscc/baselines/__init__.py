"""Separate source and channel coding baselines: JPEG2000 over 5G LDPC + QAM or an ideal code.

See :mod:`jscc.baselines.jpeg2000` (rate-controlled JPEG2000) and
:mod:`jscc.baselines.digital` (the baselines at a channel bandwidth ratio).
"""

from __future__ import annotations

from .digital import (
    JPEG2000LDPC,
    REASONS,
    BaselineResult,
    BitBudget,
    JPEG2000Capacity,
    MCSChoice,
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

__all__ = [
    "JPEG2000LDPC",
    "REASONS",
    "BaselineResult",
    "BitBudget",
    "J2KDecodeError",
    "J2KEncoding",
    "JPEG2000Capacity",
    "MCSChoice",
    "best_mcs_envelope",
    "decode",
    "default_num_resolutions",
    "encode_to_budget",
    "encode_to_budget_info",
    "image_channel_uses",
    "image_psnr",
    "min_stream_bytes",
]
