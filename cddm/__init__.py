"""semcom.cddm: the channel denoising diffusion model that follows the equalizer.

So far: the schedule, SNR-matched start step and the deterministic sampler maths
(:class:`cddm.schedule.CDDMSchedule`), and the equalized-channel weights ``W_s``/``W_n``
(:mod:`cddm.weights`), and the noise predictors (:mod:`cddm.nets`).
"""

from __future__ import annotations

from .nets import MLPDenoiser, UNet, build_net, net_from_config
from .sampler import CDDMSampler
from .schedule import CDDMSchedule
from .weights import equalizer_weights, latent_weights

__all__ = [
    "CDDMSampler",
    "CDDMSchedule",
    "MLPDenoiser",
    "UNet",
    "build_net",
    "equalizer_weights",
    "latent_weights",
    "net_from_config",
]
