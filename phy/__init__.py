"""semcom.phy: the physical layer every payload crosses, built on Sionna 2 (PyTorch).

Conventions: complex symbols are complex64 with unit average energy (Es = 1); ``snr_db`` is
Es/N0 in dB unless a name says ``ebno_db``; ``no`` is the complex noise variance N0.

Public API::

    out = channel(x, snr_db)                      # ChannelOutput(y, h, no)
    x_hat, no_eff = mmse_equalize(out.y, out.h, out.no)
    r = AnalogLink(channel).send(z, snr_db)       # AnalogResult(z_hat, noise_var, h, ...)
"""

from __future__ import annotations

from .analog import AnalogLink, AnalogResult, pack_complex, unpack_complex
from .channels import AWGN, Channel, ChannelOutput, RayleighFading, no_to_snr_db, snr_db_to_no
from .equalization import mmse_equalize, zf_equalize
from .seeding import set_seed

__all__ = [
    "AWGN",
    "AnalogLink",
    "AnalogResult",
    "Channel",
    "ChannelOutput",
    "RayleighFading",
    "mmse_equalize",
    "no_to_snr_db",
    "pack_complex",
    "set_seed",
    "snr_db_to_no",
    "unpack_complex",
    "zf_equalize",
]
