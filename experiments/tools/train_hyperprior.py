"""Train a rate ladder of CompressAI scale-hyperprior codecs (bmshj2018-hyperprior) on CPU.

One :class:`compressai.models.ScaleHyperprior` per rate-distortion weight λ, with the usual
loss ``λ · 255² · MSE + bpp`` (bpp from the likelihoods of ``y`` and ``z``) and a second
optimizer for the auxiliary loss of the entropy bottleneck's quantiles. After training the
entropy-coder tables are built (``update(force=True)``), the real bitstream rate and PSNR are
measured on held-out crops, and the ladder is written with :func:`jscc.baselines.learned.
save_ladder` (atomically). The ladder feeds :class:`jscc.baselines.learned.LearnedLDPC`.

:func:`fit_hyperprior_ladder` turns a :class:`TrainHyperpriorConfig` into the trained models
and their measurements (:class:`HyperpriorLadder`); :func:`train_hyperprior`, the command,
writes the ladder.

Example::

    semcom train-hyperprior --data builtin --crop 64 --lambdas 0.0018,0.0067,0.025 \\
        --N 64 --M 96 --steps 2000 --out results/hyperprior/ladder.pt
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from compressai.models import ScaleHyperprior
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from experiments.cli import entry_point
from experiments.recipes.config import resolve_config
from experiments.values import FloatGrid, PositiveInt
from jscc.baselines.learned import compressed_bytes, save_ladder
from jscc.data import BuiltinPhotosDataset, ImageFolderDataset

__all__ = ["HyperpriorLadder", "TrainHyperpriorConfig", "evaluate_model",
           "fit_hyperprior_ladder", "main", "make_datasets", "rd_loss", "train_hyperprior",
           "train_ladder", "train_model"]


def rd_loss(out: dict, x: torch.Tensor, lmbda: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
    """``(loss, bpp, mse)``: ``loss = λ · 255² · MSE + bpp`` for a forward pass ``out``."""
    num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log(lk).sum() for lk in out["likelihoods"].values()) / (
        -math.log(2) * num_pixels)
    mse = torch.nn.functional.mse_loss(out["x_hat"], x)
    return lmbda * 255.0 ** 2 * mse + bpp, bpp, mse


def _batches(loader: DataLoader) -> Iterator[torch.Tensor]:
    while True:
        yield from loader


def make_datasets(data: str, crop: int, num_crops: int = 4096,
                  eval_crops: int = 16, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Training and held-out datasets: ``"builtin"`` photos or a folder of images.

    A folder is used for training (random crops); its held-out set is a deterministic centre
    crop of every image (the same images: pass a separate folder for a clean split).
    """
    if data == "builtin":
        train = BuiltinPhotosDataset(crop=crop, train=True, num_crops=num_crops, seed=seed)
        held = BuiltinPhotosDataset(crop=crop, train=False, num_crops=eval_crops)
        return train, held
    train = ImageFolderDataset(data, crop=crop, train=True, seed=seed)
    held = ImageFolderDataset(data, crop=crop, train=False)
    return train, held


def train_model(lmbda: float, batches: Iterator[torch.Tensor], *, N: int = 64, M: int = 96,
                steps: int = 1000, lr: float = 1e-3, aux_lr: float = 1e-3,
                clip_norm: float = 1.0, seed: int = 0, progress: bool = True
                ) -> ScaleHyperprior:
    """Train one scale-hyperprior codec for ``steps`` batches and build its coder tables.

    The network parameters and the entropy bottleneck's ``quantiles`` get separate Adam
    optimizers (the latter minimising :meth:`~compressai.models.CompressionModel.aux_loss`).
    The returned model is in eval mode, with ``update(force=True)`` done and ``lmbda`` set.
    """
    torch.manual_seed(seed)
    model = ScaleHyperprior(N, M)
    net_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(net_params, lr=lr)
    aux_opt = torch.optim.Adam(aux_params, lr=aux_lr)
    model.train()
    bar = tqdm(range(steps), desc=f"λ={lmbda:g}", disable=not progress, leave=False)
    for _ in bar:
        x = next(batches)
        opt.zero_grad()
        aux_opt.zero_grad()
        out = model(x)
        loss, bpp, mse = rd_loss(out, x, lmbda)
        loss.backward()
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(net_params, clip_norm)
        opt.step()
        aux = model.aux_loss()
        aux.backward()
        aux_opt.step()
        psnr = -10 * math.log10(max(mse.item(), 1e-12))
        bar.set_postfix(loss=f"{loss.item():.3f}", bpp=f"{bpp.item():.3f}", psnr=f"{psnr:.2f}")
    model.eval()
    model.update(force=True)
    model.lmbda = float(lmbda)
    return model


@torch.no_grad()
def evaluate_model(model: ScaleHyperprior, images: Sequence[torch.Tensor]
                   ) -> tuple[float, float]:
    """Mean real bitstream rate (bpp of the y and z strings) and mean PSNR over ``images``.

    Every image ``[3, H, W]`` needs ``H`` and ``W`` multiples of 64.
    """
    bpps, psnrs = [], []
    for img in images:
        x = img.unsqueeze(0).float()
        enc = model.compress(x)
        x_hat = model.decompress(enc["strings"], enc["shape"])["x_hat"]
        bpps.append(8 * compressed_bytes(enc) / (x.shape[2] * x.shape[3]))
        mse = float((x_hat - x).pow(2).mean())
        psnrs.append(-10 * math.log10(max(mse, 1e-12)))
    return sum(bpps) / len(bpps), sum(psnrs) / len(psnrs)


def train_ladder(lambdas: Sequence[float], train: Dataset, *, batch_size: int = 8,
                 seed: int = 0, progress: bool = True, **kwargs) -> list[ScaleHyperprior]:
    """One :func:`train_model` per λ (ascending), each from the same seed."""
    models = []
    for lmbda in sorted(float(v) for v in lambdas):
        gen = torch.Generator().manual_seed(seed)
        loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True,
                            generator=gen)
        models.append(train_model(lmbda, _batches(loader), seed=seed, progress=progress,
                                  **kwargs))
    return models


@dataclass(frozen=True)
class TrainHyperpriorConfig:
    """What ``semcom train-hyperprior`` trains (checked when built).

    Attributes:
        data: ``builtin`` or a folder of images.
        crop: crop side in pixels (a multiple of 64).
        lambdas: rate-distortion weights λ, one model each.
        N: channels of the hyperprior's transforms.
        M: channels of its latent ``y``.
        steps: training steps per model.
        batch_size: crops per step.
        lr: Adam learning rate.
        eval_crops: held-out crops of the rate and PSNR measurement.
        seed: seed of the crops and the initialisation.
    """

    data: str = "builtin"
    crop: int = 64
    lambdas: FloatGrid = FloatGrid((0.0018, 0.0067, 0.025))
    N: int = 64
    M: int = 96
    steps: PositiveInt = 300
    batch_size: PositiveInt = 8
    lr: float = 1e-3
    eval_crops: PositiveInt = 16
    seed: int = 0

    def __post_init__(self) -> None:
        values = [float(v) for v in FloatGrid.parse(self.lambdas)]
        if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
            raise ValueError(f"lambdas must be positive numbers, got {values}")
        object.__setattr__(self, "lambdas", FloatGrid(values))
        crop = self.crop
        if isinstance(crop, bool) or not isinstance(crop, int) or crop < 64 or crop % 64:
            raise ValueError(f"crop must be a positive multiple of 64, got {crop!r}")
        for name in ("steps", "batch_size", "eval_crops", "N", "M"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) \
                or not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.data != "builtin" and not Path(self.data).is_dir():
            raise ValueError(f"data must be 'builtin' or an image folder, got {self.data!r}")


@dataclass
class HyperpriorLadder:
    """The training of a :class:`TrainHyperpriorConfig`.

    Attributes:
        config: what was trained.
        models: one trained codec per λ, ascending (eval mode, coder tables built).
        rows: per model, ``lmbda``, the real bitstream ``bpp`` and ``psnr`` (dB) over the
            ``num_crops`` held-out crops.
        train_s: training wall time in s.
    """

    config: TrainHyperpriorConfig
    models: list[ScaleHyperprior]
    rows: list[dict[str, float]]
    train_s: float


def fit_hyperprior_ladder(cfg: TrainHyperpriorConfig, *, progress: bool = True
                          ) -> HyperpriorLadder:
    """Train one model per λ and measure it on held-out crops (writes nothing)."""
    steps, batch_size, eval_crops = cfg.steps, cfg.batch_size, cfg.eval_crops
    train, held = make_datasets(cfg.data, cfg.crop, num_crops=max(steps * batch_size, 64),
                                eval_crops=eval_crops, seed=cfg.seed)
    held_imgs = [held[i] for i in range(min(len(held), eval_crops))]
    t0 = time.perf_counter()
    models = train_ladder(list(cfg.lambdas), train, batch_size=batch_size, seed=cfg.seed,
                          progress=progress, N=cfg.N, M=cfg.M, steps=steps, lr=cfg.lr)
    train_s = time.perf_counter() - t0
    print(f"trained {len(models)} models in {train_s:.1f} s "
          f"(N={cfg.N}, M={cfg.M}, {steps} steps, crop {cfg.crop})")
    rows = []
    for m in models:
        bpp, psnr = evaluate_model(m, held_imgs)
        rows.append({"lmbda": m.lmbda, "bpp": bpp, "psnr": psnr, "num_crops": len(held_imgs)})
        print(f"  λ={m.lmbda:<8g} bpp={bpp:.3f}  PSNR={psnr:.2f} dB  "
              f"({len(held_imgs)} held-out crops)")
    return HyperpriorLadder(cfg, models, rows, train_s)


def train_hyperprior(cfg: TrainHyperpriorConfig | None = None, *, threads: PositiveInt = 1,
                     progress: bool = True, out: str = "results/hyperprior/ladder.pt",
                     **settings: Any) -> Path:
    """Train one model per λ, measure it on held-out crops and write the ladder; returns the
    ladder's path.

    Args:
        cfg: what to train; or give its fields as keywords (``settings``).
        threads: torch CPU threads.
        progress: show progress bars.
        out: the ladder file (:func:`jscc.baselines.learned.save_ladder`).
    """
    cfg = resolve_config(TrainHyperpriorConfig, cfg, settings)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    torch.set_num_threads(threads)
    ladder = fit_hyperprior_ladder(cfg, progress=progress)
    path = Path(out)
    save_ladder(ladder.models, path)
    return path


#: ``python -m experiments.tools.train_hyperprior`` = ``semcom train-hyperprior``.
main = entry_point("train-hyperprior")


if __name__ == "__main__":
    raise SystemExit(main())
