"""Lightning training of CDDM: stage 2 (the noise predictor) and stage 3 (the JSCC decoder).

The three published stages:

1. the JSCC codec, trained end to end through the channel at ``SNR + 3 dB`` — that is
   :class:`jscc.lightning.JSCCModule` with ``train_snr_db`` set accordingly (``semcom
   train-jscc``); nothing CDDM-specific.
2. :class:`CDDMModule`: the ε-predictor on the frozen encoder's latents (Algorithm 1): ``t``
   uniform over all ``T`` steps, ``x_t = sqrt(ab_t) W_s x + sqrt(1 − ab_t) W_n ε``, loss
   ``‖ε − ε_θ‖²`` (re-weighted, default) or ``‖W_n (ε − ε_θ)‖²``, AdamW (lr 1e-4, weight decay
   1e-4), gradient clipping at 1 (the trainer's ``gradient_clip_val``), cosine learning rate over
   the run, and an exponential moving average of the weights used for validation and sampling.
3. :class:`DecoderStage3Module`: the JSCC decoder re-trained with the full sampler in the loop
   at the test SNR; encoder and CDDM frozen (the sampler runs without gradients).

The channel is simulated by :class:`phy.AnalogLink`: ``h``, the power normalization and the
noise level come from what the link returns (``W_s``, ``W_n`` via :mod:`cddm.weights`), so
training and sampling see exactly the signal model of evaluation.

Without a JSCC checkpoint, batches are the payloads themselves (``[B, ...]`` real tensors):
the same module trains the 1-D predictor on vectors (e.g. MoE hidden states) or a control
model on i.i.d. Gaussian symbols.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

import phy
from jscc.checkpoints import CheckpointError, load_module, read_checkpoint, register_kind
from jscc.lightning import sionna_device
from jscc.metrics import psnr
from jscc.pretrained import PRETRAINED_PREFIX, codec_from_ref
from phy.sweep import make_channel

from .metrics import channel_mse
from .nets import NETS, build_net
from .pipeline import JSCCWithCDDM
from .sampler import CDDMSampler, expand_symbols
from .schedule import CDDMSchedule
from .weights import latent_weights

__all__ = ["PRETRAINED_PREFIX", "CDDMModule", "DecoderStage3Module", "denoised_pairs",
           "load_cddm_module", "load_codec", "load_stage3_module", "resolve_stage_path"]

_AWGN = "awgn"


register_kind("cddm", {"net", "T", "reweight", "ema_decay", "jscc_checkpoint"},
              "CDDM stage-2 checkpoint (CDDMModule, semcom train-cddm)")
register_kind("cddm-stage3", {"jscc_checkpoint", "cddm_checkpoint", "snr_db", "match_mmse"},
              "CDDM stage-3 decoder checkpoint (DecoderStage3Module, semcom train-cddm)")


def load_codec(checkpoint: str) -> nn.Module:
    """The codec of a :class:`jscc.lightning.JSCCModule` checkpoint (or ``"pretrained:<name>"``
    for a shipped one), on the CPU, in eval mode."""
    return codec_from_ref(checkpoint)[0]


def resolve_stage_path(stored: str | None, anchor: str | Path, what: str,
                       override: str | None = None) -> str | None:
    """Where a checkpoint named inside another checkpoint (``anchor``) lives now.

    ``override`` wins. Otherwise ``stored`` as given (absolute, or relative to the working
    directory), then relative to every folder above ``anchor`` (a path recorded relative to the
    project root is found from anywhere, as long as the two files moved together).
    ``"pretrained:<name>"`` is returned as is.
    """
    if override is not None:
        return override
    if stored is None or str(stored).startswith(PRETRAINED_PREFIX):
        return stored
    p = Path(stored)
    if p.is_file():
        return str(p)
    if not p.is_absolute():
        for base in Path(anchor).resolve().parents:
            if (base / p).is_file():
                return str(base / p)
    raise CheckpointError(f"{anchor} refers to its {what} {stored}, which was not found (tried "
                          f"it as given and relative to the folders above {anchor}); pass the "
                          f"{what} explicitly (--jscc / jscc_checkpoint=)")


def load_cddm_module(path: str | Path, jscc_checkpoint: str | None = None) -> CDDMModule:
    """A stage-2 :class:`CDDMModule` from its checkpoint (CPU, eval mode).

    Its stage-1 codec checkpoint is found with :func:`resolve_stage_path` (``jscc_checkpoint``
    overrides it)."""
    ck = read_checkpoint(path, "cddm")
    stored = ck["hyper_parameters"].get("jscc_checkpoint")
    jscc = resolve_stage_path(stored, path, "stage-1 JSCC checkpoint", jscc_checkpoint)
    # A CDDM trained on a latent bank holds no codec weights: the codec named here brings its
    # own (loaded from its checkpoint in __init__), so only the CDDM's keys must all be present.
    has_codec = any(k.startswith("codec.") for k in ck["state_dict"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Found keys that are in the model state dict")
        module = load_module(CDDMModule, path, jscc_checkpoint=jscc, strict=has_codec)
    if not has_codec:
        want = {k for k in module.state_dict() if not k.startswith("codec.")}
        missing = sorted(want - set(ck["state_dict"]))
        if missing:
            raise CheckpointError(f"{path} lacks CDDM weights {missing[:4]}")
    return module.eval()


def load_stage3_module(path: str | Path, jscc_checkpoint: str | None = None,
                       cddm_checkpoint: str | None = None) -> DecoderStage3Module:
    """A :class:`DecoderStage3Module` from its checkpoint, its stage-1 and stage-2 checkpoints
    found as in :func:`load_cddm_module`."""
    ck = read_checkpoint(path, "cddm-stage3")
    hp = ck["hyper_parameters"]
    jscc = resolve_stage_path(hp.get("jscc_checkpoint"), path, "stage-1 JSCC checkpoint",
                              jscc_checkpoint)
    cddm = resolve_stage_path(hp.get("cddm_checkpoint"), path, "stage-2 CDDM checkpoint",
                              cddm_checkpoint)
    return load_module(DecoderStage3Module, path, jscc_checkpoint=jscc, cddm_checkpoint=cddm)


@torch.no_grad()
def denoised_pairs(system: JSCCWithCDDM, images: torch.Tensor, link: phy.AnalogLink,
                   snr_db: float, batch_size: int = 16, progress: bool = True
                   ) -> TensorDataset:
    """``(image, CDDM-denoised latent)`` pairs for stage 3, one channel draw per image.

    The encoder and the sampler are frozen, so their output does not depend on the decoder
    being trained: computing it once and re-using it for many decoder epochs saves the
    ``m``-step chain per step (on a CPU the chain costs far more than the decoder).
    :class:`DecoderStage3Module` trains on such pairs when its batches are 2-tuples.
    """
    if getattr(system.decoder, "use_csi", False):
        raise ValueError("denoised_pairs does not store the CSI a use_csi decoder needs")
    out = []
    for i in tqdm(range(0, images.shape[0], batch_size), desc=f"CDDM at {snr_db:g} dB",
                  disable=not progress):
        out.append(system.denoised_latent(images[i:i + batch_size], link, snr_db)[0])
    return TensorDataset(images, torch.cat(out))


class _LinkMixin:
    """Builds the analog link on the device Lightning chose (Sionna blocks are device-bound) and
    seeds Sionna's channel generator at the start of ``fit``."""

    link: phy.AnalogLink | None

    def setup(self, stage: str | None = None) -> None:
        self.build_link()

    def on_fit_start(self) -> None:
        phy.set_seed(int(self.hparams.seed) + self.global_rank)  # type: ignore[attr-defined]
        self.build_link()

    def build_link(self) -> phy.AnalogLink:
        dev = sionna_device(self.device)  # type: ignore[attr-defined]
        if self.link is None or str(self.link.channel.device) != dev:
            self.link = phy.AnalogLink(make_channel(self.hparams.channel,  # type: ignore[attr-defined]
                                                    device=dev))
        return self.link


class CDDMModule(_LinkMixin, pl.LightningModule):
    """Stage 2: train the CDDM noise predictor on latents sent through ``phy``.

    Args:
        net: the noise predictor as a :data:`cddm.nets.NETS` spec: ``"unet-small"``,
            ``"unet-paper"`` (the published ~523 M U-Net at C = 36), ``"unet"`` or ``"mlp"``
            (vectors ``[B, D]``), with options as ``"unet-small:ch=16"`` or, in YAML, an object
            ``{name: unet-small, ch: 16}``.
        net_kwargs: network options as a separate dict, the form of checkpoints written before
            ``net`` carried them (still read; new configs put options in ``net``).
        jscc_checkpoint: a :class:`jscc.lightning.JSCCModule` checkpoint whose frozen encoder
            turns image batches into latents, or ``"pretrained:<name>"`` for a codec shipped in
            :mod:`jscc.pretrained`; None: batches are the latents themselves.
        latent_shape: latent shape without batch; required without ``jscc_checkpoint``, checked
            against the codec's latent for ``image_size`` otherwise.
        image_size: training crop side (px), to size the network from the codec.
        encoder_snr_db: SNR (dB) given to SNR-adaptive encoders.
        encoder_snr_range_db: ``(low, high)``: draw the encoder's SNR uniformly per image
            instead (an SNR-adaptive codec's latents change with the SNR; training on the range
            lets one CDDM serve every test SNR).
        channel: ``"awgn"`` (``W_s = W_n = 1`` as published) or ``"rayleigh"`` (per symbol).
        train_snr_db: SNR (dB) of ``W_s``, ``W_n`` on fading channels (no effect on AWGN).
        reweight: True: ``‖ε − ε_θ‖²`` (published default); False: ``‖W_n(ε − ε_θ)‖²``.
        lr, weight_decay: AdamW settings; the learning rate follows a cosine to 0 over the run.
        ema_decay: decay of the weight EMA (0 disables it).
        T: diffusion steps (linear betas 1e-4 → 0.02).
        val_snrs_db: SNRs (dB) of the validation channel MSE.
        convention, floor_db, design_snr_offset_db: sampler settings (see
            :class:`cddm.sampler.CDDMSampler`).
        seed: seed of Sionna's channel generator.
    """

    def __init__(self, net: str | dict[str, Any] = "unet-small",
                 net_kwargs: dict[str, Any] | None = None,
                 jscc_checkpoint: str | None = None,
                 latent_shape: Sequence[int] | None = None, image_size: int = 64,
                 encoder_snr_db: float = 13.0,
                 encoder_snr_range_db: tuple[float, float] | None = None,
                 channel: str = "awgn", train_snr_db: float = 13.0, reweight: bool = True,
                 lr: float = 1e-4,
                 weight_decay: float = 1e-4, ema_decay: float = 0.999, T: int = 1000,
                 val_snrs_db: Sequence[float] = (0.0, 5.0, 10.0, 15.0, 20.0),
                 convention: str = "official", floor_db: float | None = 10.0,
                 design_snr_offset_db: float = 3.0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if channel not in (_AWGN, "rayleigh"):
            raise ValueError(f"channel must be 'awgn' or 'rayleigh', got {channel!r}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        if not val_snrs_db:
            raise ValueError("val_snrs_db must name at least one SNR")
        if encoder_snr_range_db is not None and not (
                encoder_snr_range_db[0] < encoder_snr_range_db[1]):
            raise ValueError(f"encoder_snr_range_db must be (low, high) with low < high, got "
                             f"{encoder_snr_range_db!r}")
        self.codec: nn.Module | None = None
        if jscc_checkpoint is not None:
            self.codec = load_codec(jscc_checkpoint)
            self.codec.requires_grad_(False)
            shape = tuple(self.codec.latent_shape((image_size, image_size)))
            if latent_shape is not None and tuple(latent_shape) != shape:
                raise ValueError(f"latent_shape={tuple(latent_shape)} does not match the codec's "
                                 f"latent {shape} for {image_size}x{image_size} images")
        elif latent_shape is None:
            raise ValueError("latent_shape is required without jscc_checkpoint")
        else:
            shape = tuple(int(s) for s in latent_shape)
        self.latent_shape = shape
        # kept as attributes too: a CDDMModule loaded inside another module's LightningCLI
        # instantiation gets that module's hparams from save_hyperparameters()
        self.channel_name = channel
        self.jscc_checkpoint = jscc_checkpoint
        self.sampler_settings = dict(convention=convention, floor_db=floor_db,
                                     design_snr_offset_db=design_snr_offset_db)
        self.schedule = CDDMSchedule(T=T)
        net_name, net_options = NETS.split(net, net_kwargs)
        self.net = build_net(net_name, shape, T=T, **net_options)
        self.ema = (AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay),
                                  use_buffers=True) if ema_decay > 0 else None)
        self.link: phy.AnalogLink | None = None

    # ----------------------------------------------------------------- plumbing
    @property
    def denoiser(self) -> nn.Module:
        """The network used for sampling: the EMA weights when kept."""
        return self.ema.module if self.ema is not None else self.net

    def sampler(self, **overrides: Any) -> CDDMSampler:
        """A sampler over :attr:`denoiser` with this module's settings (``overrides`` win)."""
        kw = dict(self.sampler_settings)
        kw.update(overrides)
        return CDDMSampler(self.denoiser, self.schedule, **kw)

    @torch.no_grad()
    def latents(self, batch: Any, encoder_snr_db: float | None = None) -> torch.Tensor:
        """The payload of a batch: encoder latents of images, or the batch itself.

        ``encoder_snr_db`` (dB) overrides the training setting (validation encodes at the
        channel's SNR)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if self.codec is None:
            if tuple(x.shape[1:]) != self.latent_shape:
                raise ValueError(f"batch payloads have shape {tuple(x.shape[1:])}, this CDDM was "
                                 f"built for {self.latent_shape}")
            return x
        self.codec.eval()
        rng = self.hparams.encoder_snr_range_db
        if encoder_snr_db is not None:
            snr: float | torch.Tensor = float(encoder_snr_db)
        elif rng is not None:
            snr = rng[0] + (rng[1] - rng[0]) * torch.rand(x.shape[0], device=x.device)
        else:
            snr = float(self.hparams.encoder_snr_db)
        return self.codec.encode(x, snr)

    # ----------------------------------------------------------------- training
    def diffusion_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Algorithm 1 on a batch of payloads ``z`` ``[B, ...]`` (one draw of h, t and ε)."""
        r = self.build_link().send(z, float(self.hparams.train_snr_db))
        scale = r.scale.to(z.device).reshape((-1,) + (1,) * (z.dim() - 1))
        x0 = z / scale
        awgn = self.hparams.channel == _AWGN
        w_s, w_n = latent_weights(r, z, awgn_identity=awgn)
        w_s, w_n = w_s.to(z.device), w_n.to(z.device)
        h_abs = expand_symbols(r.h.to(z.device).abs(), z)
        t = torch.randint(0, self.schedule.T, (z.shape[0],), device=z.device)
        eps = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, eps, t, w_s, w_n)
        err = self.net(x_t, t, h_abs) - eps
        if not self.hparams.reweight:
            err = w_n * err
        return err.square().mean()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_loss(self.latents(batch))
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    # ----------------------------------------------------------------- validation
    def channel_mse(self, z: torch.Tensor, snr_db: float) -> dict[str, float]:
        """Channel MSE (dB) of MMSE alone and MMSE + CDDM (see :func:`cddm.metrics.channel_mse`)."""
        return channel_mse(z, self.build_link(), self.sampler(), snr_db,
                           awgn=self.hparams.channel == _AWGN)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        z = self.latents(batch)
        adaptive = self.hparams.encoder_snr_range_db is not None
        gains = []
        for s in self.hparams.val_snrs_db:
            z_s = self.latents(batch, float(s)) if adaptive else z
            m = self.channel_mse(z_s, float(s))
            for k, v in m.items():
                self.log(f"val/mse_{k}_{s:g}dB", v, batch_size=z.shape[0])
            gains.append(m["mmse"] - m["cddm"])
        self.log("val/gain_db", sum(gains) / len(gains), prog_bar=True, batch_size=z.shape[0])
        self.log("val/loss", self.diffusion_loss(z), batch_size=z.shape[0])

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class DecoderStage3Module(_LinkMixin, pl.LightningModule):
    """Stage 3: re-train the JSCC decoder on CDDM's output at the test SNR.

    Args:
        jscc_checkpoint: the stage-1 :class:`jscc.lightning.JSCCModule` checkpoint.
        cddm_checkpoint: the stage-2 :class:`CDDMModule` checkpoint (its EMA weights are used).
        channel: ``"awgn"`` or ``"rayleigh"``; must match the CDDM's.
        snr_db: the test SNR (dB) the decoder is re-trained for.
        lr, weight_decay: AdamW settings (constant learning rate, as published).
        match_mmse: scale CDDM's output to the MMSE output's mean (see
            :class:`cddm.pipeline.JSCCWithCDDM`).
        seed: seed of Sionna's channel generator.
    """

    def __init__(self, jscc_checkpoint: str, cddm_checkpoint: str, channel: str = "awgn",
                 snr_db: float = 10.0, lr: float = 1e-4, weight_decay: float = 1e-4,
                 match_mmse: bool = True, val_snrs_db: Sequence[float] | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, path in (("jscc_checkpoint", jscc_checkpoint),
                           ("cddm_checkpoint", cddm_checkpoint)):
            if path is None or not (Path(path).is_file() or (
                    name == "jscc_checkpoint" and str(path).startswith(PRETRAINED_PREFIX))):
                raise ValueError(f"{name} must be a checkpoint file, got {path!r}")
        cddm = load_cddm_module(cddm_checkpoint, jscc_checkpoint=jscc_checkpoint)
        if cddm.channel_name != channel:
            raise ValueError(f"the CDDM was trained for channel={cddm.channel_name!r}, "
                             f"got channel={channel!r}")
        codec = load_codec(jscc_checkpoint)
        self.system = JSCCWithCDDM(codec, cddm.sampler(), match_mmse=match_mmse,
                                   decoder=copy.deepcopy(codec))
        self.system.codec.requires_grad_(False)
        self.system.sampler.net.requires_grad_(False)
        self.link: phy.AnalogLink | None = None

    def on_train_epoch_start(self) -> None:
        # frozen parts stay in eval mode (fixed dropout/normalization); the decoder trains
        self.system.eval()
        self.system.decoder.train()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        snr = float(self.hparams.snr_db)
        if isinstance(batch, (list, tuple)) and len(batch) == 2:
            # (image, denoised latent) pairs from :func:`denoised_pairs`
            img, z_d = batch
            img_hat = self.system.decode(z_d, snr)
        else:
            img = batch[0] if isinstance(batch, (list, tuple)) else batch
            with torch.no_grad():
                z_d, r = self.system.denoised_latent(img, self.build_link(), snr)
            img_hat = self.system.decode(z_d, snr, r)
        loss = F.mse_loss(img_hat, img)
        self.log("train/loss", loss, prog_bar=True, batch_size=img.shape[0])
        self.log("train/psnr", psnr(img_hat.detach().clamp(0, 1), img).mean(),
                 batch_size=img.shape[0])
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        img = batch[0] if isinstance(batch, (list, tuple)) else batch
        snrs = self.hparams.val_snrs_db or [self.hparams.snr_db]
        for s in snrs:
            img_hat = self.system(img, self.build_link(), float(s))
            self.log(f"val/psnr_{s:g}dB", psnr(img_hat.clamp(0, 1), img).mean(),
                     batch_size=img.shape[0])
        img_hat = self.system(img, self.build_link(), float(self.hparams.snr_db))
        self.log("val/psnr", psnr(img_hat.clamp(0, 1), img).mean(), prog_bar=True,
                 batch_size=img.shape[0])

    def configure_optimizers(self) -> Any:
        # Only the decoder's parameters receive gradients (decode() is the only differentiable
        # part of the loop); AdamW skips the copy's encoder weights, whose grad stays None.
        return torch.optim.AdamW(self.system.decoder.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)
