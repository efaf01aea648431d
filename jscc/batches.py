"""Training batches of random crops from images decoded once and held in memory as uint8.

:class:`CropBatchLoader` is what :class:`jscc.data.ImageDataModule` trains from. It replaces a
``Dataset`` + ``DataLoader`` pair for one reason: speed and exact resumption on a CPU.

* Every image is decoded once (``uint8 [3, H, W]`` tensors, a quarter of float32's memory);
  a batch is ``B`` tensor slices, one ``torch.stack`` and one division, with no per-item
  ``collate`` and no worker processes (on two cores workers compete with the training step).
* Batch ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: which image, the crop
  position and the horizontal flip of every item come from a generator seeded with
  ``(seed, e, i)``. The loader's state is just ``(epoch, next batch)``; Lightning saves it in
  every checkpoint (``state_dict`` / ``load_state_dict``) and a resumed run draws exactly the
  batches the uninterrupted run would have drawn.
* Data-parallel training: every rank draws the same *global* batch of ``B · world_size``
  crops and keeps its own slice, so ``world_size`` processes with batch ``B`` see exactly what
  one process with batch ``B · world_size`` sees.

Images are drawn uniformly (every image gets the same share of crops, whatever its size).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["CropBatchLoader", "to_uint8_chw"]


def to_uint8_chw(arr: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` array → contiguous uint8 tensor ``[3, H, W]`` (a copy)."""
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {arr.dtype} {list(arr.shape)}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class CropBatchLoader:
    """Seeded, resumable, shardable batches ``[B, 3, crop, crop]`` (float32 in [0, 1]).

    Args:
        images: uint8 tensors ``[3, H, W]`` (see :func:`to_uint8_chw`), each at least
            ``crop`` × ``crop``.
        crop: side of the square crops (px).
        batch_size: crops per batch on this rank.
        batches_per_epoch: batches per epoch (the loader's ``len``).
        seed: seed of the image choice, crop positions and flips.
        flip: flip each crop horizontally with probability 1/2.
        rank, world_size: this process's slice of the global batch (data parallelism).

    Iterating yields the batches of the current epoch from where the state says, then moves to
    the next epoch; :meth:`state_dict` / :meth:`load_state_dict` save and restore that place.
    A pass left before its end (Lightning's ``limit_train_batches``) counts as a whole epoch:
    the next pass starts the next epoch, unless a state was loaded in between.
    """

    def __init__(self, images: Sequence[torch.Tensor], crop: int, batch_size: int,
                 batches_per_epoch: int, seed: int = 0, flip: bool = True, rank: int = 0,
                 world_size: int = 1) -> None:
        self.crop = _positive_int("crop", crop)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.batches_per_epoch = _positive_int("batches_per_epoch", batches_per_epoch)
        self.world_size = _positive_int("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, {world_size - 1}], got {rank!r}")
        self.rank = rank
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = int(seed)
        self.flip = bool(flip)
        if len(images) == 0:
            raise ValueError("images must hold at least one image")
        for i, im in enumerate(images):
            if im.dtype != torch.uint8 or im.dim() != 3 or im.shape[0] != 3:
                raise ValueError(f"images[{i}] must be a uint8 [3, H, W] tensor, got "
                                 f"{im.dtype} {list(im.shape)}")
            if im.shape[1] < self.crop or im.shape[2] < self.crop:
                raise ValueError(f"images[{i}] is {im.shape[2]}x{im.shape[1]} pixels, smaller "
                                 f"than the crop {self.crop}x{self.crop}")
        self.images = list(images)
        self._hw = np.array([[im.shape[1], im.shape[2]] for im in self.images], dtype=np.int64)
        self.epoch = 0
        self.next_batch = 0
        self._open = False  # a pass has started and not reached its end

    def __len__(self) -> int:
        return self.batches_per_epoch

    def batch(self, epoch: int, index: int) -> torch.Tensor:
        """Batch ``index`` of ``epoch`` on this rank (does not move the loader's state)."""
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        n = self.batch_size * self.world_size
        which = rng.integers(0, len(self.images), size=n)
        tops = rng.integers(0, self._hw[which, 0] - self.crop + 1)
        lefts = rng.integers(0, self._hw[which, 1] - self.crop + 1)
        flips = rng.random(n) < 0.5
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        c = self.crop
        crops = []
        for j in range(lo, hi):
            t, left = int(tops[j]), int(lefts[j])
            x = self.images[int(which[j])][:, t:t + c, left:left + c]
            crops.append(x.flip(-1) if self.flip and flips[j] else x)
        return torch.stack(crops).float().div_(255.0)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._open:
            # the previous pass was left before its end (limit_train_batches): a new epoch
            self.epoch += 1
            self.next_batch = 0
        self._open = True
        while self.next_batch < self.batches_per_epoch:
            b = self.batch(self.epoch, self.next_batch)
            self.next_batch += 1
            yield b
        self._open = False
        self.epoch += 1
        self.next_batch = 0

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "next_batch", "seed"}``: where the next batch comes from."""
        return {"epoch": self.epoch, "next_batch": self.next_batch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not isinstance(state, dict) or not {"epoch", "next_batch"} <= set(state):
            raise ValueError("state must be a dict from CropBatchLoader.state_dict()")
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"the saved loader state was drawn with seed {state['seed']}, this "
                             f"loader has seed {self.seed}")
        self.epoch = int(state["epoch"])
        self.next_batch = int(state["next_batch"])
        self._open = False  # the next pass continues from here

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(images={len(self.images)}, crop={self.crop}, "
                f"batch_size={self.batch_size}, batches_per_epoch={self.batches_per_epoch}, "
                f"rank={self.rank}/{self.world_size})")
