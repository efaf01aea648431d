"""Where does a CDDM's denoising go? The shipped codec with and without its CDDM, and decoders
re-trained on the CDDM's output and on the equalizer's output, at one SNR.

    python -m experiments.recipes.cddm_decoder_study --train-dir ../shared/datasets/csun_hays80 \\
        --test-dir ../shared/datasets/cbsd68 [--snr-db 10 --crops 4096 --steps 3000]

Systems, all on the same test crops, noise stream and SNR (AWGN):

* ``jscc``: the shipped codec (:func:`jscc.build_codec` with ``pretrained=True``);
* ``jscc+cddm, stage-1 decoder``: encoder → link → MMSE → shipped CDDM → the codec's decoder;
* ``jscc+cddm, decoder re-trained on CDDM output``: the decoder fine-tuned on ``crops``
  (image, CDDM-denoised latent) pairs of the training photos for ``steps`` steps (Adam, cosine
  decay from ``lr`` to ``lr / 100``, batch 16): stage 3 of the CDDM recipe, run longer;
* ``jscc, decoder re-trained on MMSE output`` (the control): the same fine-tuning on the
  equalizer's output instead, so that the difference between the last two is the CDDM's.

Writes ``study.csv`` (PSNR per system) and ``summary.md`` into a results folder.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import phy
from experiments.reporting.results import ResultsDir
from jscc.batches import CropBatchLoader
from jscc.data import ImageDataModule, ImageFolderDataset
from jscc.evaluation import evaluate_codec

__all__ = ["finetune_decoder", "main"]


def finetune_decoder(codec: torch.nn.Module, images: torch.Tensor, latents: torch.Tensor,
                     snr_db: float, steps: int, lr: float, seed: int = 0,
                     batch_size: int = 16) -> torch.nn.Module:
    """A copy of ``codec`` whose decoder is trained to map ``latents`` (received, denoised or
    not) to ``images`` at ``snr_db`` dB; the encoder stays frozen. Adam, cosine decay to
    ``lr / 100``."""
    dec = copy.deepcopy(codec).train()
    dec.requires_grad_(False)
    dec.decoder.requires_grad_(True)
    opt = torch.optim.Adam(dec.decoder.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 100)
    g = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), desc="decoder", leave=False):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=g)
        loss = F.mse_loss(dec.decode(latents[idx], snr_db), images[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return dec.eval()


@torch.no_grad()
def _received(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
              batch: int = 64) -> torch.Tensor:
    return torch.cat([fn(images[i:i + batch]) for i in range(0, images.shape[0], batch)])


def main(argv: list[str] | None = None) -> None:
    from cddm import pretrained as cddm_pretrained
    from cddm.pipeline import JSCCWithCDDM
    from jscc import build_codec

    p = argparse.ArgumentParser(prog="python -m experiments.recipes.cddm_decoder_study",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--train-dir", required=True, help="training photos (crops for the pairs)")
    p.add_argument("--test-dir", required=True, help="test photos (256x256 centre crops)")
    p.add_argument("--codec", default="adjscc")
    p.add_argument("--cbr", type=float, default=1 / 12)
    p.add_argument("--snr-db", type=float, default=10.0)
    p.add_argument("--crops", type=int, default=4096, help="64x64 training crops (pairs)")
    p.add_argument("--steps", type=int, default=3000, help="decoder fine-tuning steps")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-images", type=int, default=20, help="test crops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results")
    a = p.parse_args(argv)
    for name, v in (("--crops", a.crops), ("--steps", a.steps), ("--max-images", a.max_images)):
        if v < 1:
            p.error(f"{name} must be >= 1, got {v}")
    if not phy.SNR_DB_MIN <= a.snr_db <= phy.SNR_DB_MAX:
        p.error(f"--snr-db must lie in [{phy.SNR_DB_MIN}, {phy.SNR_DB_MAX}] dB, got {a.snr_db}")
    if not a.lr > 0:
        p.error(f"--lr must be > 0, got {a.lr}")

    codec = build_codec(a.codec, cbr=a.cbr, pretrained=True, channel="awgn")
    sampler = cddm_pretrained.load_sampler(cddm_pretrained.find(a.codec, a.cbr, "awgn"))
    test_ds = ImageFolderDataset(a.test_dir, crop=256, train=False)
    test = torch.stack([test_ds[i] for i in range(min(a.max_images, len(test_ds)))])
    dm = ImageDataModule(source="folder", train_dir=a.train_dir, builtin_train=True, crop=64,
                         batch_size=64, seed=a.seed + 7)
    loader = CropBatchLoader(dm.train_images(), 64, 64, -(-a.crops // 64), seed=a.seed + 7)
    train = torch.cat(list(loader))[: a.crops]
    train = train.float() / 255 if train.dtype == torch.uint8 else train
    link = phy.AnalogLink(phy.AWGN())
    s = a.snr_db
    config = {**vars(a), "num_test_images": int(test.shape[0])}
    res = ResultsDir.create("cddm_decoder_study", config, a.seed, root=a.out)
    with res:
        with_cddm = JSCCWithCDDM(codec, sampler).eval()
        rows: list[dict[str, Any]] = []

        def score(name: str, transmit: Any) -> None:
            r = evaluate_codec(transmit, test, link, [s], seed=a.seed)[0]
            rows.append({"system": name, "snr_db": s, "psnr": round(r.psnr, 3),
                         "msssim": round(r.msssim, 4)})
            print(f"{name}: {r.psnr:.2f} dB", flush=True)

        score("jscc", codec.transmit)
        score("jscc+cddm, stage-1 decoder", with_cddm.transmit)
        phy.set_seed(a.seed + 3)
        z_cddm = _received(lambda x: with_cddm.denoised_latent(x, link, s)[0], train)
        dec_cddm = finetune_decoder(codec, train, z_cddm, s, a.steps, a.lr, a.seed)
        score("jscc+cddm, decoder re-trained on CDDM output",
              JSCCWithCDDM(codec, sampler, decoder=dec_cddm).eval().transmit)
        phy.set_seed(a.seed + 3)
        z_mmse = _received(lambda x: link.send(codec.encode(x, s), s).z_hat, train)
        dec_mmse = finetune_decoder(codec, train, z_mmse, s, a.steps, a.lr, a.seed)

        def mmse_transmit(x: torch.Tensor, lk: phy.AnalogLink, snr: float) -> Any:
            r = lk.send(codec.encode(x, snr), snr)
            return dec_mmse.decode(r.z_hat, snr), r

        score("jscc, decoder re-trained on MMSE output", mmse_transmit)
        res.write_csv("study.csv", rows)
        base = rows[0]["psnr"]
        lines = [f"# CDDM decoder study, {a.codec} CBR {a.cbr:.4g}, AWGN {s:g} dB",
                 "", f"{test.shape[0]} test crops 256x256 of {a.test_dir}; decoders re-trained "
                 f"on {a.crops} 64x64 crops of {a.train_dir} for {a.steps} steps (lr {a.lr:g}, "
                 "cosine).", "", "| system | PSNR (dB) | vs jscc (dB) |", "|---|---|---|"]
        lines += [f"| {r['system']} | {r['psnr']:.2f} | {r['psnr'] - base:+.2f} |" for r in rows]
        res.write_summary("\n".join(lines) + "\n")
    print(f"results: {res.path}")


if __name__ == "__main__":
    main()
