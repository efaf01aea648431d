"""Where does a CDDM's denoising go? The shipped codec with and without its CDDM, and decoders
re-trained on the CDDM's output and on the equalizer's output, at one SNR.

    semcom cddm-decoder-study --train_dir ../shared/datasets/csun_hays80 \\
        --test_dir ../shared/datasets/cbsd68 [--snr_db 10 --crops 4096 --steps 3000]

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

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import phy
from experiments.cli import entry_point
from experiments.reporting.results import ResultsDir
from experiments.values import PositiveInt
from jscc.batches import CropBatchLoader
from jscc.data import ImageDataModule, ImageFolderDataset
from jscc.evaluation import evaluate_codec

__all__ = ["finetune_decoder", "main", "run_cddm_decoder_study"]


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


def run_cddm_decoder_study(*, train_dir: str, test_dir: str, codec: str = "adjscc",
                           cbr: float = 1 / 12, snr_db: float = 10.0,
                           crops: PositiveInt = 4096, steps: PositiveInt = 3000,
                           lr: float = 1e-4, max_images: PositiveInt = 20, seed: int = 0,
                           out: str | Path = "results") -> ResultsDir:
    """Score the shipped codec with and without the shipped CDDM, and with its decoder
    re-trained on CDDM and on MMSE output, at one SNR; write the results folder.

    Args:
        train_dir: training photos (the crops of the re-training pairs).
        test_dir: test photos (256x256 centre crops).
        codec: the shipped codec (with a shipped CDDM) to study.
        cbr: its channel bandwidth ratio.
        snr_db: the AWGN Es/N0 in dB.
        crops: 64x64 training crops (pairs).
        steps: decoder fine-tuning steps.
        lr: fine-tuning learning rate (cosine schedule).
        max_images: test crops.
        seed: seed of the crops, the link noise and the fine-tuning.
        out: root folder of the results.
    """
    from cddm import pretrained as cddm_pretrained
    from cddm.pipeline import JSCCWithCDDM
    from jscc import build_codec

    for name, v in (("crops", crops), ("steps", steps), ("max_images", max_images)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if not phy.SNR_DB_MIN <= snr_db <= phy.SNR_DB_MAX:
        raise ValueError(f"snr_db must lie in [{phy.SNR_DB_MIN}, {phy.SNR_DB_MAX}] dB, got "
                         f"{snr_db}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    config = {"train_dir": str(train_dir), "test_dir": str(test_dir), "codec": codec,
              "cbr": cbr, "snr_db": snr_db, "crops": crops, "steps": steps, "lr": lr,
              "max_images": max_images}
    jscc = build_codec(codec, cbr=cbr, pretrained=True, channel="awgn")
    sampler = cddm_pretrained.load_sampler(cddm_pretrained.find(codec, cbr, "awgn"))
    test_ds = ImageFolderDataset(test_dir, crop=256, train=False)
    test = torch.stack([test_ds[i] for i in range(min(max_images, len(test_ds)))])
    dm = ImageDataModule(source="folder", train_dir=train_dir, builtin_train=True, crop=64,
                         batch_size=64, seed=seed + 7)
    loader = CropBatchLoader(dm.train_images(), 64, 64, -(-crops // 64), seed=seed + 7)
    train = torch.cat(list(loader))[:crops]
    train = train.float() / 255 if train.dtype == torch.uint8 else train
    link = phy.AnalogLink(phy.AWGN())
    s = snr_db
    res = ResultsDir.create("cddm_decoder_study", {**config, "num_test_images":
                                                   int(test.shape[0])}, seed, root=out)
    with res:
        with_cddm = JSCCWithCDDM(jscc, sampler).eval()
        rows: list[dict[str, Any]] = []

        def score(name: str, transmit: Any) -> None:
            r = evaluate_codec(transmit, test, link, [s], seed=seed)[0]
            rows.append({"system": name, "snr_db": s, "psnr": round(r.psnr, 3),
                         "msssim": round(r.msssim, 4)})

        score("jscc", jscc.transmit)
        score("jscc+cddm, stage-1 decoder", with_cddm.transmit)
        phy.set_seed(seed + 3)
        z_cddm = _received(lambda x: with_cddm.denoised_latent(x, link, s)[0], train)
        dec_cddm = finetune_decoder(jscc, train, z_cddm, s, steps, lr, seed)
        score("jscc+cddm, decoder re-trained on CDDM output",
              JSCCWithCDDM(jscc, sampler, decoder=dec_cddm).eval().transmit)
        phy.set_seed(seed + 3)
        z_mmse = _received(lambda x: link.send(jscc.encode(x, s), s).z_hat, train)
        dec_mmse = finetune_decoder(jscc, train, z_mmse, s, steps, lr, seed)

        def mmse_transmit(x: torch.Tensor, lk: phy.AnalogLink, snr: float) -> Any:
            r = lk.send(jscc.encode(x, snr), snr)
            return dec_mmse.decode(r.z_hat, snr), r

        score("jscc, decoder re-trained on MMSE output", mmse_transmit)
        res.write_csv("study.csv", rows)
        base = rows[0]["psnr"]
        lines = [f"# CDDM decoder study, {codec} CBR {cbr:.4g}, AWGN {s:g} dB",
                 "", f"{test.shape[0]} test crops 256x256 of {test_dir}; decoders re-trained "
                 f"on {crops} 64x64 crops of {train_dir} for {steps} steps (lr {lr:g}, "
                 "cosine).", "", "| system | PSNR (dB) | vs jscc (dB) |", "|---|---|---|"]
        lines += [f"| {r['system']} | {r['psnr']:.2f} | {r['psnr'] - base:+.2f} |" for r in rows]
        res.write_summary("\n".join(lines) + "\n")
    return res


#: ``python -m experiments.recipes.cddm_decoder_study`` = ``semcom cddm-decoder-study``.
main = entry_point("cddm-decoder-study")


if __name__ == "__main__":
    raise SystemExit(main())
