"""CDDM benchmark: channel MSE and PSNR of JSCC with and without CDDM on real photos.

``python -m experiments.bench_cddm --jscc <JSCCModule ckpt>
--train-dir ../shared/datasets/csun_hays80 --test-dir ../shared/datasets/cbsd68``

1. A latent bank: random crops of the training folder encoded once by the frozen JSCC encoder
   (at an SNR drawn uniformly from ``--encoder-snr-range`` per crop, for SNR-adaptive codecs).
   Encoding once instead of every step is what makes stage 2 affordable on a CPU.
2. Stage 2 per channel (AWGN, per-symbol Rayleigh): :class:`cddm.lightning.CDDMModule` on the
   bank for ``--steps`` steps.
3. Channel MSE on the test crops for every sampler variant (official with the 10 dB floor,
   consistent without floor) against MMSE alone and the closed forms (``channel_mse.csv``).
4. Stage 3 (AWGN): the decoder re-trained at each ``--stage3-snr`` on precomputed
   (crop, denoised latent) pairs, then ``semcom eval-cddm``'s PSNR evaluation with the digital
   baselines (a sub-folder).

Writes a results folder (config, manifest, CSV, PNG, summary.md); checkpoints are kept so a
re-run with ``--resume <folder>`` skips finished stages.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

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
from experiments.recipes.eval_cddm import run_eval_cddm
from experiments.reporting.plots import finish_axes
from experiments.reporting.results import ResultsDir
from jscc.data import ImageFolderDataset
from phy.sweep import make_channel

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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jscc", required=True, help="JSCCModule checkpoint (stage 1)")
    p.add_argument("--train-dir", required=True)
    p.add_argument("--test-dir", required=True)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--crops-per-image", type=int, default=24)
    p.add_argument("--encoder-snr-range", type=float, nargs=2, default=(0.0, 20.0))
    p.add_argument("--channels", default="awgn,rayleigh")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=int, default=16, help="U-Net base width ch")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--snr-db", default="0,5,10,15,20")
    p.add_argument("--stage3-snr", default="5,10,15")
    p.add_argument("--stage3-crops", type=int, default=320)
    p.add_argument("--stage3-epochs", type=int, default=10)
    p.add_argument("--mcs", default="0,5,9,13,17,22")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results")
    p.add_argument("--resume", default=None, help="an earlier results folder of this benchmark")
    a = p.parse_args(argv)
    snrs = [float(s) for s in a.snr_db.split(",")]
    channels = [c.strip() for c in a.channels.split(",") if c.strip()]
    config = {k: v for k, v in vars(a).items() if k != "resume"}
    res = ResultsDir.create("bench_cddm", config, a.seed, root=a.out) if a.resume is None \
        else None
    root = Path(a.resume) if a.resume else res.path
    ckpt_dir = root / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    codec = load_codec(a.jscc)
    pl.seed_everything(a.seed, verbose=False)
    train = _crops(a.train_dir, a.crop, a.crops_per_image, True, a.seed)
    test = _crops(a.test_dir, a.crop, 1, False, a.seed)
    bank = _encode(codec, train, tuple(a.encoder_snr_range), a.seed)
    latent = tuple(bank.shape[1:])
    rows, lines = [], []
    for ch in channels:
        ckpt = ckpt_dir / f"cddm_{ch}.ckpt"
        if not ckpt.exists():
            pl.seed_everything(a.seed, verbose=False)
            m = CDDMModule(net={"name": "unet-small", "ch": a.width}, latent_shape=latent,
                           channel=ch, train_snr_db=13.0, lr=a.lr, ema_decay=0.995,
                           seed=a.seed)
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

    if "awgn" not in channels:
        return
    cddm_ckpt = ckpt_dir / "cddm_awgn.ckpt"
    decoders = {}
    stage3_imgs = train[: a.stage3_crops]
    for s in [float(v) for v in a.stage3_snr.split(",") if v]:
        dec_ckpt = ckpt_dir / f"stage3_awgn_{s:g}dB.ckpt"
        if not dec_ckpt.exists():
            pl.seed_everything(a.seed, verbose=False)
            m3 = DecoderStage3Module(jscc_checkpoint=a.jscc, cddm_checkpoint=str(cddm_ckpt),
                                     channel="awgn", snr_db=s)
            phy.set_seed(a.seed + 2)
            pairs = denoised_pairs(m3.system, stage3_imgs, phy.AnalogLink(phy.AWGN()), s,
                                   batch_size=32)
            trainer = pl.Trainer(max_epochs=a.stage3_epochs, accelerator="cpu", logger=False,
                                 enable_checkpointing=False, limit_val_batches=0,
                                 enable_model_summary=False, default_root_dir=root)
            trainer.fit(m3, DataLoader(pairs, batch_size=16, shuffle=True))
            trainer.save_checkpoint(dec_ckpt)
        decoders[s] = str(dec_ckpt)
    run_eval_cddm(cddm_checkpoint=str(cddm_ckpt), jscc_checkpoint=a.jscc, decoders=decoders,
                  data=a.test_dir, crop=a.crop, snr_db=snrs,
                  mcs=[int(v) for v in a.mcs.split(",")], seed=a.seed, out=root)
    if res is not None:
        res.finish()


if __name__ == "__main__":
    main()
