"""semcom.cddm: the channel denoising diffusion model (CDDM) that follows the equalizer.

* :class:`CDDMSchedule`: betas, ``alpha_bar``, the SNR table, SNR-matched start steps (official
  and consistent conventions), the channel-shaped forward process and the deterministic reverse
  chain.
* :mod:`cddm.weights`: ``W_s``, ``W_n`` of the equalized channel from what ``phy`` returns.
* :mod:`cddm.nets`: the U-Net ε-predictor for latents (published size and a CPU size) and an MLP
  ε-predictor for vector payloads.
* :class:`CDDMSampler`: ``denoise(z_eq, h, snr_db, design_snr_db)`` on AnalogLink's output.
* :mod:`cddm.lightning`: stage 2 (:class:`~cddm.lightning.CDDMModule`) and stage 3
  (:class:`~cddm.lightning.DecoderStage3Module`); stage 1 is :class:`jscc.lightning.JSCCModule`.
* :class:`~cddm.pipeline.JSCCWithCDDM`: encoder → AnalogLink → MMSE → CDDM → decoder.
* :mod:`cddm.metrics`: channel MSE and its closed forms.
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
