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

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

import phy
from cddm.lightning import load_cddm_module, load_codec, load_stage3_module
from cddm.metrics import channel_mse, theory_mse_db
from cddm.pipeline import JSCCWithCDDM
from experiments.recipes.eval_images import DEFAULT_BASELINES, eval_channel, run_eval_images
from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir
from experiments.values import Decoders, FloatGrid, IntGrid, Names, PositiveInt

__all__ = ["run_eval_cddm"]


def _check_file(name: str, path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        raise ValueError(f"{name} {path!r} is not a file")


def run_eval_cddm(*, cddm_checkpoint: str, jscc_checkpoint: str | None = None,
                  decoders: Decoders | None = None, data: str = "builtin",
                  crop: PositiveInt = 64, snr_db: FloatGrid = FloatGrid((0, 5, 10, 15, 20)),
                  baselines: Names = Names(DEFAULT_BASELINES),
                  mcs: IntGrid = IntGrid((0, 5, 9, 13, 17, 22)),
                  max_images: PositiveInt | None = None,
                  batch_size: int = 16, convention: str | None = None,
                  floor_db: float | str | None = "checkpoint", seed: int = 0,
                  out: str | Path = "results", resume: str | Path | None = None,
                  csi_error_std: float = 0.0, progress: bool = True) -> ResultsDir:
    """Evaluate a stage-2 CDDM checkpoint (and stage-3 decoders) against JSCC and baselines.

    Args:
        cddm_checkpoint: :class:`cddm.lightning.CDDMModule` checkpoint.
        jscc_checkpoint: the codec; default the one the CDDM was trained on.
        decoders: ``{snr_db: stage-3 checkpoint}``; each SNR uses the nearest one.
        convention, floor_db: override the sampler settings stored in the CDDM checkpoint.
        csi_error_std: error of the receiver's channel estimate (:class:`phy.ImperfectCSI`),
            for the imperfect-CSI study; the channel MSE table uses it too.
        Other arguments as for :func:`experiments.recipes.eval_images.run_eval_images`.
    """
    cddm = load_cddm_module(cddm_checkpoint, jscc_checkpoint=jscc_checkpoint)
    jscc_checkpoint = cddm.jscc_checkpoint
    if jscc_checkpoint is None:
        raise ValueError("this CDDM was trained on raw payloads: pass jscc_checkpoint")
    decoders = dict(Decoders.parse(decoders or {}))
    snr_db, mcs = FloatGrid.parse(snr_db), IntGrid.parse(mcs)
    if floor_db == "none":
        floor_db = None
    for s, path in (decoders or {}).items():
        _check_file(f"decoder for {s} dB", path)
    channel = cddm.channel_name
    overrides: dict = {}
    if convention is not None:
        overrides["convention"] = convention
    if floor_db != "checkpoint":
        overrides["floor_db"] = floor_db
    sampler = cddm.sampler(**overrides)
    codec = load_codec(jscc_checkpoint)
    latent = tuple(codec.latent_shape((crop, crop)))
    if latent[0] != cddm.latent_shape[0]:
        raise ValueError(f"the CDDM was trained on latents {tuple(cddm.latent_shape)} but the "
                         f"codec gives {latent} for crop={crop}")
    plain = JSCCWithCDDM(codec, sampler).eval()
    systems = {"jscc+cddm": lambda img, link, s: plain(img, link, s)}
    if decoders:
        redecoded = {float(s): load_stage3_module(p, jscc_checkpoint=jscc_checkpoint,
                                                   cddm_checkpoint=cddm_checkpoint).system.eval()
                     for s, p in decoders.items()}
        for system in redecoded.values():
            system.sampler = sampler

        def with_redecoder(img: torch.Tensor, link: phy.AnalogLink, s: float) -> torch.Tensor:
            nearest = min(redecoded, key=lambda k: abs(k - s))
            return redecoded[nearest](img, link, s)

        systems["jscc+cddm+redecoder"] = with_redecoder

    def mse_section(res: ResultsDir, images: torch.Tensor) -> str:
        phy.set_seed(seed + 1)
        link = phy.AnalogLink(eval_channel(channel, csi_error_std))
        rows = []
        for s in tqdm(list(snr_db), desc="channel MSE", disable=not progress):
            acc: dict[str, list[float]] = {}
            for i in range(0, images.shape[0], batch_size):
                with torch.no_grad():
                    z = codec.encode(images[i:i + batch_size], float(s))
                for k, v in channel_mse(z, link, sampler, float(s), channel == "awgn").items():
                    acc.setdefault(k, []).append(v)
            row = {"snr_db": float(s), "steps": sampler.num_steps(float(s)),
                   **{f"mse_{k}_db": sum(v) / len(v) for k, v in acc.items()},
                   "theory_mmse_db": theory_mse_db(channel, float(s))}
            if channel == "awgn":
                row["theory_raw_db"] = theory_mse_db(channel, float(s), "raw")
            row["gain_vs_mmse_db"] = row["mse_mmse_db"] - row["mse_cddm_db"]
            rows.append(row)
        res.write_csv("channel_mse.csv", rows)
        fig, ax = plt.subplots(figsize=(6, 4))
        x = [r["snr_db"] for r in rows]
        ax.plot(x, [r["mse_mmse_db"] for r in rows], "o-", label="MMSE")
        ax.plot(x, [r["theory_mmse_db"] for r in rows], "k:", label="MMSE, closed form")
        if channel == "awgn":
            ax.plot(x, [r["mse_raw_db"] for r in rows], "s--", label="raw (no equalizer)")
        ax.plot(x, [r["mse_cddm_db"] for r in rows], "D-", lw=2, label="MMSE + CDDM")
        finish_axes(ax, "SNR $E_s/N_0$ (dB)", "channel MSE per symbol (dB)",
                    f"{channel}, latent {latent}, {images.shape[0]} images", title_size=9,
                    legend={"fontsize": 8})
        fig.tight_layout()
        res.save_figure(fig, "channel_mse.png")
        plt.close(fig)
        lines = ["# Channel MSE (dB per complex symbol)", "",
                 "| SNR (dB) | steps | MMSE | MMSE + CDDM | gain (dB) | MMSE closed form |",
                 "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['snr_db']:g} | {r['steps']} | {r['mse_mmse_db']:.2f} | "
                         f"{r['mse_cddm_db']:.2f} | {r['gain_vs_mmse_db']:+.2f} | "
                         f"{r['theory_mmse_db']:.2f} |")
        return "\n".join(lines) + "\n"

    return run_eval_images(
        checkpoint=jscc_checkpoint, data=data, crop=crop, channel=channel, snr_db=snr_db,
        baselines=baselines, mcs=mcs, max_images=max_images, batch_size=batch_size, seed=seed,
        out=out, progress=progress, analog_systems=systems, name="eval_cddm",
        extra=mse_section,
        resume=resume, csi_error_std=csi_error_std,
        config_extra={"cddm_checkpoint": cddm_checkpoint,
                      "decoders": {str(k): v for k, v in (decoders or {}).items()},
                      "sampler": repr(sampler)})
