"""Where does a CDDM's denoising go? The shipped codec with and without its CDDM, and decoders
re-trained on the CDDM's output and on the equalizer's output, at one SNR.

    semcom cddm-decoder-study --train_dir ../shared/datasets/csun_hays80 \\
        --test_dir ../shared/datasets/cbsd68 [--snr_db 10 --crops 4096 --steps 3000]

Systems, all on the same test crops, noise stream, channel (AWGN by default) and SNR:

* ``jscc``: the shipped codec (:func:`jscc.build_codec` with ``pretrained=True``);
* ``jscc+cddm, stage-1 decoder``: encoder → link → MMSE → CDDM (the shipped one on AWGN, or
  ``cddm_checkpoint``, e.g. a per-symbol Rayleigh CDDM of ``semcom bench-cddm``) → the codec's
  decoder;
* ``jscc+cddm, decoder re-trained on CDDM output``: the decoder fine-tuned on ``crops``
  (image, CDDM-denoised latent) pairs of the training photos for ``steps`` steps (Adam, cosine
  decay from ``lr`` to ``lr / 100``, batch 16): stage 3 of the CDDM recipe, run longer;
* ``jscc, decoder re-trained on MMSE output`` (the control): the same fine-tuning on the
  equalizer's output instead, so that the difference between the last two is the CDDM's.

:func:`study_decoders` returns the PSNR per system (a :class:`CDDMDecoderStudyResult`);
:func:`run_cddm_decoder_study`, the command, writes ``study.csv`` and ``summary.md`` into a
results folder.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import phy
from cddm.lightning import load_cddm_module
from experiments.cli import entry_point
from experiments.recipes.config import config_dict, optional_positive_int, resolve_config
from experiments.reporting.cddm_decoder_study import decoder_study_summary
from experiments.reporting.results import ResultsDir
from experiments.values import PositiveInt
from jscc.batches import CropBatchLoader
from jscc.data import ImageDataModule, ImageFolderDataset
from jscc.evaluation import evaluate_codec
from phy.checks import check_choice
from phy.sweep import make_channel

__all__ = ["CDDMDecoderStudyConfig", "CDDMDecoderStudyResult", "finetune_decoder", "main",
           "run_cddm_decoder_study", "study_decoders", "study_images"]


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


@dataclass(frozen=True)
class CDDMDecoderStudyConfig:
    """What ``semcom cddm-decoder-study`` compares (checked when built).

    Attributes:
        train_dir: training photos (the crops of the re-training pairs).
        test_dir: test photos (256x256 centre crops).
        codec: the shipped codec (with a shipped CDDM) to study.
        cbr: its channel bandwidth ratio.
        snr_db: the Es/N0 in dB.
        crops: 64x64 training crops (pairs).
        steps: decoder fine-tuning steps.
        lr: fine-tuning learning rate (cosine schedule).
        max_images: test crops.
        seed: seed of the crops, the link noise and the fine-tuning.
        channel: the channel (``awgn`` or ``rayleigh``: per-symbol fading, perfect CSI).
        cddm_checkpoint: a stage-2 CDDM checkpoint of this codec on ``channel`` (default: the
            shipped CDDM, AWGN only).
    """

    train_dir: str
    test_dir: str
    codec: str = "adjscc"
    cbr: float = 1 / 12
    snr_db: float = 10.0
    crops: PositiveInt = 4096
    steps: PositiveInt = 3000
    lr: float = 1e-4
    max_images: PositiveInt = 20
    seed: int = 0
    channel: str = "awgn"
    cddm_checkpoint: str | None = None

    def __post_init__(self) -> None:
        for name in ("crops", "steps", "max_images"):
            object.__setattr__(self, name, optional_positive_int(name, getattr(self, name)))
        if not phy.SNR_DB_MIN <= self.snr_db <= phy.SNR_DB_MAX:
            raise ValueError(f"snr_db must lie in [{phy.SNR_DB_MIN}, {phy.SNR_DB_MAX}] dB, "
                             f"got {self.snr_db}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        check_choice("channel", self.channel, ("awgn", "rayleigh"))
        if self.channel != "awgn" and self.cddm_checkpoint is None:
            raise ValueError(f"channel {self.channel!r} needs cddm_checkpoint (a stage-2 CDDM "
                             "on that channel, e.g. from semcom bench-cddm): the shipped CDDM "
                             "is for AWGN")


@dataclass
class CDDMDecoderStudyResult:
    """The comparison of a :class:`CDDMDecoderStudyConfig`.

    Attributes:
        config: what was compared.
        num_test_images: test crops scored.
        rows: one per system: ``system``, ``snr_db``, ``psnr`` (dB), ``msssim``.
    """

    config: CDDMDecoderStudyConfig
    num_test_images: int
    rows: list[dict[str, Any]]


def study_images(cfg: CDDMDecoderStudyConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, test)``: ``cfg.crops`` 64x64 training crops (float in [0, 1]) and at most
    ``cfg.max_images`` 256x256 test crops."""
    test_ds = ImageFolderDataset(cfg.test_dir, crop=256, train=False)
    test = torch.stack([test_ds[i] for i in range(min(cfg.max_images, len(test_ds)))])
    dm = ImageDataModule(source="folder", train_dir=cfg.train_dir, builtin_train=True,
                         crop=64, batch_size=64, seed=cfg.seed + 7)
    loader = CropBatchLoader(dm.train_images(), 64, 64, -(-cfg.crops // 64),
                             seed=cfg.seed + 7)
    train = torch.cat(list(loader))[:cfg.crops]
    train = train.float() / 255 if train.dtype == torch.uint8 else train
    return train, test


def study_decoders(cfg: CDDMDecoderStudyConfig, train: torch.Tensor, test: torch.Tensor
                   ) -> CDDMDecoderStudyResult:
    """Score the shipped codec with and without its shipped CDDM, and with its decoder
    re-trained on CDDM and on MMSE output (``train`` crops), on ``test`` at ``cfg.snr_db``."""
    from cddm import pretrained as cddm_pretrained
    from cddm.pipeline import JSCCWithCDDM
    from jscc import build_codec

    jscc = build_codec(cfg.codec, cbr=cfg.cbr, pretrained=True, channel="awgn")
    if cfg.cddm_checkpoint is None:
        sampler = cddm_pretrained.load_sampler(cddm_pretrained.find(cfg.codec, cfg.cbr, "awgn"))
    else:
        cddm = load_cddm_module(cfg.cddm_checkpoint)
        if cddm.channel_name != cfg.channel:
            raise ValueError(f"cddm_checkpoint was trained on {cddm.channel_name!r}, not on "
                             f"channel {cfg.channel!r}")
        sampler = cddm.sampler()
    link = phy.AnalogLink(make_channel(cfg.channel))
    s, seed = cfg.snr_db, cfg.seed
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
    dec_cddm = finetune_decoder(jscc, train, z_cddm, s, cfg.steps, cfg.lr, seed)
    score("jscc+cddm, decoder re-trained on CDDM output",
          JSCCWithCDDM(jscc, sampler, decoder=dec_cddm).eval().transmit)
    phy.set_seed(seed + 3)
    z_mmse = _received(lambda x: link.send(jscc.encode(x, s), s).z_hat, train)
    dec_mmse = finetune_decoder(jscc, train, z_mmse, s, cfg.steps, cfg.lr, seed)

    def mmse_transmit(x: torch.Tensor, lk: phy.AnalogLink, snr: float) -> Any:
        r = lk.send(jscc.encode(x, snr), snr)
        return dec_mmse.decode(r.z_hat, snr), r

    score("jscc, decoder re-trained on MMSE output", mmse_transmit)
    return CDDMDecoderStudyResult(cfg, int(test.shape[0]), rows)


def run_cddm_decoder_study(cfg: CDDMDecoderStudyConfig | None = None, *,
                           out: str | Path = "results", **settings: Any) -> ResultsDir:
    """``semcom cddm-decoder-study``: :func:`study_decoders` into a results folder
    (``study.csv``, ``summary.md``).

    Args:
        cfg: what to compare; or give its fields as keywords (``settings``).
        out: root folder of the results.
    """
    cfg = resolve_config(CDDMDecoderStudyConfig, cfg, settings)
    train, test = study_images(cfg)  # missing folders fail before the results folder
    res = ResultsDir.create("cddm_decoder_study",
                            {**config_dict(cfg), "num_test_images": int(test.shape[0])},
                            cfg.seed, root=out)
    with res:
        result = study_decoders(cfg, train, test)
        res.write_csv("study.csv", result.rows)
        res.write_summary(decoder_study_summary(result))
    return res


#: ``python -m experiments.recipes.cddm_decoder_study`` = ``semcom cddm-decoder-study``.
main = entry_point("cddm-decoder-study")


if __name__ == "__main__":
    raise SystemExit(main())
