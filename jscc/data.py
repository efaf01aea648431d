"""Image data for JSCC training and evaluation.

Every dataset returns one ``float32`` tensor ``[3, H, W]`` with values in [0, 1] per item (no
labels), so batches are plain ``[B, 3, H, W]`` tensors.

* :class:`ImageFolderDataset`: a folder of PNG/JPEG/BMP/TIFF files (e.g. CSun_Hays80 for
  training, CBSD68 for testing). Training yields ``crops_per_image`` random crops per image and
  epoch with random horizontal flips; evaluation yields one deterministic centre crop per image,
  or the whole image when ``crop`` is None.
* :class:`Cifar10Dataset`: the python-pickle CIFAR-10 release (``cifar-10-batches-py/``).
* :class:`BuiltinPhotosDataset`: the offline default, twelve natural RGB photos that ship inside
  the scikit-image, scikit-learn and matplotlib wheels, split by photo into training and
  held-out evaluation photos (see :data:`BUILTIN_EVAL_PHOTOS`).
* :class:`ImageDataModule`: a Lightning data module over any of the three (``source=``).

Randomness: training crops and flips come from the dataset's own ``seed``, so a run is
reproducible without the global RNG. With ``num_workers=0`` one generator is drawn from in
sequence (each epoch gets new crops). In a worker process the generator is re-seeded from
``(seed, worker seed)``; PyTorch derives worker seeds from the loader's generator (which
:class:`ImageDataModule` seeds from ``seed``), so worker crops are reproducible too and differ
between workers and epochs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, get_worker_info

from phy.checks import check_positive_int

from .batches import CropBatchLoader, to_uint8_chw

__all__ = [
    "BUILTIN_EVAL_PHOTOS",
    "BUILTIN_PHOTO_FILES",
    "BUILTIN_TRAIN_PHOTOS",
    "IMAGE_EXTENSIONS",
    "BuiltinPhotosDataset",
    "Cifar10Dataset",
    "ImageDataModule",
    "ImageFolderDataset",
    "builtin_photo_paths",
    "load_builtin_photo",
]

#: File name endings (case-insensitive) that :class:`ImageFolderDataset` reads.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: ``cache=None`` caches decoded images in memory for folders with at most this many images.
CACHE_AUTO_MAX_IMAGES = 256

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- helpers
class _CropRNG:
    """A numpy generator per process: ``seed`` in the main process, ``(seed, worker seed)`` in
    a DataLoader worker (whose seed changes every epoch unless workers persist)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) % 2**63
        self._main = np.random.default_rng(self.seed)
        self._worker: np.random.Generator | None = None
        self._worker_seed: int | None = None

    def get(self) -> np.random.Generator:
        info = get_worker_info()
        if info is None:
            return self._main
        if self._worker is None or self._worker_seed != info.seed:
            self._worker_seed = info.seed
            self._worker = np.random.default_rng([self.seed, int(info.seed) % 2**63])
        return self._worker


def _check_crop(crop: int | None, name: str = "crop") -> int | None:
    if crop is None:
        return None
    return check_positive_int(name, crop)


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` array (any strides) → float32 ``[3, H, W]`` in [0, 1] (a copy)."""
    chw = np.array(arr.transpose(2, 0, 1), dtype=np.float32, order="C")
    return torch.from_numpy(chw).div_(255.0)


def _random_crop(arr: np.ndarray, crop: int | None, rng: np.random.Generator,
                 flip: bool = True) -> np.ndarray:
    h, w = arr.shape[:2]
    if crop is not None:
        top = int(rng.integers(0, h - crop + 1))
        left = int(rng.integers(0, w - crop + 1))
        arr = arr[top:top + crop, left:left + crop]
    if flip and rng.random() < 0.5:
        arr = arr[:, ::-1]
    return arr


def _centre_crop(arr: np.ndarray, crop: int | None) -> np.ndarray:
    if crop is None:
        return arr
    h, w = arr.shape[:2]
    top, left = (h - crop) // 2, (w - crop) // 2
    return arr[top:top + crop, left:left + crop]


def _pil_to_rgb_array(im: Image.Image) -> np.ndarray:
    """Any Pillow image → uint8 ``[H, W, 3]``: grayscale is repeated into three channels,
    alpha is dropped (not composited), palettes are expanded, 16-bit grayscale is scaled."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        maxval = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        g = np.clip(np.rint(a * (255.0 / maxval)), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        g = np.clip(np.rint(a * (255.0 if a.max(initial=0) <= 1.0 else 1.0)), 0, 255)
        return np.repeat(g.astype(np.uint8)[:, :, None], 3, axis=2)
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def _decode_image(path: Path) -> np.ndarray:
    """Decode an image file to uint8 ``[H, W, 3]`` (EXIF orientation applied)."""
    try:
        with Image.open(path) as im:
            orientation = _orientation(im)
            im.load()
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
            arr = _pil_to_rgb_array(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"cannot decode image file {path}: {e}") from e
    arr.setflags(write=False)
    return arr


_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees
_EXIF_HEADER_FORMATS = ("JPEG", "MPO", "TIFF", "WEBP")


def _orientation(im: Image.Image) -> int:
    """EXIF orientation of a JPEG/MPO/TIFF/WebP (1 = upright). Other formats count as upright:
    Pillow would decode a whole PNG to find its EXIF chunk."""
    if im.format not in _EXIF_HEADER_FORMATS:
        return 1
    return int(im.getexif().get(0x0112, 1))


def _image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file after EXIF orientation, read from its header only."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = _orientation(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"cannot read image file {path}: {e}") from e
    if orientation in _SWAPPING_ORIENTATIONS:
        h, w = w, h
    return h, w


# --------------------------------------------------------------------------- folder
class ImageFolderDataset(Dataset):
    """Images from a folder (recursively by default), as float32 ``[3, H, W]`` in [0, 1].

    Args:
        root: the folder.
        crop: side of the square crops; None returns whole images (then images of different
            sizes cannot be stacked: use ``batch_size=1``).
        train: True: ``crops_per_image`` random crops per image per epoch, each flipped
            horizontally with probability 1/2 (``len = images × crops_per_image``).
            False: one deterministic centre crop (or the whole image) per image, no flip.
        extensions: file name endings to read (case-insensitive). Hidden files (``.*``) are
            skipped.
        recursive: also read sub-folders.
        crops_per_image: random crops per image per epoch (training only).
        seed: seed of the crop positions and flips.
        cache: keep decoded images in memory; None (default) caches folders with at most
            :data:`CACHE_AUTO_MAX_IMAGES` images.

    Files are sorted by their path relative to ``root``. Every header is read at construction,
    so a file that is no image, or an image smaller than ``crop``, fails at once (ValueError
    naming the file); pixels are decoded lazily. Grayscale is repeated into RGB, alpha dropped,
    16-bit grayscale scaled to 8 bits, the EXIF orientation of JPEG/TIFF/WebP files applied.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no image file.
        ValueError: ``root`` is not a folder, a file cannot be read, or ``crop`` exceeds an image.
    """

    def __init__(self, root: PathLike, crop: int | None = 256, train: bool = True,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS, recursive: bool = True,
                 crops_per_image: int = 1, seed: int = 0, cache: bool | None = None) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.crop = _check_crop(crop)
        self.train = bool(train)
        if isinstance(crops_per_image, bool) or int(crops_per_image) < 1:
            raise ValueError(f"crops_per_image must be >= 1, got {crops_per_image!r}")
        self.crops_per_image = int(crops_per_image)
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        if not exts:
            raise ValueError("extensions must name at least one file type")
        if not self.root.exists():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        if not self.root.is_dir():
            raise ValueError(f"image folder {self.root} is not a folder")
        pattern = self.root.rglob("*") if recursive else self.root.glob("*")
        self.files: list[Path] = sorted(
            (p for p in pattern
             if p.suffix.lower() in exts and not p.name.startswith(".") and p.is_file()),
            key=lambda p: p.relative_to(self.root).as_posix())
        if not self.files:
            where = "or its sub-folders " if recursive else ""
            raise FileNotFoundError(f"no image files ({', '.join(exts)}) in {self.root} {where}"
                                    "— expected a folder of images")
        #: ``(H, W)`` of every file, in the order of :attr:`files`.
        self.sizes: list[tuple[int, int]] = [_image_size(p) for p in self.files]
        if self.crop is not None:
            for p, (h, w) in zip(self.files, self.sizes, strict=True):
                if h < self.crop or w < self.crop:
                    raise ValueError(f"crop {self.crop}x{self.crop} is larger than image {p} "
                                     f"({w}x{h} pixels, width x height); use a smaller crop "
                                     "or remove the image")
        self.cache = len(self.files) <= CACHE_AUTO_MAX_IMAGES if cache is None else bool(cache)
        self._cache: dict[int, np.ndarray] = {}
        self._rng = _CropRNG(seed)

    @property
    def variable_size(self) -> bool:
        """True if items can differ in size (whole images of different sizes)."""
        return self.crop is None and len(set(self.sizes)) > 1

    def __len__(self) -> int:
        return len(self.files) * (self.crops_per_image if self.train else 1)

    def image(self, index: int) -> np.ndarray:
        """The decoded uint8 ``[H, W, 3]`` image ``files[index]`` (read-only)."""
        arr = self._cache.get(index)
        if arr is None:
            arr = _decode_image(self.files[index])
            if arr.shape[:2] != self.sizes[index]:
                h, w = self.sizes[index]
                raise ValueError(f"image file {self.files[index]} decoded to "
                                 f"{arr.shape[1]}x{arr.shape[0]} pixels, its header says {w}x{h}")
            if self.cache:
                self._cache[index] = arr
        return arr

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n
        if self.train:
            arr = _random_crop(self.image(index // self.crops_per_image), self.crop,
                               self._rng.get())
        else:
            arr = _centre_crop(self.image(index), self.crop)
        return _to_tensor(arr)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, images={len(self.files)}, "
                f"crop={self.crop}, train={self.train}, crops_per_image={self.crops_per_image})")


# --------------------------------------------------------------------------- CIFAR-10
CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_RE = re.compile(r"^data_batch_(\d+)$")


def _find_cifar_folder(root: Path) -> Path:
    sub = root / CIFAR10_FOLDER
    if sub.is_dir():
        return sub
    if root.is_dir() and ((root / "test_batch").is_file()
                          or any(_CIFAR_TRAIN_RE.match(p.name) for p in root.iterdir())):
        return root
    raise FileNotFoundError(
        f"no CIFAR-10 python batches at {root}: expected {root} or {sub} to hold data_batch_1 .. "
        "data_batch_5 and test_batch (the folder that cifar-10-python.tar.gz unpacks to)")


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 3, 32, 32], labels int64 [N])`` of one pickled CIFAR-10 batch."""
    try:
        with path.open("rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # unpickling can fail in many ways
        raise ValueError(f"cannot read CIFAR-10 batch {path}: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"CIFAR-10 batch {path} is not a dict (got {type(d).__name__})")
    data = d.get(b"data", d.get("data"))
    if data is None:
        raise ValueError(f"CIFAR-10 batch {path} has no b'data' entry (keys: {list(d)})")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"CIFAR-10 batch {path}: b'data' must be uint8 [N, 3072], got "
                         f"{data.dtype} {list(data.shape)}")
    labels = np.asarray(d.get(b"labels", d.get("labels", [-1] * len(data))), dtype=np.int64)
    if labels.shape != (len(data),):
        raise ValueError(f"CIFAR-10 batch {path}: {len(labels)} labels for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


class Cifar10Dataset(Dataset):
    """CIFAR-10 images (32×32) from the python-pickle release, without labels.

    Args:
        root: the ``cifar-10-batches-py`` folder or its parent.
        train: True: every ``data_batch_N`` (normally 1..5, 50 000 images; a warning is given
            if the set is not exactly 1..5); False: ``test_batch`` (10 000 images).

    Each batch file is a pickled dict whose ``b"data"`` is uint8 ``[N, 3072]``: per image the
    1024 red, then 1024 green, then 1024 blue values, each plane in row-major order. The images
    stay in memory as uint8 (``.data``, ``[N, 3, 32, 32]``); labels are kept in ``.labels``
    but not returned. Only load pickle files you trust: unpickling can run code.
    """

    variable_size = False

    def __init__(self, root: PathLike, train: bool = True) -> None:
        super().__init__()
        self.root = _find_cifar_folder(Path(root).expanduser())
        self.train = bool(train)
        if self.train:
            found = sorted((int(m.group(1)), p) for p in self.root.iterdir()
                           if (m := _CIFAR_TRAIN_RE.match(p.name)) and p.is_file())
            if not found:
                raise FileNotFoundError(f"no CIFAR-10 training batches (data_batch_1 .. "
                                        f"data_batch_5) in {self.root}")
            if [i for i, _ in found] != [1, 2, 3, 4, 5]:
                warnings.warn(f"CIFAR-10 folder {self.root} has training batches "
                              f"{[i for i, _ in found]}, not 1..5", stacklevel=2)
            self.files = [p for _, p in found]
        else:
            test = self.root / "test_batch"
            if not test.is_file():
                raise FileNotFoundError(f"no CIFAR-10 test batch {test}")
            self.files = [test]
        batches = [_load_cifar_batch(p) for p in self.files]
        self.data = np.concatenate([b[0] for b in batches])
        self.data.setflags(write=False)
        self.labels = np.concatenate([b[1] for b in batches])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.data[index].astype(np.float32)).div_(255.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, train={self.train}, n={len(self)})"


# --------------------------------------------------------------------------- built-in photos
#: The natural RGB photos that ship inside installed wheels: name → (package, path inside it).
#: Synthetic or non-RGB images (skimage's colorwheel, logo, grayscale images) are left out, and
#: only files in the wheels are used, so nothing needs pooch or the network.
BUILTIN_PHOTO_FILES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),                  # 512x512 portrait
    "coffee": ("skimage", "data/coffee.png"),                        # 600x400 cup of coffee
    "chelsea": ("skimage", "data/chelsea.png"),                      # 451x300 cat
    "rocket": ("skimage", "data/rocket.jpg"),                        # 640x427 launch pad
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),      # 741x500 (stereo pair,
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),    # both kept in training)
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),  # 1000x872 galaxies
    "retina": ("skimage", "data/retina.jpg"),                        # 1411x1411 fundus photo
    "ihc": ("skimage", "data/ihc.png"),                              # 512x512 stained tissue
    "china": ("sklearn", "datasets/images/china.jpg"),               # 640x427 temple
    "flower": ("sklearn", "datasets/images/flower.jpg"),             # 640x427 flower
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),  # 512x600 portrait
}

#: Held-out photos: validation and test crops come from these only (never trained on).
BUILTIN_EVAL_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "flower")
#: Photos the training crops come from.
BUILTIN_TRAIN_PHOTOS: tuple[str, ...] = tuple(
    n for n in BUILTIN_PHOTO_FILES if n not in BUILTIN_EVAL_PHOTOS)

#: Training crops per epoch of :class:`BuiltinPhotosDataset` when ``num_crops`` is None.
BUILTIN_TRAIN_CROPS = 1024


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_photo_paths() -> dict[str, Path]:
    """The built-in photos found in this environment: name → file (missing ones left out)."""
    out: dict[str, Path] = {}
    for name, (package, rel) in BUILTIN_PHOTO_FILES.items():
        d = _package_dir(package)
        if d is not None and (d / rel).is_file():
            out[name] = d / rel
    return out


@functools.cache
def load_builtin_photo(name: str) -> np.ndarray:
    """A built-in photo as a read-only uint8 ``[H, W, 3]`` array (decoded once per process)."""
    if name not in BUILTIN_PHOTO_FILES:
        raise ValueError(f"unknown built-in photo {name!r}; known: {sorted(BUILTIN_PHOTO_FILES)}")
    path = builtin_photo_paths().get(name)
    if path is None:
        package, rel = BUILTIN_PHOTO_FILES[name]
        raise FileNotFoundError(f"built-in photo {name!r} ({package}: {rel}) is not installed")
    return _decode_image(path)


class BuiltinPhotosDataset(Dataset):
    """Crops of the natural photos shipped in scikit-image, scikit-learn and matplotlib.

    The split is by photo, so no evaluation pixel is ever trained on:

    * training (``train=True``): chelsea, rocket, motorcycle_left, motorcycle_right,
      hubble_deep_field, retina, ihc (scikit-image), china (scikit-learn), grace_hopper
      (matplotlib). Item ``i`` is a random ``crop``×``crop`` crop of photo
      ``i mod (number of photos)`` (so each photo gets the same share), flipped horizontally
      with probability 1/2; ``len = num_crops`` (default :data:`BUILTIN_TRAIN_CROPS`), new
      crops every epoch.
    * evaluation (``train=False``): astronaut, coffee (scikit-image), flower (scikit-learn).
      A fixed grid of non-overlapping crops, centred in each photo (``⌊H/crop⌋ × ⌊W/crop⌋``
      per photo, row by row); ``num_crops`` keeps that many evenly spaced grid crops.
      ``crop=None`` yields the three whole photos (different sizes: batch size 1).

    Args:
        crop: side of the square crops.
        train: which photos and which cropping (above).
        num_crops: crops per epoch (training) or at most this many grid crops (evaluation).
        seed: seed of the training crop positions and flips.
        photos: override the photo list (names from :data:`BUILTIN_PHOTO_FILES`).

    Photos smaller than ``crop`` are skipped; photos whose package is missing too.
    """

    def __init__(self, crop: int | None = 64, train: bool = True, num_crops: int | None = None,
                 seed: int = 0, photos: Sequence[str] | None = None) -> None:
        super().__init__()
        self.crop = _check_crop(crop)
        self.train = bool(train)
        if self.train and self.crop is None:
            raise ValueError("BuiltinPhotosDataset needs a crop size for training")
        if num_crops is not None and (isinstance(num_crops, bool) or int(num_crops) < 1):
            raise ValueError(f"num_crops must be >= 1 or None, got {num_crops!r}")
        wanted = tuple(photos) if photos is not None else (
            BUILTIN_TRAIN_PHOTOS if self.train else BUILTIN_EVAL_PHOTOS)
        unknown = [p for p in wanted if p not in BUILTIN_PHOTO_FILES]
        if unknown:
            raise ValueError(f"unknown built-in photos {unknown}; known: "
                             f"{sorted(BUILTIN_PHOTO_FILES)}")
        found = builtin_photo_paths()
        sizes = {n: _image_size(found[n]) for n in wanted if n in found}
        if not sizes:
            raise FileNotFoundError(f"none of the built-in photos {list(wanted)} is installed "
                                    "(they come with scikit-image, scikit-learn, matplotlib)")
        c = self.crop
        #: The photos used, in order.
        self.photos: tuple[str, ...] = tuple(
            n for n, (h, w) in sizes.items() if c is None or (h >= c and w >= c))
        if not self.photos:
            raise ValueError(f"crop {c} is larger than every built-in photo "
                             f"{ {n: f'{w}x{h}' for n, (h, w) in sizes.items()} }")
        self.sizes = {n: sizes[n] for n in self.photos}
        self._rng = _CropRNG(seed)
        if self.train:
            self.num_crops = int(num_crops) if num_crops is not None else BUILTIN_TRAIN_CROPS
            self.grid: list[tuple[str, int, int]] = []
        else:
            grid = []
            for n in self.photos:
                h, w = self.sizes[n]
                if c is None:
                    grid.append((n, 0, 0))
                    continue
                rows, cols = h // c, w // c
                top0, left0 = (h - rows * c) // 2, (w - cols * c) // 2
                grid += [(n, top0 + r * c, left0 + k * c) for r in range(rows)
                         for k in range(cols)]
            if num_crops is not None and num_crops < len(grid):
                keep = np.unique(np.round(np.linspace(0, len(grid) - 1, int(num_crops))))
                grid = [grid[int(i)] for i in keep]
            self.grid = grid
            self.num_crops = len(grid)

    @property
    def variable_size(self) -> bool:
        return self.crop is None and len(set(self.sizes.values())) > 1

    def __len__(self) -> int:
        return self.num_crops

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n
        if self.train:
            arr = load_builtin_photo(self.photos[index % len(self.photos)])
            return _to_tensor(_random_crop(arr, self.crop, self._rng.get()))
        name, top, left = self.grid[index]
        arr = load_builtin_photo(name)
        if self.crop is not None:
            arr = arr[top:top + self.crop, left:left + self.crop]
        return _to_tensor(arr)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(crop={self.crop}, train={self.train}, "
                f"photos={list(self.photos)}, n={len(self)})")


# --------------------------------------------------------------------------- data module
#: Training crops per epoch of the built-in source = ``crops_per_image`` × this.
BUILTIN_CROPS_PER_IMAGE_SCALE = 128


class ImageDataModule(pl.LightningDataModule):
    """Lightning data module for JSCC: batches are ``[B, 3, H, W]`` float tensors in [0, 1].

    Args:
        source: ``"builtin"`` (offline photos, :class:`BuiltinPhotosDataset`), ``"folder"``
            (:class:`ImageFolderDataset`) or ``"cifar10"`` (:class:`Cifar10Dataset`).
        train_dir: training image folder (``source="folder"``, required).
        val_dir: validation folder; default ``train_dir`` (centre crops of the training images).
        test_dir: test folder; default ``val_dir``, else ``train_dir``.
        cifar_root: ``cifar-10-batches-py`` or its parent (``source="cifar10"``, required).
        crop: training crop side; for ``"folder"`` None means whole images (batch size 1 unless
            all images have one size). Ignored for CIFAR-10 (32×32 images).
        batch_size: training batch size, also for evaluation unless the evaluation images have
            different sizes (whole images), in which case evaluation batches hold one image.
        num_workers: DataLoader worker processes (0 = load in the main process, the CPU default).
        crops_per_image: random training crops per image and epoch (``"folder"``); for
            ``"builtin"`` an epoch has ``crops_per_image × 128`` crops spread evenly over the
            nine training photos.
        val_crop: validation/test crop side: None = same as ``crop``, 0 = whole images. Folder
            sources take one centre crop per image, the built-in source a grid of crops of the
            held-out photos; CIFAR-10 ignores it.
        seed: seed of the training crops, flips and shuffling.
        builtin_train: also train on the built-in training photos (``source="folder"``).
        val_source: None: validate as the source says (above); ``"builtin"``: validate on the
            held-out built-in photos (grid crops of ``val_crop``), e.g. to keep a test folder
            for testing only.
        val_max_images: validate on at most this many evenly spaced validation images (a small
            fixed subset keeps validation cheap); None: all.
        batches_per_epoch: training batches per epoch; default
            ``ceil(images × crops_per_image / batch_size)`` (folder) or
            ``ceil(crops_per_image × 128 / batch_size)`` (built-in).

    Training batches of the built-in and folder sources come from a
    :class:`jscc.batches.CropBatchLoader`: every image is decoded once and kept as uint8,
    crops and flips are tensor slices, and batch ``i`` of epoch ``e`` depends only on
    ``(seed, e, i)``, so a resumed run continues the uninterrupted run's batches, and with
    several processes (DDP) every rank takes its slice of the same global batch. Whole-image
    training (``crop=None``) and CIFAR-10 use a ``DataLoader``.

    CIFAR-10 validates and tests on ``test_batch`` (the usual deep-JSCC protocol).
    """

    def __init__(self, source: Literal["builtin", "folder", "cifar10"] = "builtin",
                 train_dir: str | None = None, val_dir: str | None = None,
                 test_dir: str | None = None, cifar_root: str | None = None,
                 crop: int | None = 64, batch_size: int = 16, num_workers: int = 0,
                 crops_per_image: int = 4, val_crop: int | None = None, seed: int = 0,
                 builtin_train: bool = False, val_source: Literal["builtin"] | None = None,
                 val_max_images: int | None = None,
                 batches_per_epoch: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        if source not in ("builtin", "folder", "cifar10"):
            raise ValueError(f"source must be 'builtin', 'folder' or 'cifar10', got {source!r}")
        if source == "folder" and train_dir is None:
            raise ValueError("source='folder' needs train_dir (a folder of PNG/JPEG images)")
        if source == "cifar10" and cifar_root is None:
            raise ValueError("source='cifar10' needs cifar_root (cifar-10-batches-py or its "
                             "parent)")
        _check_crop(crop)
        if source == "builtin" and crop is None:
            raise ValueError("source='builtin' needs a crop size")
        if val_crop is not None and (isinstance(val_crop, bool) or not isinstance(val_crop, int)
                                     or val_crop < 0):
            raise ValueError(f"val_crop must be None (same as crop), 0 (whole images) or a "
                             f"positive int, got {val_crop!r}")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
        if isinstance(crops_per_image, bool) or int(crops_per_image) < 1:
            raise ValueError(f"crops_per_image must be >= 1, got {crops_per_image!r}")
        if builtin_train and source != "folder":
            raise ValueError("builtin_train adds the built-in photos to a folder source; "
                             f"source is {source!r}")
        if val_source not in (None, "builtin"):
            raise ValueError(f"val_source must be None or 'builtin', got {val_source!r}")
        if val_source == "builtin" and (self._val_crop_of(crop, val_crop) is None):
            raise ValueError("val_source='builtin' needs a validation crop (val_crop > 0)")
        for name, v in (("val_max_images", val_max_images),
                        ("batches_per_epoch", batches_per_epoch)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")
        self.builtin_train = bool(builtin_train)
        self.val_source = val_source
        self.val_max_images = val_max_images
        self.batches_per_epoch = batches_per_epoch
        self.source = source
        self.train_dir, self.val_dir, self.test_dir = train_dir, val_dir, test_dir
        self.cifar_root = cifar_root
        self.crop = crop
        self.val_crop = self._val_crop_of(crop, val_crop)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.crops_per_image = int(crops_per_image)
        self.seed = int(seed)
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self._train_images: list[torch.Tensor] | None = None

    @staticmethod
    def _val_crop_of(crop: int | None, val_crop: int | None) -> int | None:
        return crop if val_crop is None else (None if val_crop == 0 else val_crop)

    # ------------------------------------------------------------------ datasets
    def train_images(self) -> list[torch.Tensor]:
        """The training images as uint8 ``[3, H, W]`` tensors, decoded once per data module
        (folder and built-in sources)."""
        if self._train_images is not None:
            return self._train_images
        images: list[torch.Tensor] = []
        if self.source == "folder":
            ds = ImageFolderDataset(self.train_dir, self.crop, True, cache=False)
            images += [to_uint8_chw(ds.image(i)) for i in range(len(ds.files))]
        if self.source == "builtin" or self.builtin_train:
            ds_b = BuiltinPhotosDataset(self.crop, True)
            images += [to_uint8_chw(load_builtin_photo(n)) for n in ds_b.photos]
        if not images:
            raise ValueError(f"source {self.source!r} has no in-memory training images")
        self._train_images = images
        return images

    def _crop_loader(self) -> CropBatchLoader:
        images = self.train_images()
        n = self.batches_per_epoch
        if n is None:
            crops = (self.crops_per_image * BUILTIN_CROPS_PER_IMAGE_SCALE
                     if self.source == "builtin" else self.crops_per_image * len(images))
            n = -(-crops // self.batch_size)
        trainer = getattr(self, "trainer", None)
        rank = int(trainer.global_rank) if trainer is not None else 0
        world = int(trainer.world_size) if trainer is not None else 1
        return CropBatchLoader(images, self.crop, self.batch_size, n, seed=self.seed,
                               rank=rank, world_size=world)

    def _subset(self, ds: Dataset) -> Dataset:
        m = self.val_max_images
        if m is None or m >= len(ds):
            return ds
        keep = np.unique(np.round(np.linspace(0, len(ds) - 1, m))).astype(int).tolist()
        sub = torch.utils.data.Subset(ds, keep)
        sub.variable_size = getattr(ds, "variable_size", False)  # type: ignore[attr-defined]
        return sub

    def _dataset(self, split: Literal["train", "val", "test"]) -> Dataset:
        if split == "val" and self.val_source == "builtin":
            return self._subset(BuiltinPhotosDataset(self.val_crop, False))
        ds = self._split_dataset(split)
        return self._subset(ds) if split == "val" else ds

    def _split_dataset(self, split: Literal["train", "val", "test"]) -> Dataset:
        train = split == "train"
        if self.source == "builtin":
            if train:
                return BuiltinPhotosDataset(
                    self.crop, True, num_crops=self.crops_per_image
                    * BUILTIN_CROPS_PER_IMAGE_SCALE, seed=self.seed)
            return BuiltinPhotosDataset(self.val_crop, False)
        if self.source == "cifar10":
            return Cifar10Dataset(self.cifar_root, train=train)
        if train:
            ds = ImageFolderDataset(self.train_dir, self.crop, True,
                                    crops_per_image=self.crops_per_image, seed=self.seed)
            if ds.variable_size and self.batch_size > 1:
                raise ValueError(f"crop=None trains on whole images, but the images in "
                                 f"{self.train_dir} differ in size; use batch_size=1 or a crop")
            return ds
        folder = {"val": self.val_dir or self.train_dir,
                  "test": self.test_dir or self.val_dir or self.train_dir}[split]
        return ImageFolderDataset(folder, self.val_crop, False)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (``fit``: train + val, ``validate``: val,
        ``test``/``predict``: test, None: all)."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",)}.get(stage or "", ("train", "val", "test"))
        for split in splits:
            # With the crop loader, train_dataset is a per-item view of the same images (for
            # inspection); the loader decodes its own uint8 copy when it is built.
            if getattr(self, f"{split}_dataset") is None:
                setattr(self, f"{split}_dataset", self._dataset(split))

    # ------------------------------------------------------------------ loaders
    @property
    def uses_crop_loader(self) -> bool:
        """True if training batches come from a :class:`~jscc.batches.CropBatchLoader`."""
        return self.source in ("builtin", "folder") and self.crop is not None

    def _loader(self, split: Literal["train", "val", "test"]) -> DataLoader:
        if split == "train" and self.uses_crop_loader:
            return self._crop_loader()  # type: ignore[return-value]
        ds = getattr(self, f"{split}_dataset")
        if ds is None:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
            ds = getattr(self, f"{split}_dataset")
        train = split == "train"
        batch = 1 if getattr(ds, "variable_size", False) else self.batch_size
        return DataLoader(ds, batch_size=batch, shuffle=train, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed) if train else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
