"""Image datasets and the Lightning data module (all data is generated in tmp_path or ships
inside installed wheels; nothing is downloaded)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jscc.data import (
    BUILTIN_EVAL_PHOTOS,
    BUILTIN_TRAIN_PHOTOS,
    BuiltinPhotosDataset,
    Cifar10Dataset,
    ImageDataModule,
    ImageFolderDataset,
    builtin_photo_paths,
    load_builtin_photo,
)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] → uint8 [H, W, 3]."""
    return (t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- folder
@pytest.fixture
def image_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Four images (PNG RGB, JPEG RGB, grayscale PNG in a sub-folder, RGBA PNG) plus files
    that must be ignored. Returns the folder and the RGB uint8 array each file decodes to."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    expected = {}
    a = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(a).save(root / "a.png")
    expected["a.png"] = a
    b = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(b).save(root / "b.jpg", quality=95)
    expected["b.jpg"] = np.asarray(Image.open(root / "b.jpg").convert("RGB"))
    g = rng.integers(0, 256, (36, 44), dtype=np.uint8)
    Image.fromarray(g, mode="L").save(root / "sub" / "c.png")
    expected["sub/c.png"] = np.repeat(g[:, :, None], 3, axis=2)
    d = rng.integers(0, 256, (50, 40, 4), dtype=np.uint8)
    Image.fromarray(d, mode="RGBA").save(root / "d.PNG")
    expected["d.PNG"] = d[:, :, :3]
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"garbage")  # hidden files are skipped
    return root, expected


def test_folder_eval_whole_images_exact(image_folder):
    root, expected = image_folder
    ds = ImageFolderDataset(root, crop=None, train=False)
    names = [p.relative_to(root).as_posix() for p in ds.files]
    assert names == ["a.png", "b.jpg", "d.PNG", "sub/c.png"]
    assert len(ds) == 4 and ds.variable_size
    for i, name in enumerate(names):
        x = ds[i]
        assert x.dtype == torch.float32 and x.shape[0] == 3
        assert 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_array_equal(_to_uint8(x), expected[name])  # gray → RGB, alpha dropped


def test_folder_eval_centre_crop_deterministic(image_folder):
    root, expected = image_folder
    ds = ImageFolderDataset(root, crop=32, train=False, crops_per_image=5)
    assert len(ds) == 4  # crops_per_image only applies to training
    x0 = ds[0]
    assert x0.shape == (3, 32, 32)
    torch.testing.assert_close(x0, ds[0], rtol=0, atol=0)
    torch.testing.assert_close(
        x0, ImageFolderDataset(root, crop=32, train=False, seed=9)[0], rtol=0, atol=0)
    a = expected["a.png"]  # 40 x 50: centre crop starts at (4, 9)
    np.testing.assert_array_equal(_to_uint8(x0), a[4:36, 9:41])


def test_folder_train_random_crops(image_folder):
    root, expected = image_folder
    ds = ImageFolderDataset(root, crop=16, train=True, crops_per_image=3, seed=1)
    assert len(ds) == 12
    epoch1 = torch.stack([ds[i] for i in range(len(ds))])
    epoch2 = torch.stack([ds[i] for i in range(len(ds))])
    assert epoch1.shape == (12, 3, 16, 16)
    assert 0.0 <= epoch1.min() and epoch1.max() <= 1.0
    assert not torch.equal(epoch1, epoch2)  # new crops every epoch
    same = ImageFolderDataset(root, crop=16, train=True, crops_per_image=3, seed=1)
    assert torch.equal(torch.stack([same[i] for i in range(len(same))]), epoch1)
    other = ImageFolderDataset(root, crop=16, train=True, crops_per_image=3, seed=2)
    assert not torch.equal(torch.stack([other[i] for i in range(len(other))]), epoch1)
    # items 0..2 are crops of a.png (lossless): each is a window of it, possibly mirrored
    a = expected["a.png"]
    for i in range(3):
        c = _to_uint8(epoch1[i])
        windows = np.lib.stride_tricks.sliding_window_view(a, (16, 16, 3))[:, :, 0]
        hit = (windows == c).all(axis=(2, 3, 4)) | (windows == c[:, ::-1]).all(axis=(2, 3, 4))
        assert hit.sum() == 1


def test_folder_options(image_folder):
    root, _ = image_folder
    assert len(ImageFolderDataset(root, crop=None, train=False, recursive=False)) == 3
    assert len(ImageFolderDataset(root, crop=None, train=False, extensions=(".jpg",))) == 1
    ds = ImageFolderDataset(root, crop=8, train=False, cache=True)
    ds[1]
    assert list(ds._cache) == [1]
    assert not ImageFolderDataset(root, crop=8, train=False, cache=False).cache


def test_folder_exif_orientation(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # stored 30 wide, shown rotated: 20 wide, 30 high
    im.save(tmp_path / "r.jpg", exif=exif)
    ds = ImageFolderDataset(tmp_path, crop=None, train=False)
    assert ds.sizes == [(30, 20)] and ds[0].shape == (3, 30, 20)


def test_folder_errors(image_folder, tmp_path):
    root, _ = image_folder
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolderDataset(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="empty"):
        ImageFolderDataset(empty)
    with pytest.raises(ValueError, match=r"crop 42x42 .*a\.png \(50x40 pixels"):  # W x H
        ImageFolderDataset(root, crop=42, train=False)
    with pytest.raises(ValueError, match="crop"):
        ImageFolderDataset(root, crop=0)
    (root / "x.png").write_bytes(b"\x00garbage, not a PNG\xff" * 10)
    with pytest.raises(ValueError, match=r"x\.png"):
        ImageFolderDataset(root, crop=8)


def test_folder_truncated_file_named_on_decode(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])  # header fine, pixels cut
    ds = ImageFolderDataset(tmp_path, crop=8, train=False)
    with pytest.raises(ValueError, match=r"t\.png"):
        ds[0]


# --------------------------------------------------------------------------- CIFAR-10
@pytest.fixture
def cifar_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = {}
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 3)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with (folder / name).open("wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": list(range(n)),
                         b"data": data, b"filenames": [b"x.png"] * n}, f)
        written[name] = data
    return tmp_path, written


def test_cifar_loads_exact_pixels(cifar_root):
    parent, written = cifar_root
    train = Cifar10Dataset(parent, train=True)
    test = Cifar10Dataset(parent / "cifar-10-batches-py", train=False)
    assert len(train) == 20 and len(test) == 3
    x = train[6]  # data_batch_2 holds items 4..7: its row 2
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    row = written["data_batch_2"][2]
    for c in range(3):  # R, G, B planes of 1024 values each, row-major
        plane = row[c * 1024:(c + 1) * 1024].reshape(32, 32)
        assert torch.equal(x[c], torch.from_numpy(plane.astype(np.float32)) / 255)
    np.testing.assert_array_equal(_to_uint8(test[2]), written["test_batch"][2]
                                  .reshape(3, 32, 32).transpose(1, 2, 0))
    assert train.labels.tolist() == [0, 1, 2, 3] * 5


def test_cifar_errors(cifar_root, tmp_path):
    parent, _ = cifar_root
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Cifar10Dataset(tmp_path / "nowhere")
    folder = parent / "cifar-10-batches-py"
    (folder / "data_batch_5").unlink()
    with pytest.warns(UserWarning, match="1, 2, 3, 4"):
        assert len(Cifar10Dataset(folder)) == 16
    with (folder / "data_batch_1").open("wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8)}, f)
    with pytest.raises(ValueError, match="data_batch_1"), pytest.warns(UserWarning):
        Cifar10Dataset(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch"):
        Cifar10Dataset(folder, train=False)


# --------------------------------------------------------------------------- built-in photos
def test_builtin_photos_found_and_split():
    found = builtin_photo_paths()
    assert len(found) >= 10
    assert set(BUILTIN_TRAIN_PHOTOS).isdisjoint(BUILTIN_EVAL_PHOTOS)
    tr = BuiltinPhotosDataset(crop=32, train=True, num_crops=40, seed=0)
    ev = BuiltinPhotosDataset(crop=64, train=False)
    assert set(tr.photos).isdisjoint(ev.photos)
    assert set(ev.photos) == set(BUILTIN_EVAL_PHOTOS) & set(found)
    assert len(tr.photos) >= 7 and len(ev.photos) >= 2
    for name in found:
        arr = load_builtin_photo(name)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


def test_builtin_train_crops():
    tr = BuiltinPhotosDataset(crop=32, train=True, num_crops=20, seed=0)
    assert len(tr) == 20
    e1 = torch.stack([tr[i] for i in range(20)])
    e2 = torch.stack([tr[i] for i in range(20)])
    assert e1.shape == (20, 3, 32, 32) and e1.dtype == torch.float32
    assert 0.0 <= e1.min() and e1.max() <= 1.0
    assert not torch.equal(e1, e2)
    again = BuiltinPhotosDataset(crop=32, train=True, num_crops=20, seed=0)
    assert torch.equal(torch.stack([again[i] for i in range(20)]), e1)
    other = BuiltinPhotosDataset(crop=32, train=True, num_crops=20, seed=1)
    assert not torch.equal(torch.stack([other[i] for i in range(20)]), e1)


def test_builtin_eval_grid_deterministic():
    ev = BuiltinPhotosDataset(crop=64, train=False)
    expected = sum((h // 64) * (w // 64) for h, w in ev.sizes.values())
    assert len(ev) == expected
    name, top, left = ev.grid[0]
    x = ev[0]
    assert x.shape == (3, 64, 64) and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(_to_uint8(x), load_builtin_photo(name)[top:top + 64,
                                                                        left:left + 64])
    ev2 = BuiltinPhotosDataset(crop=64, train=False, seed=123)
    assert torch.equal(ev2[len(ev2) - 1], ev[len(ev) - 1])
    few = BuiltinPhotosDataset(crop=64, train=False, num_crops=5)
    assert len(few) == 5 and few.grid[0] == ev.grid[0] and few.grid[-1] == ev.grid[-1]
    whole = BuiltinPhotosDataset(crop=None, train=False)
    assert len(whole) == len(whole.photos) and whole.variable_size


def test_builtin_errors():
    with pytest.raises(ValueError, match="unknown"):
        BuiltinPhotosDataset(photos=["kodim01"])
    with pytest.raises(ValueError, match="crop 5000"):
        BuiltinPhotosDataset(crop=5000)
    with pytest.raises(ValueError, match="crop size"):
        BuiltinPhotosDataset(crop=None, train=True)


# --------------------------------------------------------------------------- data module
def _one_batch(loader) -> torch.Tensor:
    return next(iter(loader))


def test_datamodule_builtin():
    dm = ImageDataModule(source="builtin", crop=32, batch_size=4, crops_per_image=1)
    assert dm.hparams["crop"] == 32 and dm.hparams["source"] == "builtin"
    dm.setup("fit")
    assert dm.test_dataset is None
    assert len(dm.train_dataset) == 128
    assert set(dm.train_dataset.photos).isdisjoint(dm.val_dataset.photos)
    assert _one_batch(dm.train_dataloader()).shape == (4, 3, 32, 32)
    assert _one_batch(dm.val_dataloader()).shape == (4, 3, 32, 32)
    assert _one_batch(dm.test_dataloader()).shape == (4, 3, 32, 32)
    # shuffling and crops follow `seed`
    b1 = _one_batch(ImageDataModule(crop=16, batch_size=8, seed=3).train_dataloader())
    b2 = _one_batch(ImageDataModule(crop=16, batch_size=8, seed=3).train_dataloader())
    assert torch.equal(b1, b2)


def test_datamodule_folder(image_folder):
    root, _ = image_folder
    dm = ImageDataModule(source="folder", train_dir=str(root), crop=16, batch_size=3,
                         crops_per_image=2)
    dm.setup(None)
    assert len(dm.train_dataset) == 8 and len(dm.val_dataset) == 4 and len(dm.test_dataset) == 4
    assert not dm.val_dataset.train
    assert _one_batch(dm.train_dataloader()).shape == (3, 3, 16, 16)
    assert _one_batch(dm.val_dataloader()).shape == (3, 3, 16, 16)
    assert _one_batch(dm.test_dataloader()).shape == (3, 3, 16, 16)
    whole = ImageDataModule(source="folder", train_dir=str(root), val_dir=str(root / "sub"),
                            crop=16, batch_size=3, val_crop=0)
    b = _one_batch(whole.val_dataloader())  # setup on demand; whole images → batch of one
    assert b.shape == (1, 3, 36, 44)
    with pytest.raises(ValueError, match="batch_size=1"):
        ImageDataModule(source="folder", train_dir=str(root), crop=None, batch_size=2).setup()


def test_datamodule_cifar(cifar_root):
    parent, _ = cifar_root
    dm = ImageDataModule(source="cifar10", cifar_root=str(parent), batch_size=5)
    dm.setup("fit")
    assert _one_batch(dm.train_dataloader()).shape == (5, 3, 32, 32)
    assert _one_batch(dm.val_dataloader()).shape == (3, 3, 32, 32)
    dm.setup("test")
    assert _one_batch(dm.test_dataloader()).shape == (3, 3, 32, 32)


def test_datamodule_errors(tmp_path):
    with pytest.raises(ValueError, match="source"):
        ImageDataModule(source="kodak")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="train_dir"):
        ImageDataModule(source="folder")
    with pytest.raises(ValueError, match="cifar_root"):
        ImageDataModule(source="cifar10")
    with pytest.raises(ValueError, match="batch_size"):
        ImageDataModule(batch_size=0)
    with pytest.raises(ValueError, match="val_crop"):
        ImageDataModule(val_crop=-1)
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        ImageDataModule(source="folder", train_dir=str(tmp_path / "missing_dir")).setup("fit")


def test_datamodule_in_lightning_fit(image_folder, tmp_path):
    import pytorch_lightning as pl

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def training_step(self, batch, batch_idx):
            assert batch.shape == (2, 3, 16, 16)
            return ((batch * self.w - batch) ** 2).mean() + (self.w - 0.5).abs().sum()

        def validation_step(self, batch, batch_idx):
            self.log("val/x", batch.mean(), batch_size=batch.shape[0])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    root, _ = image_folder
    dm = ImageDataModule(source="folder", train_dir=str(root), crop=16, batch_size=2)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                         accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(Tiny(), datamodule=dm)
    assert trainer.global_step == 2
