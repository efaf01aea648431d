"""5G code-block geometry (TS 38.212): CRC, block sizes, codeword lengths, channel uses.

One code block carries ``k`` information bits plus the :data:`CRC_BITS` of CRC24B; its LDPC
codeword has ``n = Qm * ceil((k + 24) / (R * Qm))`` coded bits, i.e. ``n / Qm`` complex channel
uses, for an MCS with modulation order ``Qm`` and target code rate ``R``.
"""

from __future__ import annotations

import math

from .checks import check_positive_int
from .mcs import MCS

__all__ = ["CRC_BITS", "DEFAULT_BLOCK_BITS", "K_MAX", "MAX_BLOCK_BITS", "channel_uses_per_block",
           "check_block_bits", "coded_bits", "mother_code_inverse_rate"]

#: CRC bits per code block (CRC24B, the code-block CRC of TS 38.212).
CRC_BITS = 24
#: Largest LDPC information length (base graph 1), CRC included.
K_MAX = 8448
#: Largest number of information bits per code block (``K_MAX - CRC_BITS``).
MAX_BLOCK_BITS = K_MAX - CRC_BITS
#: Information bits per code block by default (links, BLER lookups, payload transports).
DEFAULT_BLOCK_BITS = 1024
#: Largest information length (CRC included) for which base graph 2 serves rates up to 0.67.
_K_MAX_BG2_LOW_RATE = 3824


def check_block_bits(name: str, k: object) -> int:
    """``k`` as an int in ``1 .. MAX_BLOCK_BITS``, or a ValueError naming ``name``."""
    return check_positive_int(name, k, minimum=1, maximum=MAX_BLOCK_BITS)


def mother_code_inverse_rate(k_crc: int) -> int:
    """``1 / R`` of the lowest-rate 5G LDPC codeword Sionna encodes for ``k_crc`` bits (CRC
    included): 5 (base graph 2) up to 3824 bits, else 3 (base graph 1). Lower rates repeat it."""
    return 5 if k_crc <= _K_MAX_BG2_LOW_RATE else 3


def coded_bits(mcs: MCS, k: int) -> int:
    """Coded bits ``n`` of one codeword carrying ``k`` information bits (+ CRC) at ``mcs``."""
    qm = mcs.modulation_order
    return qm * math.ceil((k + CRC_BITS) / (mcs.code_rate * qm) - 1e-9)


def channel_uses_per_block(mcs: MCS, k: int) -> int:
    """Complex channel uses of one transmission of a code block of ``k`` information bits."""
    return coded_bits(mcs, k) // mcs.modulation_order
