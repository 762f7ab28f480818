"""Data sets for the course: one data folder, downloads for users, offline use, generated stand-ins.

**Where data lives.** Every data set goes under one folder: ``$COURSE_DATA_DIR`` when that
environment variable is set, otherwise ``~/.cache/dlcourse`` (``data_dir()`` says which). CIFAR-10
lives in ``<data dir>/cifar-10-batches-py/``, the layout of the official Python archive.

**CIFAR-10, real or generated, through the same code.** ``load_cifar10(root)`` reads the pickled
batches with this module's own reader (``read_cifar10_batch``), whatever wrote them: the official
archive, or ``write_fake_cifar10``, which writes a small *learnable* stand-in in exactly the same
on-disk format for tests and machines without the data. torchvision is used for what it is good at,
downloading and checking md5 sums (``download_cifar10``); its ``CIFAR10`` class would reject
generated files, whose md5 sums differ, so it is not used to read. ``is_real_cifar10()`` tells the
real data set (every md5 matches) from anything else, so a check that needs real data can say so.

**Offline.** Once the files are in place nothing touches the network. When they are absent and
cannot be downloaded, ``DatasetNotFoundError`` says which files to put where, with the URL and the
md5 sums. Command line: ``python -m dlcourse.data`` downloads CIFAR-10 into the data folder (or
explains how to place it by hand).

**Augmentation, two paths, one recipe.** The training recipe is: pad 4 zero pixels on each side, crop
a random 32x32 window, flip left-right with probability 1/2, then scale to [0, 1] and normalise with
the CIFAR-10 channel mean and standard deviation. ``train_transform()`` does it per image with
torchvision (the classic ``DataLoader`` path, used on the CPU); ``random_crop_flip`` does it for a
whole batch at once with one indexing operation, on any device (the GPU path: ``TensorBatches`` keeps
the uint8 data set on the GPU and augments batches there). Both pad *before* normalising, with black
pixels, so they compute the same thing.
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
import socket
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

DATA_DIR_ENV = "COURSE_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/dlcourse")

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
#: the files of ``cifar-10-batches-py/`` and their md5 sums (the values torchvision checks)
CIFAR10_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: per-channel mean and standard deviation of the 50,000 training images, pixel values in [0, 1]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

DOWNLOAD_TIMEOUT_S = 30  # a network that silently drops packets must not hang a notebook


class DatasetNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded; the message says what to put where."""


class CIFAR10Data(NamedTuple):
    """CIFAR-10 as tensors: images uint8 ``(N, 3, 32, 32)``, labels int64 ``(N,)`` in 0..9."""
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple


# -- where ------------------------------------------------------------------------------------
def data_dir() -> Path:
    """The course's data folder: ``$COURSE_DATA_DIR``, else ``~/.cache/dlcourse``."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def cifar10_folder(root: str | Path | None = None) -> Path:
    """``<root>/cifar-10-batches-py`` (``root`` defaults to ``data_dir()``)."""
    return Path(root if root is not None else data_dir()).expanduser() / CIFAR10_FOLDER


def cifar10_present(root: str | Path | None = None) -> bool:
    """True when every CIFAR-10 file exists under ``root`` (real or generated: sums not checked)."""
    folder = cifar10_folder(root)
    return all((folder / name).is_file() for name in CIFAR10_FILES)


def is_real_cifar10(root: str | Path | None = None) -> bool:
    """True when ``root`` holds the real CIFAR-10: every file present with its published md5 sum."""
    if not cifar10_present(root):
        return False
    from torchvision.datasets.utils import check_integrity

    folder = cifar10_folder(root)
    return all(check_integrity(str(folder / name), md5) for name, md5 in CIFAR10_FILES.items())


def missing_cifar10_message(root: str | Path | None = None, reason: str = "") -> str:
    """What to do when CIFAR-10 is absent: which files, where, from which URL, with which md5 sums."""
    root = Path(root if root is not None else data_dir()).expanduser().resolve()
    folder = cifar10_folder(root)
    missing = [name for name in CIFAR10_FILES if not (folder / name).is_file()]
    files = "\n".join(f"    {folder / name}   md5 {md5}" for name, md5 in CIFAR10_FILES.items())
    why = f" ({reason})" if reason else ""
    return (
        f"CIFAR-10 was not found in {folder} and could not be downloaded{why}.\n"
        f"Missing: {', '.join(missing) or 'none'}.\n"
        f"To install it by hand, on a machine with internet download\n"
        f"    {CIFAR10_URL}\n"
        f"(163 MB, md5 {CIFAR10_ARCHIVE_MD5}) and either copy the archive to {root / CIFAR10_ARCHIVE}\n"
        f"(it is checked and unpacked on the next run) or unpack it in {root}, so that these files exist:\n"
        f"{files}\n"
        f"To use another folder, set the environment variable {DATA_DIR_ENV} to the folder that holds "
        f"{CIFAR10_FOLDER}/ (now {root})."
    )


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download_cifar10(root: str | Path | None = None) -> Path:
    """Download CIFAR-10 into ``root`` with torchvision (md5-checked) and return the batches folder.

    An archive already in ``root`` with the right md5 is unpacked instead of downloaded. Raises
    ``DatasetNotFoundError`` with instructions when the network or the archive fails.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root if root is not None else data_dir()).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            CIFAR10(str(root), train=True, download=True)   # downloads, checks md5 sums, unpacks
    except (OSError, RuntimeError) as err:                  # URLError is an OSError; md5 mismatch a RuntimeError
        raise DatasetNotFoundError(missing_cifar10_message(root, f"{type(err).__name__}: {err}")) from None
    return cifar10_folder(root)


def ensure_cifar10(root: str | Path | None = None, download: bool = True) -> Path:
    """The CIFAR-10 batches folder under ``root``: as it is when the files exist (nothing is downloaded,
    generated files are accepted), else downloaded when ``download``, else ``DatasetNotFoundError``."""
    if cifar10_present(root):
        return cifar10_folder(root)
    if download:
        return download_cifar10(root)
    raise DatasetNotFoundError(missing_cifar10_message(root, "download=False"))


# -- reading (one reader for real and generated files) -----------------------------------------
def _str_keys(d: dict) -> dict:
    """Keys as ``str``: the official batches, pickled by Python 2, load with ``bytes`` keys."""
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_cifar10_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch file -> images uint8 ``(N, 3, 32, 32)``, labels int64 ``(N,)``.

    The format (https://www.cs.toronto.edu/~kriz/cifar.html): a dict with ``b'data'``, a uint8 array
    ``(N, 3072)`` whose rows hold the red, then green, then blue 32x32 plane of an image, row by row,
    and ``b'labels'``, N ints in 0..9 (plus ``b'batch_label'`` and ``b'filenames'``).
    """
    path = Path(path)
    with open(path, "rb") as f:
        entry = _str_keys(pickle.load(f, encoding="bytes"))
    if "data" not in entry or "labels" not in entry:
        raise ValueError(f"{path} is not a CIFAR-10 batch: keys {sorted(entry)}, expected 'data' and 'labels'")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry["labels"], dtype=np.int64).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if len(labels) != len(data) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{path}: {len(labels)} labels for {len(data)} images, or labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10_classes(folder: str | Path) -> tuple:
    """The class names stored in ``batches.meta``."""
    with open(Path(folder) / "batches.meta", "rb") as f:
        meta = _str_keys(pickle.load(f, encoding="bytes"))
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"])


def load_cifar10(root: str | Path | None = None, download: bool = True) -> CIFAR10Data:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` as uint8 tensors (50,000 train / 10,000 test when real).

    ``root`` defaults to ``data_dir()``; missing files are downloaded when ``download`` (see
    ``ensure_cifar10``). The same reader serves the real files and ``write_fake_cifar10``'s.
    """
    folder = ensure_cifar10(root, download=download)
    train = [read_cifar10_batch(folder / name) for name in CIFAR10_TRAIN_BATCHES]
    X_test, y_test = read_cifar10_batch(folder / "test_batch")
    X_train = np.concatenate([X for X, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return CIFAR10Data(torch.from_numpy(X_train), torch.from_numpy(y_train),
                       torch.from_numpy(X_test), torch.from_numpy(y_test), read_cifar10_classes(folder))


# -- generated stand-in ----------------------------------------------------------------------------
# Each class has a colour and a stripe orientation; every image adds a random stripe phase and
# frequency, a brightness shift and pixel noise. A small CNN learns it within a few dozen steps, and
# it survives the augmentation (crops and flips keep the colour, flips mirror the stripes).
_PALETTE = np.array([[200, 60, 60], [60, 170, 60], [60, 80, 200], [200, 190, 60], [170, 60, 190],
                     [60, 190, 190], [230, 130, 40], [120, 120, 120], [150, 90, 40], [240, 240, 240]], dtype=np.float32)


def fake_cifar10_arrays(num_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``num_images`` learnable CIFAR-shaped images: uint8 ``(N, 3, 32, 32)``, balanced labels ``(N,)``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % 10).astype(np.int64)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)                          # (32, 32) each
    angle = labels * (np.pi / 10)                                             # (N,) stripe orientation
    freq = rng.uniform(0.35, 0.6, size=num_images)                            # (N,) radians per pixel
    phase = rng.uniform(0, 2 * np.pi, size=num_images)
    proj = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy   # (N, 32, 32)
    stripes = np.sin(freq[:, None, None] * proj + phase[:, None, None])       # (N, 32, 32) in [-1, 1]
    colour = _PALETTE[labels] - 128.0                                         # (N, 3)
    brightness = rng.normal(0, 20, size=(num_images, 1, 1, 1))
    images = (128.0 + 0.6 * colour[:, :, None, None] + 45.0 * stripes[:, None] + brightness
              + rng.normal(0, 40, size=(num_images, 3, 32, 32)))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels


def _write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_fake_cifar10(root: str | Path, num_train: int = 1000, num_test: int = 200, seed: int = 0) -> Path:
    """Write a small generated CIFAR-10 in the official on-disk format and return ``root``.

    Creates ``<root>/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` (the
    ``num_train`` images split as evenly as possible), ``test_batch`` (``num_test`` images) and
    ``batches.meta``: pickled dicts with ``b'data'`` (uint8 ``(N, 3072)``), ``b'labels'``,
    ``b'batch_label'`` and ``b'filenames'``, like the real files. Pass ``root`` to ``load_cifar10``.
    Its md5 sums differ from the real ones, so ``is_real_cifar10(root)`` is False.
    """
    folder = cifar10_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    X_train, y_train = fake_cifar10_arrays(num_train, seed)
    X_test, y_test = fake_cifar10_arrays(num_test, seed + 1)
    parts = np.array_split(np.arange(num_train), len(CIFAR10_TRAIN_BATCHES))
    batches = [(name, f"training batch {i + 1} of 5", X_train[idx], y_train[idx])
               for i, (name, idx) in enumerate(zip(CIFAR10_TRAIN_BATCHES, parts))]
    batches.append(("test_batch", "testing batch 1 of 1", X_test, y_test))
    for name, batch_label, X, y in batches:
        _write_pickle(folder / name, {
            b"batch_label": batch_label.encode(),
            b"labels": [int(v) for v in y],
            b"data": np.ascontiguousarray(X.reshape(len(X), 3 * 32 * 32)),
            b"filenames": [f"fake_{CIFAR10_CLASSES[int(v)]}_{name}_{i}.png".encode() for i, v in enumerate(y)],
        })
    _write_pickle(folder / "batches.meta", {
        b"num_cases_per_batch": max((len(p) for p in parts), default=0),
        b"label_names": [n.encode() for n in CIFAR10_CLASSES],
        b"num_vis": 3 * 32 * 32,
    })
    return Path(root)


# -- transforms ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The CIFAR-10 mean and std as ``(1, 3, 1, 1)`` tensors on ``device``, made once (no copy per batch)."""
    return (torch.tensor(CIFAR10_MEAN, device=device).view(1, 3, 1, 1),
            torch.tensor(CIFAR10_STD, device=device).view(1, 3, 1, 1))


def normalize(X: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(N, 3, H, W)`` (or floats in [0, 255]) -> float32 ``(x / 255 - mean) / std``, same device."""
    mean, std = _mean_std(X.device)
    return (X.float() / 255.0 - mean) / std


def random_crop_flip(X: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched augmentation on any device: zero-pad, crop a random window of the original size, and
    flip left-right with probability 1/2, independently for each image.

    ``X``: ``(N, C, H, W)`` of any dtype (crop uint8 images, then ``normalize``, to match
    ``train_transform``). One gather for the whole batch, so it is fast on a GPU. ``generator`` must
    live on ``X``'s device.
    """
    N, C, H, W = X.shape
    dev = X.device
    padded = torch.nn.functional.pad(X, (padding, padding, padding, padding))    # (N, C, H + 2p, W + 2p)
    top = torch.randint(0, 2 * padding + 1, (N,), device=dev, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (N,), device=dev, generator=generator)
    flip = torch.rand(N, device=dev, generator=generator) < 0.5
    rows = top[:, None] + torch.arange(H, device=dev)                             # (N, H)
    cols = torch.arange(W, device=dev).expand(N, W)                               # (N, W)
    cols = left[:, None] + torch.where(flip[:, None], W - 1 - cols, cols)         # mirrored columns when flipped
    n = torch.arange(N, device=dev)[:, None, None, None]
    c = torch.arange(C, device=dev)[None, :, None, None]
    return padded[n, c, rows[:, None, :, None], cols[:, None, None, :]]            # (N, C, H, W)


def train_transform():
    """Per-image training transform (torchvision): pad 4 + random 32x32 crop, random flip, normalise.

    Takes a uint8 tensor ``(3, 32, 32)``; returns float32 ``(3, 32, 32)``.
    """
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


def test_transform():
    """Per-image test transform (torchvision): only scaling and normalisation, no randomness."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


# -- batches -------------------------------------------------------------------------------------
class CIFAR10Tensors(torch.utils.data.Dataset):
    """Images uint8 ``(N, 3, 32, 32)`` and labels ``(N,)`` as a ``Dataset`` for a ``DataLoader``."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, transform=None):
        self.X, self.y, self.transform = X, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = self.X[i]
        return (self.transform(x) if self.transform is not None else x), self.y[i]


class TensorBatches:
    """Mini-batches of a data set that stays on one device (the GPU path): shuffled and augmented
    with ``random_crop_flip`` when ``train``, then normalised; channels-last on a GPU.

    ``X``: uint8 ``(N, 3, 32, 32)``, ``y``: ``(N,)``; both are copied to ``device`` once. Iterating
    yields float32 ``(B, 3, 32, 32)`` and int64 ``(B,)`` on that device; the last batch may be smaller.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, batch_size: int = 128, train: bool = True,
                 device=None, seed: int = 0):
        self.device = torch.device(device or X.device)
        self.X = X.to(self.device)
        self.y = y.to(self.device)
        self.batch_size, self.train = batch_size, train
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        N = len(self.y)
        order = (torch.randperm(N, device=self.device, generator=self.generator) if self.train
                 else torch.arange(N, device=self.device))
        for start in range(0, N, self.batch_size):
            idx = order[start:start + self.batch_size]
            X = self.X[idx]
            if self.train:
                X = random_crop_flip(X, generator=self.generator)
            X = normalize(X)
            if self.device.type == "cuda":
                X = X.contiguous(memory_format=torch.channels_last)
            yield X, self.y[idx]


def make_loaders(data, batch_size: int = 128, device=None, resident: bool | None = None,
                 test_batch_size: int | None = None, seed: int = 0):
    """(train_loader, test_loader) over ``data`` = ``(X_train, y_train, X_test, y_test, ...)``.

    ``resident`` (default: True on a GPU) keeps the whole data set on ``device`` and augments there
    (``TensorBatches``); otherwise a torchvision ``DataLoader`` transforms one image at a time on the
    CPU (``train_transform`` / ``test_transform``), with pinned memory when the target is a GPU.
    """
    X_train, y_train, X_test, y_test = data[:4]
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    resident = device.type == "cuda" if resident is None else resident
    if resident:
        test_bs = test_batch_size or 1024
        return (TensorBatches(X_train, y_train, batch_size, train=True, device=device, seed=seed),
                TensorBatches(X_test, y_test, test_bs, train=False, device=device, seed=seed))
    from torch.utils.data import DataLoader

    pin = device.type == "cuda"
    g = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(CIFAR10Tensors(X_train, y_train, train_transform()), batch_size=batch_size,
                              shuffle=True, generator=g, pin_memory=pin)
    test_loader = DataLoader(CIFAR10Tensors(X_test, y_test, test_transform()),
                             batch_size=test_batch_size or 256, shuffle=False, pin_memory=pin)
    return train_loader, test_loader


def main(argv: list[str] | None = None) -> int:
    """``python -m dlcourse.data``: download CIFAR-10 into the data folder, or say how to place it."""
    root = data_dir()
    if is_real_cifar10(root):
        print(f"CIFAR-10 is in {cifar10_folder(root)} (md5 sums checked)")
        return 0
    try:
        folder = download_cifar10(root)
    except DatasetNotFoundError as err:
        print(err)
        return 1
    ok = is_real_cifar10(root)
    print(f"CIFAR-10 {'downloaded to' if ok else 'found in'} {folder}" + ("" if ok else " but its md5 sums do not match"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
