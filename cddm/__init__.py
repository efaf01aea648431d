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


def _jscc_cddm_system(*, channel, cbr, codec: str = "adjscc", snr_db: float = 10.0,
                      **kwargs):
    """``jscc.systems.build_system("jscc+cddm", ...)``: the shipped ADJSCC + CDDM with the
    stage-3 decoder nearest to ``snr_db`` (:meth:`JSCCWithCDDM.from_pretrained`)."""
    from jscc.systems import JSCCSystem

    from .pipeline import JSCCWithCDDM

    cbr = 1 / 12 if cbr is None else cbr
    name = channel if isinstance(channel, str) else "awgn"
    model = JSCCWithCDDM.from_pretrained(codec, cbr=cbr, channel=name, snr_db=snr_db)
    return JSCCSystem(model, channel, cbr, name=kwargs.pop("name", "jscc+cddm"), **kwargs)


def _register() -> None:
    from jscc.systems import register_system

    register_system("jscc+cddm", _jscc_cddm_system)


_register()

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
