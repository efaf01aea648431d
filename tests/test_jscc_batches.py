"""CropBatchLoader: seeded crops from uint8 images in memory, resumable state, rank slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jscc.batches import CropBatchLoader, to_uint8_chw


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
            for h, w in ((40, 50), (33, 33), (64, 48))]


def _find_crop(img: torch.Tensor, crop: torch.Tensor) -> bool:
    """True if ``crop`` (float, [3, c, c]) is a crop of ``img`` or of its mirror image."""
    c = crop.shape[-1]
    target = (crop * 255).round().to(torch.uint8)
    for src in (img, img.flip(-1)):
        win = src.unfold(1, c, 1).unfold(2, c, 1)  # [3, H-c+1, W-c+1, c, c]
        if (win == target[:, None, None]).all(dim=(0, 3, 4)).any():
            return True
    return False


def test_batches_are_crops_of_the_images_in_unit_range() -> None:
    imgs = _images()
    loader = CropBatchLoader(imgs, crop=16, batch_size=6, batches_per_epoch=3, seed=1)
    batches = list(loader)
    assert len(batches) == 3
    for b in batches:
        assert b.shape == (6, 3, 16, 16) and b.dtype == torch.float32
        assert 0.0 <= float(b.min()) and float(b.max()) <= 1.0
        for crop in b:
            assert any(_find_crop(im, crop) for im in imgs)


def test_flip_probability_and_image_share() -> None:
    """Over 4000 crops each image gets 1/3 ± 4σ and half the crops are mirrored (± 4σ)."""
    # images that are constant per column index so a flip is detectable: column j has value j
    imgs = [torch.arange(32, dtype=torch.uint8).expand(3, 32, 32).clone() + 100 * k
            for k in range(2)] + [torch.full((3, 32, 32), 250, dtype=torch.uint8)]
    loader = CropBatchLoader(imgs, crop=8, batch_size=400, batches_per_epoch=10, seed=3)
    crops = torch.cat(list(loader))
    v = (crops * 255).round()
    which = torch.where(v[:, 0, 0, 0] >= 250, 2, torch.where(v[:, 0, 0, 0] >= 100, 1, 0))
    n = crops.shape[0]
    sigma = np.sqrt(n * (1 / 3) * (2 / 3))
    for k in range(3):
        assert abs(int((which == k).sum()) - n / 3) < 4 * sigma
    ramp = which < 2
    flipped = (v[ramp, 0, 0, 1] < v[ramp, 0, 0, 0]).float()
    m = int(ramp.sum())
    assert abs(float(flipped.sum()) - m / 2) < 4 * np.sqrt(m / 4)


def test_same_seed_same_batches_and_epochs_differ() -> None:
    a = CropBatchLoader(_images(), 16, 4, 2, seed=7)
    b = CropBatchLoader(_images(), 16, 4, 2, seed=7)
    ea, eb = list(a), list(b)
    assert all(torch.equal(x, y) for x, y in zip(ea, eb, strict=True))
    second = list(a)
    assert not torch.equal(ea[0], second[0])  # a new epoch draws new crops
    c = CropBatchLoader(_images(), 16, 4, 2, seed=8)
    assert not torch.equal(ea[0], next(iter(c)))


def test_state_dict_resumes_mid_epoch_exactly() -> None:
    ref = CropBatchLoader(_images(), 16, 4, 5, seed=2)
    full = list(ref) + list(ref)                 # two epochs, 10 batches
    run = CropBatchLoader(_images(), 16, 4, 5, seed=2)
    it = iter(run)
    head = [next(it) for _ in range(3)]
    state = run.state_dict()
    assert state == {"epoch": 0, "next_batch": 3, "seed": 2}
    resumed = CropBatchLoader(_images(), 16, 4, 5, seed=2)
    resumed.load_state_dict(state)
    tail = list(resumed) + list(resumed)
    got = head + tail
    assert len(got) == 10
    assert all(torch.equal(x, y) for x, y in zip(full, got, strict=True))
    with pytest.raises(ValueError, match="seed 2"):
        CropBatchLoader(_images(), 16, 4, 5, seed=3).load_state_dict(state)


def test_an_abandoned_pass_counts_as_an_epoch() -> None:
    loader = CropBatchLoader(_images(), 16, 4, 5, seed=2)
    it = iter(loader)
    first = next(it)
    again = next(iter(loader))  # Lightning's limit_train_batches leaves passes early
    assert loader.epoch == 1 and not torch.equal(first, again)
    assert torch.equal(again, loader.batch(1, 0))


def test_ranks_take_slices_of_one_global_batch() -> None:
    whole = CropBatchLoader(_images(), 16, 6, 3, seed=5)
    parts = [CropBatchLoader(_images(), 16, 3, 3, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for x, p0, p1 in zip(whole, *parts, strict=True):
        assert torch.equal(x, torch.cat([p0, p1]))


def test_bad_arguments_are_refused() -> None:
    imgs = _images()
    with pytest.raises(ValueError, match="smaller than the crop"):
        CropBatchLoader(imgs, 40, 4, 2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        CropBatchLoader(imgs, 8, 0, 2)
    with pytest.raises(ValueError, match="rank must be an int in"):
        CropBatchLoader(imgs, 8, 4, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="uint8"):
        CropBatchLoader([torch.rand(3, 20, 20)], 8, 4, 2)
    with pytest.raises(ValueError, match="at least one image"):
        CropBatchLoader([], 8, 4, 2)
    with pytest.raises(ValueError, match="uint8"):
        to_uint8_chw(np.zeros((4, 4), dtype=np.uint8))
