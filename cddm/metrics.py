"""Channel-MSE metrics of CDDM and their closed forms.

The channel MSE is taken per complex symbol in the link's power-normalized domain (unit-energy
symbols), against the sent symbols ``x``: ``2 · mean((x_hat − x)²)`` over the real entries,
reported in dB. Closed forms (reference note §1.4), ``no = 10^(−SNR/10)``:

* AWGN, no equalization (the published AWGN baseline): ``no`` (= 1/SNR);
* AWGN, MMSE: ``no / (1 + no)``;
* per-symbol Rayleigh, MMSE: ``no · e^no · E1(no)``.
"""

from __future__ import annotations

import math

import torch
from scipy.special import exp1

import phy
from phy.channels import snr_db_to_no

from .sampler import CDDMSampler

__all__ = ["channel_mse", "channel_mse_db", "theory_mse_db"]


def channel_mse_db(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Per-complex-symbol MSE in dB: ``10 log10(2 · mean((x_hat − x)²))``."""
    mse = 2.0 * float((x_hat.double() - x.double()).square().mean())
    return 10.0 * math.log10(max(mse, 1e-30))


def theory_mse_db(channel: str, snr_db: float, equalizer: str = "mmse") -> float:
    """Closed-form channel MSE (dB) of the equalizer alone.

    Args:
        channel: ``"awgn"`` or ``"rayleigh"`` (per-symbol fading, perfect CSI).
        snr_db: Es/N0 (dB).
        equalizer: ``"mmse"`` or ``"raw"`` (AWGN only: no equalization).
    """
    no = float(snr_db_to_no(snr_db))
    if channel == "awgn":
        if equalizer not in ("mmse", "raw"):
            raise ValueError(f"equalizer must be 'mmse' or 'raw', got {equalizer!r}")
        mse = no if equalizer == "raw" else no / (1.0 + no)
    elif channel == "rayleigh":
        if equalizer != "mmse":
            raise ValueError(f"equalizer must be 'mmse' on Rayleigh, got {equalizer!r}")
        mse = no * math.exp(no) * float(exp1(no))
    else:
        raise ValueError(f"channel must be 'awgn' or 'rayleigh', got {channel!r}")
    return 10.0 * math.log10(mse)


@torch.no_grad()
def channel_mse(z: torch.Tensor, link: phy.AnalogLink, sampler: CDDMSampler,
                snr_db: float, awgn: bool) -> dict[str, float]:
    """Send the latents ``z`` ``[B, ...]`` once and measure the channel MSE (dB) of MMSE alone
    (``"mmse"``), the raw received signal on AWGN (``"raw"``) and MMSE + CDDM (``"cddm"``)."""
    r = link.send(z, snr_db)
    scale = r.scale.to(z.device).reshape((-1,) + (1,) * (z.dim() - 1))
    x = z / scale
    z_eq = r.z_hat.to(z.device) / scale
    out = {"mmse": channel_mse_db(z_eq, x)}
    if awgn:
        out["raw"] = channel_mse_db(z_eq * (1.0 + float(snr_db_to_no(snr_db))), x)
    out["cddm"] = channel_mse_db(sampler.denoise(z_eq, r.h.to(z.device), snr_db), x)
    return out
