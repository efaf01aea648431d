"""semcom.phy: the physical layer every payload crosses, built on Sionna 2 (PyTorch).

Conventions: complex symbols are complex64 with unit average energy (Es = 1); ``snr_db`` is
Es/N0 in dB unless a name says ``ebno_db``; ``no`` is the complex noise variance N0.

Public API::

    out = channel(x, snr_db)                        # ChannelOutput(y, h, no)
    x_hat, no_eff = mmse_equalize(out.y, out.h, out.no)
    r = AnalogLink(channel).send(z, snr_db)         # AnalogResult(z_hat, noise_var, h, ...)
    link = DigitalLink(channel, mcs=MCS.from_index(10), max_transmissions=2)
    r = link.send_bits(bits, snr_db)                # DigitalResult(bits_hat, ok, ...)
    r = link.send_tensor(t, snr_db, dtype="int8")   # TensorResult(t_hat, lost, ...)
    mcs = select_mcs(snr_db, target_bler=0.1, channel="awgn")
    plan = LinkAdaptation("awgn", max_transmissions=4).plan(snr_db)  # MCS, E[transmissions]
    seconds = airtime_s(r.channel_uses, bandwidth_hz=20e6)
"""

from __future__ import annotations

from .abstraction import AbstractDigitalLink, send_tensors
from .adaptation import LinkAdaptation, LinkPlan, select_mcs
from .airtime import (
    airtime_s,
    bits_airtime_s,
    capacity_bits_per_use,
    capacity_bps,
    channel_uses_for_bits,
    ergodic_rayleigh_capacity_bits_per_use,
    mcs_rate_bps,
)
from .analog import AnalogLink, AnalogResult, analog_channel_uses, pack_complex, unpack_complex
from .bler import BlerCurve, BlerTable, bler_at, load_bler_table
from .channels import (
    AWGN,
    Channel,
    ChannelOutput,
    ImperfectCSI,
    RayleighFading,
    no_to_snr_db,
    snr_db_to_no,
)
from .checks import SNR_DB_MAX, SNR_DB_MIN, snr_per_example
from .codeblock import DEFAULT_BLOCK_BITS
from .digital import DECODERS, DigitalLink, DigitalResult, TensorResult, ebno_db_to_snr_db
from .equalization import mmse_equalize, zf_equalize
from .ldpc import CPULDPC5GDecoder
from .mcs import MCS, mcs_table
from .ofdm import OFDMTDL
from .payload import (
    PAYLOAD_DTYPES,
    bits_per_element,
    decode_payload,
    encode_payload,
    lost_elements_of_blocks,
    payload_bits,
    payload_values,
)
from .registry import Registry, format_spec, parse_spec
from .seeding import derived_seed, rng_state, set_rng_state, set_seed
from .sweep import CHANNEL_NAMES, CHANNELS, LinkPoint, make_channel, parse_snr_range, simulate_link

__version__ = "0.1.0"

__all__ = [
    "AWGN",
    "CHANNELS",
    "CHANNEL_NAMES",
    "DECODERS",
    "DEFAULT_BLOCK_BITS",
    "MCS",
    "OFDMTDL",
    "PAYLOAD_DTYPES",
    "SNR_DB_MAX",
    "SNR_DB_MIN",
    "AbstractDigitalLink",
    "AnalogLink",
    "AnalogResult",
    "BlerCurve",
    "BlerTable",
    "CPULDPC5GDecoder",
    "Channel",
    "ChannelOutput",
    "DigitalLink",
    "DigitalResult",
    "ImperfectCSI",
    "LinkAdaptation",
    "LinkPlan",
    "LinkPoint",
    "RayleighFading",
    "Registry",
    "TensorResult",
    "airtime_s",
    "analog_channel_uses",
    "bits_airtime_s",
    "bits_per_element",
    "bler_at",
    "capacity_bits_per_use",
    "capacity_bps",
    "channel_uses_for_bits",
    "decode_payload",
    "derived_seed",
    "ebno_db_to_snr_db",
    "encode_payload",
    "ergodic_rayleigh_capacity_bits_per_use",
    "format_spec",
    "load_bler_table",
    "lost_elements_of_blocks",
    "make_channel",
    "mcs_rate_bps",
    "mcs_table",
    "mmse_equalize",
    "no_to_snr_db",
    "pack_complex",
    "parse_snr_range",
    "parse_spec",
    "payload_bits",
    "payload_values",
    "rng_state",
    "select_mcs",
    "send_tensors",
    "set_rng_state",
    "set_seed",
    "simulate_link",
    "snr_db_to_no",
    "snr_per_example",
    "unpack_complex",
    "zf_equalize",
]
