"""Airtime and rates: channel uses -> seconds, Shannon capacity, MCS bit rates.

Assumptions (the same for every function here):

* **Nyquist signalling.** A channel of bandwidth :math:`B` (``bandwidth_hz``) carries
  :math:`B` complex symbols per second ("channel uses" per second), i.e. one complex symbol per
  second per hertz; no roll-off, guard bands or ramp-up time.
* **Overhead.** A fraction ``overhead`` in [0, 1) of the time-frequency resources carries no
  payload (pilots/DMRS, cyclic prefix, control channels, ...); the payload gets the rest:
  :math:`B (1 - \\mathrm{overhead})` channel uses per second.
* **SNR.** ``snr_db`` is :math:`E_s/N_0` in dB, as everywhere in :mod:`phy`; with one symbol
  per second per hertz it equals the SNR :math:`P / (N_0 B)` in the band.
* No propagation delay, processing time, scheduling latency or retransmissions (HARQ adds its
  own channel uses; count them before calling :func:`airtime_s`).

Inputs may be Python numbers (the result is a ``float``) or torch tensors (broadcast together;
the result is a tensor: float64 for integer-only inputs, else torch's promoted float dtype).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from .checks import NumberOrTensor, as_real, check_bounds
from .mcs import MCS

__all__ = [
    "airtime_s",
    "bits_airtime_s",
    "capacity_bits_per_use",
    "capacity_bps",
    "channel_uses_for_bits",
    "ergodic_rayleigh_capacity_bits_per_use",
    "mcs_rate_bps",
]

Number = int | float


def _check_bandwidth(bandwidth_hz: NumberOrTensor) -> NumberOrTensor:
    b = as_real("bandwidth_hz", bandwidth_hz)
    check_bounds("bandwidth_hz", b, low=0.0, low_inclusive=False, allowed="> 0 Hz")
    return b


def _check_overhead(overhead: NumberOrTensor) -> NumberOrTensor:
    o = as_real("overhead", overhead)
    check_bounds("overhead", o, low=0.0, low_inclusive=True, high=1.0,
            allowed="in [0, 1) (fraction of resources without payload)")
    return o


def _check_snr_db(snr_db: NumberOrTensor) -> NumberOrTensor:
    s = as_real("snr_db", snr_db)
    check_bounds("snr_db", s, low=-math.inf, low_inclusive=False, allowed="a real number of dB")
    return s


def _check_mcs(mcs: MCS) -> MCS:
    if not isinstance(mcs, MCS):
        raise TypeError(f"mcs must be a phy.MCS (MCS.from_index / MCS.custom), "
                        f"got {type(mcs).__name__} {mcs!r}")
    return mcs


def airtime_s(channel_uses: NumberOrTensor, bandwidth_hz: NumberOrTensor,
              overhead: NumberOrTensor = 0.0) -> NumberOrTensor:
    """Seconds on air to send ``channel_uses`` complex symbols.

    :math:`t = n / (B (1 - \\mathrm{overhead}))` with :math:`n` = ``channel_uses``,
    :math:`B` = ``bandwidth_hz`` (one complex symbol per second per hertz, see the module
    docstring).

    Args:
        channel_uses: number of complex payload symbols, >= 0 (need not be an integer).
        bandwidth_hz: occupied bandwidth in Hz, > 0.
        overhead: fraction of resources without payload (pilots, CP, control), in [0, 1).

    Returns:
        Airtime in seconds: a float for Python-number inputs, else a broadcast tensor.

    Example:
        >>> airtime_s(1_000_000, 1e6)   # 1 s
        >>> airtime_s(1_000_000, 1e6, overhead=0.25)   # 4/3 s
    """
    n = as_real("channel_uses", channel_uses)
    check_bounds("channel_uses", n, low=0.0, low_inclusive=True, allowed=">= 0")
    b = _check_bandwidth(bandwidth_hz)
    o = _check_overhead(overhead)
    return n / (b * (1.0 - o))


def capacity_bits_per_use(snr_db: NumberOrTensor) -> NumberOrTensor:
    """Shannon capacity of the complex AWGN channel, :math:`\\log_2(1 + \\mathrm{SNR})`, in
    bits per channel use (complex symbol); ``snr_db`` is :math:`E_s/N_0` in dB.

    Computed as ``logaddexp(0, SNR_dB * ln(10)/10) / ln 2`` so that very low and very high
    SNRs neither underflow nor overflow.
    """
    s = _check_snr_db(snr_db)
    a = math.log(10.0) / 10.0
    if isinstance(s, torch.Tensor):
        return torch.logaddexp(torch.zeros_like(s), s * a) / math.log(2.0)
    x = s * a
    # log(1 + e^x) without overflow for large x or loss of precision for very negative x
    ln1p = x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))
    return ln1p / math.log(2.0)


def ergodic_rayleigh_capacity_bits_per_use(snr_db: float) -> float:
    r"""Ergodic capacity of the Rayleigh-fading channel with receiver CSI,
    :math:`E[\log_2(1 + \mathrm{SNR}\,|h|^2)] = e^{1/\mathrm{SNR}} E_1(1/\mathrm{SNR}) / \ln 2`
    (:math:`|h|^2 \sim \mathrm{Exp}(1)`), in bits per channel use; ``snr_db`` is the mean
    :math:`E_s/N_0` in dB."""
    from scipy.special import exp1

    x = 1.0 / 10.0 ** (float(_check_snr_db(snr_db)) / 10.0)
    if x > 50.0:  # e^x E1(x) = 1/x - 1/x^2 + 2/x^3 - ... (relative error < 1e-5 here)
        return (1.0 / x - 1.0 / x**2 + 2.0 / x**3 - 6.0 / x**4) / math.log(2.0)
    return float(math.exp(x) * exp1(x) / math.log(2.0))


def capacity_bps(bandwidth_hz: NumberOrTensor, snr_db: NumberOrTensor) -> NumberOrTensor:
    """Shannon capacity :math:`B \\log_2(1 + \\mathrm{SNR})` in bit/s of a band of
    ``bandwidth_hz`` Hz at :math:`E_s/N_0` = ``snr_db`` dB (no overhead)."""
    b = _check_bandwidth(bandwidth_hz)
    return b * capacity_bits_per_use(snr_db)


def mcs_rate_bps(mcs: MCS, bandwidth_hz: NumberOrTensor,
                 overhead: NumberOrTensor = 0.0) -> NumberOrTensor:
    """Information bit rate of ``mcs`` in bit/s: :math:`Q_m R \\cdot B (1 - \\mathrm{overhead})`.

    Counts every information bit the code carries (payload plus any CRC), as if every block
    were decoded; multiply by (1 - BLER) for a goodput.
    """
    se = _check_mcs(mcs).spectral_efficiency
    b = _check_bandwidth(bandwidth_hz)
    o = _check_overhead(overhead)
    return se * b * (1.0 - o)


def _se_fraction(mcs: MCS) -> Fraction:
    """:math:`Q_m R` as an exact fraction (TS 38.214 rates are multiples of 1/2048; a custom
    float rate such as 1/3 is snapped to the nearest fraction with denominator <= 10^6)."""
    return mcs.modulation_order * Fraction(mcs.code_rate).limit_denominator(1_000_000)


def _check_num_bits(num_bits: int | torch.Tensor) -> int | torch.Tensor:
    if isinstance(num_bits, bool) or (isinstance(num_bits, torch.Tensor)
                                      and num_bits.dtype == torch.bool):
        raise TypeError(f"num_bits must be an int or an integer tensor, got a bool {num_bits!r}")
    if isinstance(num_bits, torch.Tensor):
        if num_bits.is_complex() or num_bits.numel() == 0:
            raise ValueError(f"num_bits must be a non-empty real tensor, got dtype "
                             f"{num_bits.dtype} and shape {tuple(num_bits.shape)}")
        if num_bits.is_floating_point():
            if not bool(torch.isfinite(num_bits).all()) or \
                    not bool((num_bits == torch.round(num_bits)).all()):
                raise ValueError("num_bits must hold whole numbers of bits, got non-integer "
                                 "or non-finite values")
            num_bits = num_bits.to(torch.int64)
        if bool((num_bits < 0).any()):
            raise ValueError(f"num_bits must be >= 0, got a minimum of {int(num_bits.min())}")
        return num_bits.to(torch.int64)
    if isinstance(num_bits, float):
        if not (math.isfinite(num_bits) and num_bits == int(num_bits)):
            raise ValueError(f"num_bits must be a whole number of bits, got {num_bits!r}")
        num_bits = int(num_bits)
    if not isinstance(num_bits, int):
        try:
            num_bits = int(num_bits.__index__())  # numpy integers
        except AttributeError:
            raise TypeError(f"num_bits must be an int or an integer tensor, "
                            f"got {type(num_bits).__name__} {num_bits!r}") from None
    if num_bits < 0:
        raise ValueError(f"num_bits must be >= 0, got {num_bits}")
    return num_bits


def _ceil_div(a: int | torch.Tensor, p: int, q: int) -> int | torch.Tensor:
    """ceil(a * q / p) for integer a (int or int64 tensor) and positive ints p, q."""
    if isinstance(a, torch.Tensor):
        return -torch.div(-a * q, p, rounding_mode="floor")
    return -((-a * q) // p)


def channel_uses_for_bits(num_bits: int | torch.Tensor, mcs: MCS,
                          block_bits: int | None = None) -> int | torch.Tensor:
    """Channel uses (complex symbols) that ``num_bits`` information bits take with ``mcs``.

    * ``block_bits=None``: the bits fill whole symbols, :math:`\\lceil n / (Q_m R) \\rceil`.
    * ``block_bits=K``: the payload is cut into :math:`\\lceil n / K \\rceil` code blocks of
      ``K`` information bits (the last one zero-padded; count any CRC you want accounted for
      in ``K`` and in ``num_bits``), and each block takes :math:`\\lceil K / (Q_m R) \\rceil`
      whole symbols.

    The division is done in exact rational arithmetic (no ``ceil(999.9999999)`` surprises).
    Returns an int, or an int64 tensor for a tensor ``num_bits``.
    """
    se = _se_fraction(_check_mcs(mcs))
    n = _check_num_bits(num_bits)
    if block_bits is None:
        return _ceil_div(n, se.numerator, se.denominator)
    if isinstance(block_bits, bool) or not isinstance(block_bits, int) or block_bits < 1:
        raise ValueError(f"block_bits must be None or an int >= 1 (information bits per code "
                         f"block), got {block_bits!r}")
    per_block = _ceil_div(block_bits, se.numerator, se.denominator)
    num_blocks = _ceil_div(n, block_bits, 1)
    return num_blocks * per_block


def bits_airtime_s(num_bits: int | torch.Tensor, mcs: MCS, bandwidth_hz: NumberOrTensor,
                   overhead: NumberOrTensor = 0.0,
                   block_bits: int | None = None) -> NumberOrTensor:
    """Seconds on air to send ``num_bits`` information bits with ``mcs``.

    ``airtime_s(channel_uses_for_bits(num_bits, mcs, block_bits), bandwidth_hz, overhead)``:
    whole symbols (and whole code blocks if ``block_bits`` is given, see
    :func:`channel_uses_for_bits`), one transmission, no retransmissions.
    """
    uses = channel_uses_for_bits(num_bits, mcs, block_bits)
    return airtime_s(uses, bandwidth_hz, overhead)
