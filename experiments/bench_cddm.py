"""CDDM benchmark: channel MSE and PSNR of JSCC with and without CDDM on real photos.

``semcom bench-cddm --jscc <JSCCModule ckpt or pretrained:NAME>
--train_dir ../shared/datasets/csun_hays80 --test_dir ../shared/datasets/cbsd68``
(``python -m experiments.bench_cddm`` is the same command.)

1. A latent bank: random crops of the training folder encoded once by the frozen JSCC encoder
   (at an SNR drawn uniformly from ``--encoder_snr_range`` per crop, for SNR-adaptive codecs).
   Encoding once instead of every step is what makes stage 2 affordable on a CPU.
2. Stage 2 per channel (AWGN, per-symbol Rayleigh): :class:`cddm.lightning.CDDMModule` on the
   bank for ``--steps`` steps.
3. Channel MSE on the test crops for every sampler variant (official with the 10 dB floor,
   consistent without floor) against MMSE alone and the closed forms (``channel_mse.csv``).
4. Stage 3 (each of ``--stage3_channels``, AWGN by default): the decoder re-trained at each
   ``--stage3_snr`` on precomputed (crop, denoised latent) pairs, then ``semcom eval-cddm``'s
   PSNR evaluation with the digital baselines for each ``--csi_error_std`` (one sub-folder
   of ``eval_cddm/`` each; its ``config.yaml`` names the channel and the error).

Writes a results folder (config, manifest, CSV, PNG, summary.md); checkpoints are kept so a
re-run with ``--resume <folder>`` (the same settings) skips finished stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

import phy
from cddm.lightning import (
    CDDMModule,
    DecoderStage3Module,
    denoised_pairs,
    load_cddm_module,
    load_codec,
)
from cddm.metrics import channel_mse, theory_mse_db
from experiments.cli import entry_point
from experiments.recipes.config import config_dict, resolve_config
from experiments.recipes.eval_cddm import run_eval_cddm
from experiments.recipes.eval_images import DEFAULT_BASELINES
from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir
from experiments.values import FloatGrid, IntGrid, Names
from jscc.data import ImageFolderDataset
from phy.checks import check_number, check_positive_int
from phy.sweep import make_channel

__all__ = ["BenchCDDMConfig", "main", "run_bench_cddm"]

VARIANTS = {"official": dict(convention="official", floor_db=10.0),
            "consistent": dict(convention="consistent", floor_db=None)}


def _crops(folder: str, crop: int, per_image: int, train: bool, seed: int) -> torch.Tensor:
    ds = ImageFolderDataset(folder, crop=crop, train=train, crops_per_image=per_image, seed=seed)
    return torch.stack([ds[i] for i in tqdm(range(len(ds)), desc=f"crops of {folder}")])


@torch.no_grad()
def _encode(codec: torch.nn.Module, images: torch.Tensor, snr_range: tuple[float, float],
            seed: int, batch: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    snr = snr_range[0] + (snr_range[1] - snr_range[0]) * torch.rand(images.shape[0], generator=g)
    return torch.cat([codec.encode(images[i:i + batch], snr[i:i + batch])
                      for i in range(0, images.shape[0], batch)])


@dataclass(frozen=True)
class BenchCDDMConfig:
    """What ``semcom bench-cddm`` trains and measures (checked when built).

    Attributes:
        jscc: the frozen JSCC codec: a JSCCModule checkpoint or ``pretrained:<entry>``.
        train_dir: training image folder (the latent bank's crops).
        test_dir: test image folder (one centre crop per image).
        crop: crop size in pixels.
        crops_per_image: random training crops per image.
        encoder_snr_range: ``lo,hi`` dB, the encoder's SNR per bank crop (uniform).
        channels: channels of stage 2 (``awgn``, ``rayleigh``).
        steps: stage-2 training steps per channel.
        batch_size: stage-2 latents per batch.
        width: U-Net base width.
        lr: stage-2 learning rate.
        snr_db: test SNRs in dB.
        stage3_snr: SNRs (dB) of the re-trained stage-3 decoders.
        stage3_channels: channels (among ``channels``) that get stage-3 decoders and the PSNR
            evaluation.
        csi_error_std: receiver channel-estimate errors of the PSNR evaluation (one
            ``eval-cddm`` run each; :class:`phy.ImperfectCSI`).
        baselines: separate systems of the PSNR evaluation (``none`` for none).
        stage3_crops: training crops of stage 3.
        stage3_epochs: stage-3 epochs.
        mcs: MCSs of the JPEG2000 + LDPC baseline in the PSNR evaluation.
        seed: seed of every stage.
    """

    jscc: str
    train_dir: str
    test_dir: str
    crop: int = 64
    crops_per_image: int = 24
    encoder_snr_range: FloatGrid = FloatGrid((0.0, 20.0))
    channels: Names = Names(("awgn", "rayleigh"))
    steps: int = 1500
    batch_size: int = 32
    width: int = 16
    lr: float = 5e-4
    snr_db: FloatGrid = FloatGrid((0.0, 5.0, 10.0, 15.0, 20.0))
    stage3_snr: FloatGrid = FloatGrid((5.0, 10.0, 15.0))
    stage3_channels: Names = Names(("awgn",))
    csi_error_std: FloatGrid = FloatGrid((0.0,))
    baselines: Names = Names(DEFAULT_BASELINES)
    stage3_crops: int = 320
    stage3_epochs: int = 10
    mcs: IntGrid = IntGrid((0, 5, 9, 13, 17, 22))
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("crop", "crops_per_image", "steps", "batch_size", "width",
                     "stage3_crops", "stage3_epochs"):
            check_positive_int(name, getattr(self, name))
        check_number("lr", self.lr, low=0.0, low_open=True)
        enc = FloatGrid(float(v) for v in FloatGrid.parse(self.encoder_snr_range))
        if len(enc) != 2 or enc[0] > enc[1]:
            raise ValueError(f"encoder_snr_range must be 'lo,hi' in dB with lo <= hi, got "
                             f"{self.encoder_snr_range!r}")
        object.__setattr__(self, "encoder_snr_range", enc)
        for name in ("snr_db", "stage3_snr"):
            object.__setattr__(self, name, FloatGrid(
                float(v) for v in FloatGrid.parse(getattr(self, name))))
        object.__setattr__(self, "channels", Names.parse(self.channels))
        object.__setattr__(self, "stage3_channels", Names.parse(self.stage3_channels))
        object.__setattr__(self, "baselines", Names.parse(self.baselines))
        errs = FloatGrid(float(v) for v in FloatGrid.parse(self.csi_error_std))
        if not errs or any(not 0.0 <= e < 1.0 for e in errs):
            raise ValueError(f"csi_error_std must hold values in [0, 1), got {list(errs)}")
        object.__setattr__(self, "csi_error_std", errs)
        for ch in (*self.channels, *self.stage3_channels):
            make_channel(ch)  # a clear error for an unknown channel
        object.__setattr__(self, "mcs", IntGrid(int(v) for v in IntGrid.parse(self.mcs)))

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.yaml`` records them (the seed apart)."""
        return config_dict(self)


def run_bench_cddm(cfg: BenchCDDMConfig | None = None, *, out: str | Path = "results",
                   resume: str | Path | None = None, **settings: Any) -> ResultsDir:
    """``semcom bench-cddm``: train CDDM stage 2 per channel (and stage 3 on AWGN) on a
    frozen JSCC codec and measure channel MSE and PSNR against MMSE alone, in a results
    folder (settings checked before any folder exists).

    Args:
        cfg: what to train and measure; or give its fields as keywords (``settings``).
        out: root folder of the results.
        resume: an earlier results folder of this benchmark (same settings): finished stages
            are skipped.
    """
    cfg = resolve_config(BenchCDDMConfig, cfg, settings)
    codec = load_codec(cfg.jscc)
    train = _crops(cfg.train_dir, cfg.crop, cfg.crops_per_image, True, cfg.seed)
    test = _crops(cfg.test_dir, cfg.crop, 1, False, cfg.seed)
    res = ResultsDir.create("bench_cddm", cfg.to_dict(), cfg.seed, root=out) \
        if resume is None else ResultsDir.resume(resume, "bench_cddm", cfg.to_dict(), cfg.seed)
    with res:
        _run(cfg, res.path, codec, train, test)
    return res


def _run(a: BenchCDDMConfig, root: Path, codec: torch.nn.Module, train: torch.Tensor,
         test: torch.Tensor) -> None:
    """The benchmark's stages in the results folder ``root`` (see the module docstring)."""
    config = a.to_dict()
    enc_range = (a.encoder_snr_range[0], a.encoder_snr_range[1])
    channels, snrs, stage3_snrs = list(a.channels), list(a.snr_db), list(a.stage3_snr)
    mcs = list(a.mcs)
    ckpt_dir = root / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(a.seed, verbose=False)
    bank = _encode(codec, train, enc_range, a.seed)
    latent = tuple(bank.shape[1:])
    rows, lines = [], []
    for ch in channels:
        ckpt = ckpt_dir / f"cddm_{ch}.ckpt"
        if not ckpt.exists():
            pl.seed_everything(a.seed, verbose=False)
            m = CDDMModule(net={"name": "unet-small", "ch": a.width}, latent_shape=latent,
                           image_size=a.crop, channel=ch, train_snr_db=13.0, lr=a.lr,
                           ema_decay=0.995, seed=a.seed)
            trainer = pl.Trainer(max_steps=a.steps, max_epochs=-1, accelerator="cpu",
                                 logger=False, enable_checkpointing=False,
                                 gradient_clip_val=1.0, limit_val_batches=0,
                                 enable_model_summary=False, default_root_dir=root)
            trainer.fit(m, DataLoader(TensorDataset(bank), batch_size=a.batch_size,
                                      shuffle=True, drop_last=True))
            trainer.save_checkpoint(ckpt)
        m = load_cddm_module(ckpt)
        link = phy.AnalogLink(make_channel(ch))
        for variant, kw in VARIANTS.items():
            sampler = m.sampler(**kw)
            for s in tqdm(snrs, desc=f"channel MSE {ch} {variant}"):
                phy.set_seed(a.seed + 1)
                acc: dict[str, list[float]] = {}
                for i in range(0, test.shape[0], 32):
                    with torch.no_grad():
                        z = codec.encode(test[i:i + 32], s)
                    for k, v in channel_mse(z, link, sampler, s, ch == "awgn").items():
                        acc.setdefault(k, []).append(10 ** (v / 10) * z.shape[0])
                n = test.shape[0]
                row = {"channel": ch, "variant": variant, "snr_db": s,
                       "steps": sampler.num_steps(s),
                       **{f"mse_{k}_db": 10 * math.log10(sum(v) / n) for k, v in acc.items()},
                       "theory_mmse_db": theory_mse_db(ch, s)}
                row["gain_db"] = row["mse_mmse_db"] - row["mse_cddm_db"]
                rows.append(row)
                print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    out = ResultsDir.create("bench_cddm_mse", config, a.seed, root=root)
    with out:
        out.write_csv("channel_mse.csv", rows)
        fig, axes = plt.subplots(1, len(channels), figsize=(5.5 * len(channels), 4),
                                 squeeze=False)
        for ax, ch in zip(axes[0], channels, strict=True):
            sel = [r for r in rows if r["channel"] == ch and r["variant"] == "official"]
            ax.plot(snrs, [r["mse_mmse_db"] for r in sel], "o-", label="MMSE")
            ax.plot(snrs, [r["theory_mmse_db"] for r in sel], "k:", label="MMSE closed form")
            for variant in VARIANTS:
                sel = [r for r in rows if r["channel"] == ch and r["variant"] == variant]
                ax.plot(snrs, [r["mse_cddm_db"] for r in sel], "D-",
                        label=f"MMSE + CDDM ({variant})")
            finish_axes(ax, "SNR (dB)", "channel MSE (dB)",
                        f"{ch}, latent {latent}, {test.shape[0]} test crops", title_size=9,
                        legend={"fontsize": 7})
        fig.tight_layout()
        out.save_figure(fig, "channel_mse.png")
        plt.close(fig)
        lines = ["| channel | variant | SNR | steps | MMSE | +CDDM | gain (dB) |", "|---" * 7 + "|"]
        lines += [f"| {r['channel']} | {r['variant']} | {r['snr_db']:g} | {r['steps']} | "
                  f"{r['mse_mmse_db']:.2f} | {r['mse_cddm_db']:.2f} | {r['gain_db']:+.2f} |"
                  for r in rows]
        out.write_summary("# CDDM channel MSE\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))

    stage3_imgs = train[: a.stage3_crops]
    for ch in (c for c in a.stage3_channels if c in channels):
        cddm_ckpt = ckpt_dir / f"cddm_{ch}.ckpt"
        decoders = {}
        for s in stage3_snrs:
            dec_ckpt = ckpt_dir / f"stage3_{ch}_{s:g}dB.ckpt"
            if not dec_ckpt.exists():
                pl.seed_everything(a.seed, verbose=False)
                m3 = DecoderStage3Module(jscc_checkpoint=a.jscc, cddm_checkpoint=str(cddm_ckpt),
                                         channel=ch, snr_db=s)
                phy.set_seed(a.seed + 2)
                pairs = denoised_pairs(m3.system, stage3_imgs, phy.AnalogLink(make_channel(ch)),
                                       s, batch_size=32)
                trainer = pl.Trainer(max_epochs=a.stage3_epochs, accelerator="cpu",
                                     logger=False, enable_checkpointing=False,
                                     limit_val_batches=0, enable_model_summary=False,
                                     default_root_dir=root)
                trainer.fit(m3, DataLoader(pairs, batch_size=16, shuffle=True))
                trainer.save_checkpoint(dec_ckpt)
            decoders[s] = str(dec_ckpt)
        for err in a.csi_error_std:
            run_eval_cddm(cddm_checkpoint=str(cddm_ckpt), jscc_checkpoint=a.jscc,
                          decoders=decoders, data=a.test_dir, crop=a.crop, snr_db=snrs,
                          mcs=mcs, seed=a.seed, csi_error_std=err,
                          baselines=a.baselines, out=root)


#: ``python -m experiments.bench_cddm``: ``semcom bench-cddm``
main = entry_point("bench-cddm")


if __name__ == "__main__":
    raise SystemExit(main())
