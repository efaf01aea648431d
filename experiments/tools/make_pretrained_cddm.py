"""Train and export the shipped CDDM of a shipped JSCC codec (stages 2 and 3), resumably.

    semcom make-pretrained-cddm --jscc adjscc_awgn_cbr1-12 \\
        --train_dir ../shared/datasets/csun_hays80 --test_dir ../shared/datasets/cbsd68

(``python -m experiments.tools.make_pretrained_cddm`` is the same command; the dashed
spellings of earlier versions, ``--train-dir``, and ``--name`` for ``--entry`` still work.)

1. **Latent bank.** ``bank_crops`` random 64×64 crops of the training folder plus the built-in
   training photos (:class:`jscc.batches.CropBatchLoader`), each encoded by the frozen codec at
   an SNR drawn uniformly from its SNR range (the codec is SNR-adaptive, so one CDDM serves every
   SNR). Encoding once and training on the bank keeps the encoder out of every step.
2. **Stage 2.** :class:`cddm.lightning.CDDMModule` (U-Net, ``T`` steps) on the bank through the
   AWGN link; Lightning checkpoints every ``checkpoint_every`` steps and the run resumes from
   ``last.ckpt`` when started again with the same ``--work`` folder.
3. **Stage 3.** For every SNR in ``stage3_snrs_db``: ``stage3_crops`` (image, CDDM-denoised
   latent) pairs (:func:`cddm.lightning.denoised_pairs`), then the decoder re-trained on them
   for ``stage3_steps`` steps (:class:`cddm.lightning.DecoderStage3Module`).
4. **Export** (``cddm/pretrained_weights``): the stage-2 EMA weights and the decoders, with
   cards that record all of the above, the CPU time of each stage and the PSNR of JSCC and
   JSCC + CDDM (stage-3 decoder) on the test folder's 256×256 centre crops at the stage-3 SNRs.

Every stage is skipped when its output exists in ``--work``, so an interrupted run continues.

:func:`train_cddm_stages` runs stages 1 to 3 of a :class:`PretrainedCDDMConfig` in the work
folder (:class:`CDDMStages`); :func:`measure_pretrained_cddm` measures them and builds the
cards (:class:`PretrainedCDDMExport`); :func:`make_pretrained_cddm`, the command, stores them.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

import phy
from cddm.lightning import (
    PRETRAINED_PREFIX,
    CDDMModule,
    DecoderStage3Module,
    denoised_pairs,
    load_cddm_module,
    load_stage3_module,
)
from cddm.pipeline import JSCCWithCDDM
from cddm.pretrained import decoders as decoder_store
from cddm.pretrained import store as cddm_store
from experiments.cli import entry_point
from experiments.recipes.config import config_dict, resolve_config
from experiments.recipes.lightning_cli import FinalCheckpoint
from experiments.values import FloatGrid
from jscc import pretrained as jscc_pretrained
from jscc.batches import CropBatchLoader
from jscc.data import ImageDataModule, ImageFolderDataset
from jscc.evaluation import evaluate_codec
from phy.checks import check_number, check_positive_int

__all__ = ["CDDMStages", "PretrainedCDDMConfig", "PretrainedCDDMExport", "main",
           "make_pretrained_cddm", "measure_pretrained_cddm", "train_cddm_stages"]


def _quiet_trainer(**kw: Any) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_model_summary=False,
                      enable_progress_bar=True, limit_val_batches=0, num_sanity_val_steps=0,
                      **kw)


def _bank(codec: torch.nn.Module, loader: CropBatchLoader, snr_range: tuple[float, float],
          seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    imgs, lat = [], []
    with torch.no_grad():
        for x in tqdm(loader, desc="latent bank", total=len(loader)):
            s = snr_range[0] + (snr_range[1] - snr_range[0]) * torch.rand(x.shape[0], generator=g)
            imgs.append(x)
            lat.append(codec.encode(x, s))
    return torch.cat(imgs), torch.cat(lat)


@dataclass(frozen=True)
class PretrainedCDDMConfig:
    """What ``semcom make-pretrained-cddm`` trains and exports (checked when built).

    Attributes:
        jscc: shipped JSCC entry (:mod:`jscc.pretrained`), an AWGN codec.
        train_dir: training image folder (plus the built-in training photos).
        test_dir: test image folder of the card's PSNR table (256x256 centre crops).
        entry: CDDM entry name (default ``<jscc>_cddm``).
        bank_crops: crops in the latent bank.
        crop: crop size in pixels.
        T: diffusion steps.
        width: U-Net base width.
        steps: stage-2 training steps.
        batch_size: stage-2 latents per batch.
        lr: stage-2 learning rate.
        checkpoint_every: stage-2 steps between checkpoints.
        stage3_snrs_db: SNRs (dB) of the stage-3 decoders.
        stage3_crops: (image, denoised latent) pairs per stage-3 decoder.
        stage3_steps: training steps per stage-3 decoder.
        stage3_lr: stage-3 learning rate.
        seed: seed of every stage.
    """

    jscc: str
    train_dir: str
    test_dir: str | None = None
    entry: str | None = None
    bank_crops: int = 8192
    crop: int = 64
    T: int = 100
    width: int = 16
    steps: int = 3000
    batch_size: int = 32
    lr: float = 5e-4
    checkpoint_every: int = 500
    stage3_snrs_db: FloatGrid = FloatGrid((5.0, 10.0, 15.0))
    stage3_crops: int = 1536
    stage3_steps: int = 800
    stage3_lr: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("bank_crops", "crop", "T", "width", "steps", "batch_size",
                    "checkpoint_every", "stage3_crops", "stage3_steps"):
            check_positive_int(key, getattr(self, key))
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("stage3_lr", self.stage3_lr, low=0.0, low_open=True)
        if not Path(self.train_dir).is_dir():
            raise ValueError(f"train_dir {self.train_dir!r} is not a folder")
        if self.test_dir is not None and not Path(self.test_dir).is_dir():
            raise ValueError(f"test_dir {self.test_dir!r} is not a folder")
        snrs = FloatGrid(float(v) for v in FloatGrid.parse(self.stage3_snrs_db))
        if not all(math.isfinite(v) for v in snrs):
            raise ValueError(f"stage3_snrs_db must be finite SNRs in dB, got {list(snrs)}")
        object.__setattr__(self, "stage3_snrs_db", snrs)
        if self.entry is not None and not re.fullmatch(r"[A-Za-z0-9][\w.+-]*", self.entry):
            raise ValueError(f"entry must be a name of letters, digits and _.+- (a file name "
                             f"in the store), got {self.entry!r}")
        jscc_card = jscc_pretrained.card(self.jscc)  # a clear error for an unknown entry
        if jscc_card["channel"] != "awgn":
            raise ValueError("this recipe trains AWGN CDDMs; the codec is for "
                             f"{jscc_card['channel']!r}")

    @property
    def name(self) -> str:
        """The CDDM entry (``entry``, or ``<jscc>_cddm``)."""
        return self.entry or f"{self.jscc}_cddm"


@dataclass
class CDDMStages:
    """The trained stages of a :class:`PretrainedCDDMConfig` in its work folder.

    Attributes:
        config: what was trained.
        work: the work folder.
        stage2: the stage-2 checkpoint (the CDDM).
        stage3: per stage-3 SNR (dB), the checkpoint of its decoder.
        latent_shape: the codec's latent shape (the CDDM's input).
        timings: wall seconds per stage (``bank``, ``stage2``, ``stage3_<snr>dB``), summed over
            the runs that worked on it.
    """

    config: PretrainedCDDMConfig
    work: Path
    stage2: Path
    stage3: dict[float, Path]
    latent_shape: tuple[int, ...]
    timings: dict[str, float]


@dataclass
class PretrainedCDDMExport:
    """The entries of a :class:`PretrainedCDDMConfig`, measured and ready to store.

    Attributes:
        config: what is exported.
        state_dict: the CDDM's weights (stage-2 EMA).
        card: its card (training, the decoders' names, the PSNR table under ``results``).
        decoders: per decoder entry name, its weights and card.
    """

    config: PretrainedCDDMConfig
    state_dict: dict[str, torch.Tensor]
    card: dict[str, Any]
    decoders: dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]]

    @property
    def results(self) -> dict[str, Any]:
        return self.card["results"]


def train_cddm_stages(cfg: PretrainedCDDMConfig, work: Path) -> CDDMStages:
    """Run (or resume) the latent bank, stage 2 and the stage-3 decoders of ``cfg`` in
    ``work``; a stage whose output is there is skipped."""
    work.mkdir(parents=True, exist_ok=True)
    codec = jscc_pretrained.load_codec(cfg.jscc)
    snr_range = tuple(jscc_pretrained.card(cfg.jscc).get("snr_range_db") or (0.0, 20.0))
    snrs = list(cfg.stage3_snrs_db)
    timings: dict[str, float] = json.loads((work / "timings.json").read_text()) \
        if (work / "timings.json").exists() else {}

    def timed(stage: str, t0: float) -> None:
        timings[stage] = timings.get(stage, 0.0) + time.time() - t0
        (work / "timings.json").write_text(json.dumps(timings, indent=2))

    # 1. latent bank (and the images, for stage 3)
    bank_path = work / "bank.pt"
    if not bank_path.exists():
        t0 = time.time()
        dm = ImageDataModule(source="folder", train_dir=cfg.train_dir, builtin_train=True,
                             crop=cfg.crop, batch_size=64, seed=cfg.seed + 100)
        loader = CropBatchLoader(dm.train_images(), cfg.crop, 64, -(-cfg.bank_crops // 64),
                                 seed=cfg.seed + 100)
        imgs, lat = _bank(codec, loader, snr_range, cfg.seed)
        torch.save({"images": (imgs * 255).round().to(torch.uint8), "latents": lat}, bank_path)
        timed("bank", t0)
    bank = torch.load(bank_path, weights_only=True)
    latents = bank["latents"]
    latent_shape = tuple(latents.shape[1:])

    # 2. stage 2 (resumable)
    s2_dir = work / "stage2"
    s2_ckpt = s2_dir / "final.ckpt"
    if not s2_ckpt.exists():
        t0 = time.time()
        pl.seed_everything(cfg.seed, verbose=False)
        model = CDDMModule(net={"name": "unet-small", "ch": cfg.width},
                           latent_shape=latent_shape, channel="awgn", lr=cfg.lr,
                           ema_decay=0.995, T=cfg.T, val_snrs_db=(10.0,), seed=cfg.seed)
        trainer = _quiet_trainer(
            max_steps=cfg.steps, max_epochs=-1, gradient_clip_val=1.0, default_root_dir=s2_dir,
            callbacks=[ModelCheckpoint(dirpath=s2_dir, every_n_train_steps=cfg.checkpoint_every,
                                       save_last=True), FinalCheckpoint()])
        last = s2_dir / "last.ckpt"
        trainer.fit(model, DataLoader(TensorDataset(latents), batch_size=cfg.batch_size,
                                      shuffle=True, drop_last=True,
                                      generator=torch.Generator().manual_seed(cfg.seed)),
                    ckpt_path=str(last) if last.exists() else None)
        trainer.save_checkpoint(s2_ckpt)
        timed("stage2", t0)
    jscc_ref = PRETRAINED_PREFIX + cfg.jscc

    # 3. stage 3 per SNR
    stage3_imgs = bank["images"][: cfg.stage3_crops].float() / 255
    stage3 = {}
    for s in snrs:
        ck = stage3[s] = work / f"stage3_{s:g}dB.ckpt"
        if ck.exists():
            continue
        t0 = time.time()
        pl.seed_everything(cfg.seed, verbose=False)
        m3 = DecoderStage3Module(jscc_checkpoint=jscc_ref, cddm_checkpoint=str(s2_ckpt),
                                 channel="awgn", snr_db=s, lr=cfg.stage3_lr)
        phy.set_seed(cfg.seed + 2)
        pairs = denoised_pairs(m3.system, stage3_imgs, phy.AnalogLink(phy.AWGN()), s,
                               batch_size=64)
        trainer = _quiet_trainer(max_steps=cfg.stage3_steps, max_epochs=-1,
                                 enable_checkpointing=False, default_root_dir=work)
        trainer.fit(m3, DataLoader(pairs, batch_size=16, shuffle=True,
                                   generator=torch.Generator().manual_seed(cfg.seed)))
        trainer.save_checkpoint(ck)
        timed(f"stage3_{s:g}dB", t0)
    return CDDMStages(cfg, work, s2_ckpt, stage3, latent_shape, timings)


def measure_pretrained_cddm(stages: CDDMStages, *, work: str | None = None
                            ) -> PretrainedCDDMExport:
    """Measure JSCC and JSCC + CDDM (stage-3 decoders) on the test folder and build the cards
    of the CDDM and its decoders (writes nothing); ``work``: the work folder as given to the
    command (recorded with the settings)."""
    a = stages.config
    name, snrs, s2_ckpt = a.name, list(a.stage3_snrs_db), stages.stage2
    jscc_ref = PRETRAINED_PREFIX + a.jscc
    cddm = load_cddm_module(s2_ckpt, jscc_checkpoint=jscc_ref)
    codec = jscc_pretrained.load_codec(a.jscc)
    stage3 = {s: load_stage3_module(stages.stage3[s], jscc_checkpoint=jscc_ref,
                                    cddm_checkpoint=str(s2_ckpt)) for s in snrs}
    results: dict[str, Any] = {}
    if a.test_dir is not None:
        ds = ImageFolderDataset(a.test_dir, crop=256, train=False)
        imgs = torch.stack([ds[i] for i in range(len(ds))])
        link = phy.AnalogLink(phy.AWGN())
        plain = evaluate_codec(codec.transmit, imgs, link, snrs, seed=a.seed)
        with_cddm = []
        for s in snrs:
            m3 = stage3[s]
            system = JSCCWithCDDM(codec, cddm.sampler(), decoder=m3.system.decoder,
                                  match_mmse=m3.hparams.match_mmse).eval()
            with tqdm(total=imgs.shape[0], desc=f"JSCC+CDDM {s:g} dB") as bar:
                with_cddm += evaluate_codec(system.transmit, imgs, link, [s], seed=a.seed,
                                            progress=bar.update)
        key = f"{Path(a.test_dir).name}_256"
        results[key] = {
            "images": f"{Path(a.test_dir).name}, 256x256 centre crops",
            "num_images": int(imgs.shape[0]), "channel": "awgn", "snr_db": snrs,
            "jscc_psnr": [round(r.psnr, 3) for r in plain],
            "jscc_cddm_psnr": [round(r.psnr, 3) for r in with_cddm],
            "gain_db": [round(c.psnr - p.psnr, 3) for c, p in zip(with_cddm, plain, strict=True)],
            "sampler_steps": [cddm.sampler().num_steps(s) for s in snrs]}
        print(json.dumps(results[key], indent=1))
    training = {"data": f"{a.bank_crops} random {a.crop}x{a.crop} crops of {a.train_dir} + the "
                        "built-in training photos, encoded at SNRs uniform over the codec's range",
                "command": "semcom make-pretrained-cddm --jscc "
                           f"{a.jscc} --train_dir {a.train_dir}"
                           + (f" --test_dir {a.test_dir}" if a.test_dir else ""),
                "args": {**config_dict(a, drop=()), "work": work},
                "cpu_hours_by_stage": {k: round(v / 3600, 3) for k, v in stages.timings.items()},
                "threads": torch.get_num_threads()}
    dec_names = {}
    decoders = {}
    for s in snrs:
        m3 = stage3[s]
        dname = f"{name}_decoder_{s:g}dB"
        sd = {k: v for k, v in m3.system.decoder.state_dict().items()
              if k.startswith("decoder.")}
        decoders[dname] = (sd, {"jscc": a.jscc, "cddm": name, "snr_db": s,
                                "match_mmse": bool(m3.hparams.match_mmse),
                                "training": {"steps": a.stage3_steps, "pairs": a.stage3_crops,
                                             "lr": a.stage3_lr}})
        dec_names[f"{s:g}"] = dname
    hp = cddm.hparams
    card = {"jscc": a.jscc, "channel": "awgn", "net": "unet-small",
            "net_kwargs": {"ch": a.width}, "latent_shape": list(stages.latent_shape), "T": a.T,
            "sampler": dict(cddm.sampler_settings), "match_mmse": True,
            "parameters": sum(p.numel() for p in cddm.denoiser.parameters()),
            "decoders": dec_names,
            "training": {**training, "steps": a.steps, "lr": hp.lr, "ema_decay": hp.ema_decay},
            "results": results}
    return PretrainedCDDMExport(a, cddm.denoiser.state_dict(),
                                json.loads(json.dumps(card, default=str)), decoders)


def make_pretrained_cddm(cfg: PretrainedCDDMConfig | None = None, *, work: str | None = None,
                         **settings: Any) -> Path:
    """Train (or resume) and export the CDDM of a shipped JSCC codec; returns the work folder
    (settings checked before any work).

    Args:
        cfg: what to train and export; or give its fields as keywords (``settings``).
        work: work folder (default ``results/make_cddm/<entry>``); stages found there are
            skipped.
    """
    cfg = resolve_config(PretrainedCDDMConfig, cfg, settings)
    folder = Path(work or f"results/make_cddm/{cfg.name}")
    stages = train_cddm_stages(cfg, folder)
    # 4. evaluation and export
    export = measure_pretrained_cddm(stages, work=work)
    for dname, (sd, card) in export.decoders.items():
        decoder_store.save(dname, sd, card)
    cddm_store.save(cfg.name, export.state_dict, export.card)
    print(f"exported {cfg.name} and {len(export.decoders)} decoders to {cddm_store.root}")
    return folder


#: ``python -m experiments.tools.make_pretrained_cddm``: ``semcom make-pretrained-cddm``
main = entry_point("make-pretrained-cddm")


if __name__ == "__main__":
    raise SystemExit(main())
