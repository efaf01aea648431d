"""``semcom eval-cddm``: channel MSE and PSNR vs SNR of JSCC with and without CDDM.

For every SNR:

* channel MSE (dB, per complex symbol, power-normalized) of the MMSE equalizer alone, the raw
  received signal (AWGN), and MMSE + CDDM, on the JSCC latents of the evaluation images, with
  the closed forms of the equalizer alone beside them (``channel_mse.csv``/``.png``);
* PSNR/MS-SSIM of the JSCC codec, JSCC + CDDM (stage-1 decoder), JSCC + CDDM with the stage-3
  re-trained decoders (the one trained nearest to each SNR), and the digital baselines of
  :func:`experiments.recipes.eval_images.run_eval_images` (``mean.csv``, ``psnr_vs_snr.png``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import phy
from cddm.lightning import load_cddm_module, load_codec, load_stage3_module
from cddm.metrics import channel_mse, theory_mse_db
from cddm.pipeline import JSCCWithCDDM
from experiments.recipes.config import optional_positive_int, resolve_config
from experiments.recipes.eval_images import (
    DEFAULT_BASELINES,
    EvalImagesConfig,
    SystemFn,
    eval_channel,
    run_eval_images,
)
from experiments.reporting.eval_cddm import write_channel_mse_report
from experiments.reporting.results import ResultsDir
from experiments.values import Decoders, FloatGrid, IntGrid, Names, PositiveInt

__all__ = ["EvalCDDMConfig", "measure_channel_mse", "run_eval_cddm"]


@dataclass(frozen=True)
class EvalCDDMConfig:
    """What ``semcom eval-cddm`` evaluates (checked when built; the checkpoints load at run
    time).

    Attributes:
        cddm_checkpoint: :class:`cddm.lightning.CDDMModule` checkpoint (stage 2).
        jscc_checkpoint: the codec; default the one the CDDM was trained on.
        decoders: ``{snr_db: stage-3 checkpoint}`` (``10=a.ckpt,15=b.ckpt``); each SNR uses
            the nearest one.
        data: ``builtin`` or an image folder.
        crop: centre crop size in pixels.
        snr_db: Es/N0 grid in dB (``start:stop:step`` or ``a,b,c``).
        baselines: separate systems beside them (as for ``semcom eval-images``).
        mcs: MCS indices of the ``+ldpc`` curves.
        max_images: evaluate at most this many images.
        batch_size: images per batch.
        convention: override the sampler convention stored in the CDDM checkpoint.
        floor_db: override the sampler's SNR floor (``none``: no floor; ``checkpoint``: the
            stored one).
        seed: seed of every evaluation.
        csi_error_std: error of the receiver's channel estimate (:class:`phy.ImperfectCSI`),
            for the imperfect-CSI study; the channel MSE table uses it too.
    """

    cddm_checkpoint: str
    jscc_checkpoint: str | None = None
    decoders: Decoders = field(default_factory=Decoders)
    data: str = "builtin"
    crop: PositiveInt = 64
    snr_db: FloatGrid = FloatGrid((0, 5, 10, 15, 20))
    baselines: Names = Names(DEFAULT_BASELINES)
    mcs: IntGrid = IntGrid((0, 5, 9, 13, 17, 22))
    max_images: PositiveInt | None = None
    batch_size: int = 16
    convention: str | None = None
    floor_db: float | str | None = "checkpoint"
    seed: int = 0
    csi_error_std: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoders", Decoders.parse(self.decoders or {}))
        for name in ("crop", "max_images", "batch_size"):
            object.__setattr__(self, name, optional_positive_int(name, getattr(self, name)))
        for s, path in self.decoders:
            _check_file(f"decoder for {s:g} dB", path)
        # the image side's settings, checked as eval-images checks them
        EvalImagesConfig(checkpoint=None, cbr=1.0, **self._image_settings())

    def _image_settings(self) -> dict[str, Any]:
        return {"data": self.data, "crop": self.crop, "snr_db": self.snr_db,
                "baselines": self.baselines, "mcs": self.mcs, "max_images": self.max_images,
                "batch_size": self.batch_size, "seed": self.seed,
                "csi_error_std": self.csi_error_std}

    def sampler_overrides(self) -> dict[str, Any]:
        """The sampler settings that replace the checkpoint's."""
        out: dict[str, Any] = {}
        if self.convention is not None:
            out["convention"] = self.convention
        if self.floor_db != "checkpoint":
            out["floor_db"] = None if self.floor_db == "none" else self.floor_db
        return out


def _check_file(name: str, path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        raise ValueError(f"{name} {path!r} is not a file")


def measure_channel_mse(codec: Any, sampler: Any, images: torch.Tensor, channel: str,
                        snr_db: FloatGrid, *, batch_size: int = 16, seed: int = 0,
                        csi_error_std: float = 0.0, progress: bool = True) -> list[dict]:
    """Per SNR (dB): the channel MSE (dB per complex symbol, power-normalized) of the MMSE
    equalizer alone, the raw received signal (AWGN) and MMSE + CDDM (``sampler``) on the
    latents of ``images`` under ``codec``, with the equalizer's closed forms and CDDM's gain
    over MMSE."""
    phy.set_seed(seed + 1)
    link = phy.AnalogLink(eval_channel(channel, csi_error_std))
    rows = []
    for s in tqdm([float(x) for x in snr_db], desc="channel MSE", disable=not progress):
        acc: dict[str, list[float]] = {}
        for i in range(0, images.shape[0], batch_size):
            with torch.no_grad():
                z = codec.encode(images[i:i + batch_size], s)
            for k, v in channel_mse(z, link, sampler, s, channel == "awgn").items():
                acc.setdefault(k, []).append(v)
        row = {"snr_db": s, "steps": sampler.num_steps(s),
               **{f"mse_{k}_db": sum(v) / len(v) for k, v in acc.items()},
               "theory_mmse_db": theory_mse_db(channel, s)}
        if channel == "awgn":
            row["theory_raw_db"] = theory_mse_db(channel, s, "raw")
        row["gain_vs_mmse_db"] = row["mse_mmse_db"] - row["mse_cddm_db"]
        rows.append(row)
    return rows


def _cddm_systems(cfg: EvalCDDMConfig, jscc_checkpoint: str, codec: Any, sampler: Any
                  ) -> dict[str, SystemFn]:
    """``jscc+cddm`` (stage-1 decoder) and, with stage-3 decoders, ``jscc+cddm+redecoder``
    (the decoder trained nearest to each SNR)."""
    plain = JSCCWithCDDM(codec, sampler).eval()
    systems: dict[str, SystemFn] = {"jscc+cddm": lambda img, link, s: plain(img, link, s)}
    if cfg.decoders:
        redecoded = {float(s): load_stage3_module(
            p, jscc_checkpoint=jscc_checkpoint,
            cddm_checkpoint=cfg.cddm_checkpoint).system.eval() for s, p in cfg.decoders}
        for system in redecoded.values():
            system.sampler = sampler

        def with_redecoder(img: torch.Tensor, link: phy.AnalogLink, s: float) -> torch.Tensor:
            nearest = min(redecoded, key=lambda k: abs(k - s))
            return redecoded[nearest](img, link, s)

        systems["jscc+cddm+redecoder"] = with_redecoder
    return systems


def run_eval_cddm(cfg: EvalCDDMConfig | None = None, *, out: str | Path = "results",
                  resume: str | Path | None = None, progress: bool = True,
                  **settings: Any) -> ResultsDir:
    """``semcom eval-cddm``: a stage-2 CDDM checkpoint (and stage-3 decoders) against JSCC
    and the baselines, into a results folder (see the module docstring).

    Args:
        cfg: what to evaluate; or give its fields as keywords (``settings``).
        out: root folder of the results.
        resume: an earlier eval-cddm results folder: keep its rows, evaluate the rest.
        progress: show progress bars.
    """
    cfg = resolve_config(EvalCDDMConfig, cfg, settings)
    cddm = load_cddm_module(cfg.cddm_checkpoint, jscc_checkpoint=cfg.jscc_checkpoint)
    jscc_checkpoint = cddm.jscc_checkpoint
    if jscc_checkpoint is None:
        raise ValueError("this CDDM was trained on raw payloads: pass jscc_checkpoint")
    channel = cddm.channel_name
    sampler = cddm.sampler(**cfg.sampler_overrides())
    codec = load_codec(jscc_checkpoint)
    latent = tuple(codec.latent_shape((cfg.crop, cfg.crop)))
    if latent[0] != cddm.latent_shape[0]:
        raise ValueError(f"the CDDM was trained on latents {tuple(cddm.latent_shape)} but the "
                         f"codec gives {latent} for crop={cfg.crop}")
    systems = _cddm_systems(cfg, jscc_checkpoint, codec, sampler)

    def mse_section(res: ResultsDir, images: torch.Tensor) -> str:
        rows = measure_channel_mse(codec, sampler, images, channel, cfg.snr_db,
                                   batch_size=cfg.batch_size, seed=cfg.seed,
                                   csi_error_std=cfg.csi_error_std, progress=progress)
        return write_channel_mse_report(
            rows, res, f"{channel}, latent {latent}, {images.shape[0]} images",
            raw=channel == "awgn")

    return run_eval_images(
        checkpoint=jscc_checkpoint, channel=channel, **cfg._image_settings(), out=out,
        progress=progress, analog_systems=systems, name="eval_cddm", extra=mse_section,
        resume=resume,
        config_extra={"cddm_checkpoint": cfg.cddm_checkpoint,
                      "decoders": {str(k): v for k, v in cfg.decoders},
                      "sampler": repr(sampler)})
