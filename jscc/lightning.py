"""Lightning training of JSCC codecs over a ``phy`` analog link.

``JSCCModule`` trains any registered codec end to end through :class:`phy.AnalogLink`:
the loss is the MSE between images and their reconstructions (optionally plus
``msssim_weight · (1 − MS-SSIM)``), the training SNR is fixed or drawn per image from a range,
and validation reports PSNR and MS-SSIM at several SNRs (``val/psnr`` is their mean and the
default checkpoint monitor).

Sionna blocks are pinned to the device they are built on, so the link is built in ``setup``
on the device Lightning chose. Sionna's noise has its own generator: ``on_fit_start`` seeds it
(``phy.set_seed(seed + global_rank)``); resuming from a checkpoint restores the weights,
optimizer and step, and ``on_save_checkpoint`` stores Sionna's generator and torch's global
generator (the per-image training SNRs) with them, so a resumed run draws the noise and SNRs
the uninterrupted run would have drawn (together with the data loader's own state, see
:class:`jscc.batches.CropBatchLoader`, its losses match step for step).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

import phy
from phy.sweep import make_channel

from .metrics import ms_ssim, psnr
from .models import CODECS, build_codec

__all__ = ["JSCCModule", "sionna_device"]


def sionna_device(device: torch.device) -> str:
    """Sionna's device string for a torch device (``"cpu"`` or ``"cuda:N"``)."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    return "cpu"


class JSCCModule(pl.LightningModule):
    """A JSCC codec trained through a simulated channel.

    Args:
        codec: the codec as a registry spec: a name (``"deepjscc"``, ``"adjscc"``,
            ``"swinjscc"``), a string with options (``"adjscc:num_filters=128"``) or, in YAML,
            an object ``{name: adjscc, num_filters: 128}``.
        cbr: channel bandwidth ratio (complex channel uses per source dimension).
        codec_kwargs: codec options as a separate dict, the form of checkpoints written before
            ``codec`` carried them (still read; new configs put options in ``codec``).
        channel: channel name for :func:`phy.make_channel` (``"awgn"``, ``"rayleigh"``, ...).
        train_snr_db: fixed training SNR (Es/N0, dB), used when ``train_snr_range_db`` is None.
        train_snr_range_db: ``(low, high)``: an SNR drawn uniformly per image and step.
        val_snrs_db: SNRs of the validation metrics.
        power_norm: ``"sample"`` (per image) or ``"batch"`` power normalization.
        lr: Adam learning rate.
        msssim_weight: weight of ``1 − MS-SSIM`` added to the MSE loss (0 = MSE only).
        cosine_epochs: if > 0, cosine annealing of the learning rate over this many epochs.
        lr_schedule: ``"constant"`` or ``"cosine"``: per-step cosine decay from ``lr`` to
            ``lr_min`` over the trainer's ``max_steps`` (or its estimated stepping batches).
        lr_min: final learning rate of the cosine schedule.
        lr_steps: length of the cosine schedule in steps; default the trainer's ``max_steps``.
            Fixing it lets a run stop early and continue later on the same schedule.
        init_from: start from the codec weights of another run (a JSCC checkpoint, or
            ``"pretrained:<name>"``) with a fresh optimizer and schedule: a fine-tuning stage
            (e.g. over a wider SNR range). The architecture must match.
        seed: seed of Sionna's generators (channel gains and noise).
    """

    def __init__(self, codec: str | dict[str, Any] = "deepjscc", cbr: float = 1 / 12,
                 codec_kwargs: dict[str, Any] | None = None, channel: str = "awgn",
                 train_snr_db: float = 10.0,
                 train_snr_range_db: tuple[float, float] | None = None,
                 val_snrs_db: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0),
                 power_norm: str = "sample", lr: float = 1e-4, msssim_weight: float = 0.0,
                 cosine_epochs: int = 0, lr_schedule: str = "constant", lr_min: float = 0.0,
                 lr_steps: int | None = None, init_from: str | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if train_snr_range_db is not None:
            lo, hi = train_snr_range_db
            if not lo < hi:
                raise ValueError(f"train_snr_range_db must be (low, high) with low < high, got "
                                 f"{train_snr_range_db!r}")
        if not val_snrs_db:
            raise ValueError("val_snrs_db must name at least one SNR")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        if cosine_epochs > 0 and lr_schedule != "constant":
            raise ValueError("give either cosine_epochs or lr_schedule='cosine', not both")
        if lr_steps is not None and (isinstance(lr_steps, bool) or not isinstance(lr_steps, int)
                                     or lr_steps < 1):
            raise ValueError(f"lr_steps must be a positive int or None, got {lr_steps!r}")
        if not 0 <= lr_min <= lr:
            raise ValueError(f"lr_min must be in [0, lr={lr}], got {lr_min}")
        if msssim_weight < 0:
            raise ValueError(f"msssim_weight must be >= 0, got {msssim_weight}")
        make_channel(channel)  # validate the name now, build on the right device in setup()
        name, kwargs = CODECS.split(codec, codec_kwargs)
        self.codec = build_codec(name, cbr=cbr, **kwargs)
        if init_from is not None:
            self._init_codec(str(init_from))
        self.link: phy.AnalogLink | None = None
        self._rng_to_restore: dict | None = None

    def _init_codec(self, source: str) -> None:
        from .pretrained import codec_from_ref

        sd = codec_from_ref(source)[0].state_dict()
        try:
            self.codec.load_state_dict(sd)
        except RuntimeError as e:
            raise ValueError(f"init_from={source!r} does not fit this codec "
                             f"({self.hparams.codec}, cbr={self.hparams.cbr:.4g}): "
                             f"{str(e)[:300]}") from None

    # ----------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        self.build_link()

    def build_link(self) -> phy.AnalogLink:
        dev = sionna_device(self.device)
        if self.link is None or str(self.link.channel.device) != dev:
            self.link = phy.AnalogLink(make_channel(self.hparams.channel, device=dev),
                                       power_norm=self.hparams.power_norm)
        return self.link

    def on_fit_start(self) -> None:
        self.build_link()
        phy.set_seed(int(self.hparams.seed) + self.global_rank)

    def on_train_start(self) -> None:
        # After the sanity validation, so that it does not shift the training streams.
        if self._rng_to_restore is not None:  # resumed: continue the saved streams
            phy.set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        else:
            phy.set_seed(int(self.hparams.seed) + self.global_rank)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["semcom_rng"] = phy.rng_state(sionna_device(self.device))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._rng_to_restore = checkpoint.get("semcom_rng")

    # ----------------------------------------------------------------- forward
    def forward(self, img: torch.Tensor, snr_db: float | torch.Tensor) -> torch.Tensor:
        return self.codec(img, self.build_link(), snr_db)

    def _train_snr(self, batch_size: int) -> float | torch.Tensor:
        rng = self.hparams.train_snr_range_db
        if rng is None:
            return float(self.hparams.train_snr_db)
        lo, hi = rng
        return lo + (hi - lo) * torch.rand(batch_size)

    def _loss(self, img_hat: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(img_hat, img)
        if self.hparams.msssim_weight > 0:
            loss = loss + self.hparams.msssim_weight * (1 - ms_ssim(img_hat, img).mean())
        return loss

    @staticmethod
    def _images(batch: Any) -> torch.Tensor:
        return batch[0] if isinstance(batch, (list, tuple)) else batch

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        img = self._images(batch)
        img_hat = self(img, self._train_snr(img.shape[0]))
        loss = self._loss(img_hat, img)
        # sync_dist: with DDP the logged loss is the mean over ranks, the global batch's loss
        self.log("train/loss", loss, prog_bar=True, batch_size=img.shape[0], sync_dist=True)
        self.log("train/psnr", psnr(img_hat.detach(), img).mean(), batch_size=img.shape[0],
                 sync_dist=True)
        return loss

    def _evaluate(self, batch: Any, prefix: str) -> None:
        img = self._images(batch)
        psnrs = []
        for s in self.hparams.val_snrs_db:
            img_hat = self(img, float(s))
            p = psnr(img_hat, img).mean()
            psnrs.append(p)
            self.log(f"{prefix}/psnr_{s:g}dB", p, batch_size=img.shape[0])
            self.log(f"{prefix}/msssim_{s:g}dB", ms_ssim(img_hat, img).mean(),
                     batch_size=img.shape[0])
        self.log(f"{prefix}/psnr", torch.stack(psnrs).mean(), prog_bar=True,
                 batch_size=img.shape[0])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.codec.parameters(), lr=self.hparams.lr)
        if self.hparams.lr_schedule == "cosine":
            steps = self.hparams.lr_steps or self.trainer.max_steps
            if steps is None or steps < 1:
                steps = int(self.trainer.estimated_stepping_batches)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, max(1, int(steps)), eta_min=float(self.hparams.lr_min))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if self.hparams.cosine_epochs > 0:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.hparams.cosine_epochs)
            return {"optimizer": opt, "lr_scheduler": sched}
        return opt
