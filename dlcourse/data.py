"""Data sets for the course: one data folder, downloads for users, offline use, generated stand-ins.

**Where data lives.** Every data set goes under one folder: ``$COURSE_DATA_DIR`` when that
environment variable is set, otherwise ``~/.cache/dlcourse`` (``data_dir()`` says which). CIFAR-10
lives in ``<data dir>/cifar-10-batches-py/``, the layout of the official Python archive.

**CIFAR-10, real or generated, through the same code.** ``load_cifar10(root, download=False)`` reads
the pickled batches with this module's own reader (``read_cifar10_batch``), whatever wrote them: the
official archive, or ``write_fake_cifar10``, which writes a small *learnable* stand-in in exactly the same
on-disk format for tests and machines without the data. torchvision is used for what it is good at,
downloading and checking md5 sums (``download_cifar10``); its ``CIFAR10`` class would reject
generated files, whose md5 sums differ, so it is not used to read. ``is_real_cifar10()`` tells the
real data set (every md5 matches) from anything else, so a check that needs real data can say so.

**The md5 gate: nothing is downloaded over files that are there.** ``check_cifar10(root)`` says, file
by file, what is on disk: present with the published md5 sum, present with another one (its size,
both sums and the likely cause: a partial download or copy, or a different or generated copy), or
missing; and the archive ``cifar-10-python.tar.gz`` in ``root`` when it is there and the folder is
not the real data set. ``download_cifar10`` (and ``ensure_cifar10`` / ``load_cifar10`` with
``download=True``, the default) returns the folder as it is when every file has its md5 sum, downloads
only when the folder holds *none* of the files, and otherwise **refuses**: files failing their md5
sum raise ``DatasetIntegrityError`` (a ``DatasetNotFoundError``) naming each of them; a folder holding
some of the files but not all raises ``DatasetNotFoundError`` listing the missing ones. Nothing is
ever downloaded or unpacked over an existing file, and no folder is moved aside: delete (or move) the
folder yourself to download it again, or point the data folder elsewhere. A download goes to a
temporary name and is unpacked into a temporary folder, moved into place only once its md5 sum is
checked. Generated files are read with ``download=False``, the reader's path: every file present and
readable is enough, no md5 sum is checked.

**Offline.** Once the files are in place nothing touches the network. When they are absent and
cannot be downloaded, ``DatasetNotFoundError`` says which files are missing and what to put where,
with the URL and the md5 sums. Command line: ``python -m dlcourse.data`` downloads CIFAR-10 into the
data folder (or explains why not); ``python -m dlcourse.data --check`` only checks it, file by file
(exit status 0 when it is the real data set).

**The course's own copy (instructors).** Set ``COURSE_DATA_DIR`` to an absolute path, e.g.
``/srv/dl-course/data`` holding ``cifar-10-batches-py/``, in the environment that runs Jupyter, the
grader (``python -m autograder ...``, nbgrader) and ``make pretrain``: the notebook, grading (whose
sandbox passes that folder on to student processes and keeps it visible there) and any command that reads
through ``data_dir()`` (an ``evaluate`` command too) then use that copy. Check it once with
``COURSE_DATA_DIR=/srv/dl-course/data python -m dlcourse.data --check``. It may be read-only: checking,
loading and the download gate only read a folder that holds CIFAR-10 files.

**Experiment 2's 5-epoch checkpoint.** ``pretrained_checkpoint(path=None, download=True)`` returns the
path of the ResNet20 checkpoint after epochs 0-4 that the instructor made (``make pretrain``) and
published with the student edition, which records its sha256, size and download URL in this package
(``pretrained.json``, ``pretrained_record()``). It uses ``<data dir>/resnet20_epoch5.pth`` when it is
there (or the edition clone's ``checkpoints/`` copy, or ``path``), else downloads it once from the
recorded URL into the data folder (a temporary name, moved into place only once its sha256 is checked,
never over a file that is there), and checks every file against the recorded sha256. On any problem
``PretrainedCheckpointError`` names the file, the expected and found size and sha256, the likely cause,
the URL and the exact path to put the file at; without a record (the course's own source, or an
edition published without a checkpoint) it says none was published and how an instructor publishes
one. ``python -m dlcourse.data --pretrained [PATH]`` does the same from a terminal.

**Augmentation, two paths, one recipe.** The training recipe is: pad 4 zero pixels on each side, crop
a random 32x32 window, flip left-right with probability 1/2, then scale to [0, 1] and normalise with
the CIFAR-10 channel mean and standard deviation. ``train_transform()`` does it per image with
torchvision (the classic ``DataLoader`` path, used on the CPU); ``random_crop_flip`` does it for a
whole batch at once with one indexing operation, on any device (the GPU path: ``TensorBatches`` keeps
the uint8 data set on the GPU and augments batches there). Both pad *before* normalising, with black
pixels, so they compute the same thing.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import pickle
import shutil
import socket
import tarfile
import tempfile
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
#: their sizes in bytes (as published listings of the official folder give them): a shorter file is a partial copy
CIFAR10_SIZES = {
    "data_batch_1": 31035704,
    "data_batch_2": 31035320,
    "data_batch_3": 31035999,
    "data_batch_4": 31035696,
    "data_batch_5": 31035623,
    "test_batch": 31035526,
    "batches.meta": 158,
}
CIFAR10_ARCHIVE_SIZE = 170498071
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: per-channel mean and standard deviation of the 50,000 training images, pixel values in [0, 1]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

DOWNLOAD_TIMEOUT_S = 30  # a network that silently drops packets must not hang a notebook


class DatasetNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded; the message says what to put where."""


class DatasetIntegrityError(DatasetNotFoundError):
    """Files of the data set are on disk but fail their md5 check, so nothing was downloaded over them;
    the message names each file, its size, the expected and actual md5 sums, the likely cause and what to do."""


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


class FileCheck(NamedTuple):
    """One file of CIFAR-10 as found on disk: missing (``size is None``), right (``ok``) or ``wrong`` md5 sum."""
    name: str
    path: Path
    expected_md5: str
    expected_size: int
    size: int | None = None    # None: the file is missing
    md5: str | None = None
    cause: str = ""            # for a wrong md5 sum: the likely cause, from the size and the content

    @property
    def missing(self) -> bool:
        return self.size is None

    @property
    def ok(self) -> bool:
        return self.md5 == self.expected_md5

    @property
    def wrong(self) -> bool:
        return not self.missing and not self.ok

    def describe(self) -> str:
        """One line (two for a wrong md5 sum) saying what this file is."""
        if self.missing:
            return f"{self.name}: missing"
        if self.ok:
            return f"{self.name}: ok ({self.size:,} bytes, md5 {self.md5})"
        return (f"{self.name}: {self.size:,} bytes (the official file has {self.expected_size:,}), "
                f"md5 {self.md5}, expected {self.expected_md5}\n        {self.cause}")


class CIFAR10Status(NamedTuple):
    """What ``check_cifar10`` found: each of the seven files, and the archive when it matters."""
    root: Path
    folder: Path
    files: tuple            # FileCheck of each name of CIFAR10_FILES, in that order
    archive: FileCheck | None = None   # <root>/cifar-10-python.tar.gz, when it is there and the folder is not ok

    @property
    def ok(self) -> bool:
        """Every file present with its published md5 sum: the real CIFAR-10."""
        return all(f.ok for f in self.files)

    @property
    def present(self) -> tuple:
        return tuple(f.name for f in self.files if not f.missing)

    @property
    def missing(self) -> tuple:
        return tuple(f.name for f in self.files if f.missing)

    @property
    def wrong(self) -> tuple:
        """The FileChecks that fail their md5 sum: files of the folder, then the archive."""
        return tuple(f for f in self.files + ((self.archive,) if self.archive else ()) if f.wrong)

    def summary(self) -> str:
        """One line: where the real CIFAR-10 is, or why it is not there."""
        if self.ok:
            return f"the real CIFAR-10 is in {self.folder} (md5 sums checked)"
        wrong = [f.name for f in self.wrong]
        if wrong:
            return (f"{len(wrong)} file{'s' if len(wrong) > 1 else ''} in {self.root} fail"
                    f"{'s' if len(wrong) == 1 else ''} the md5 check: {', '.join(wrong)}")
        if self.present:
            return f"{self.folder} is incomplete: {', '.join(self.missing)} missing"
        return f"the real CIFAR-10 is not in {self.folder}"

    def report(self) -> str:
        """A headline (``summary``), then every file, one line each (two for a wrong md5 sum)."""
        lines = [f"CIFAR-10 check: {self.summary()}"]
        lines += [f"    {f.describe()}" for f in self.files + ((self.archive,) if self.archive else ())]
        return "\n".join(lines)


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _why_different(name: str, path: Path, size: int, expected_size: int) -> str:
    """The likely cause of a wrong md5 sum, from the size and from what the file reads as."""
    if size == 0:
        return "the file is empty: an interrupted download or copy"
    if name == CIFAR10_ARCHIVE:
        if size < expected_size:
            return "shorter than the official archive: likely a partial download or an interrupted copy"
        if size == expected_size:
            return "the size of the official archive but other bytes: a damaged copy"
        return "not the official archive: a different file under its name"
    try:
        entry = _load_pickle(path)
        if name == "batches.meta":
            what = f"it reads as a batches.meta with {len(_class_names(entry))} class names"
        else:
            what = f"it reads as a CIFAR-10 batch of {len(_batch_arrays(path, entry)[1]):,} images"
    except Exception as err:   # a truncated pickle, garbage, the wrong keys: the reason is the diagnosis
        err = err.__cause__ or err
        if size < expected_size:
            return (f"shorter than the official file and unreadable ({type(err).__name__}): likely a partial "
                    "download or an interrupted copy")
        return f"unreadable as CIFAR-10 ({type(err).__name__}: {err}): a damaged file, or not a CIFAR-10 file"
    names = entry.get("filenames") or [b""]
    if isinstance(names[0], bytes) and names[0].startswith(b"fake_"):
        return f"{what}, written by write_fake_cifar10: a generated stand-in, not the real CIFAR-10"
    if size == expected_size:
        return f"{what}, of the official size but with other bytes: a damaged or edited copy"
    return f"{what}, but it is not the official file: a different copy (another version, re-pickled, or generated)"


def _check_file(name: str, path: Path, expected_md5: str, expected_size: int) -> FileCheck:
    if not path.is_file():
        return FileCheck(name, path, expected_md5, expected_size)
    size, md5 = path.stat().st_size, _md5(path)
    cause = "" if md5 == expected_md5 else _why_different(name, path, size, expected_size)
    return FileCheck(name, path, expected_md5, expected_size, size, md5, cause)


def check_cifar10(root: str | Path | None = None) -> CIFAR10Status:
    """Each CIFAR-10 file under ``root`` (default ``data_dir()``): missing, present with its published
    md5 sum, or present with another one (then its size, both sums and the likely cause). The archive
    ``<root>/cifar-10-python.tar.gz`` is checked too when it is there and the folder is not the real
    data set (a download would use it). Reads the files, writes nothing."""
    root = Path(root if root is not None else data_dir()).expanduser()
    folder = cifar10_folder(root)
    files = tuple(_check_file(name, folder / name, md5, CIFAR10_SIZES.get(name, 0))
                  for name, md5 in CIFAR10_FILES.items())
    archive = None
    if not all(f.ok for f in files) and (root / CIFAR10_ARCHIVE).is_file():
        archive = _check_file(CIFAR10_ARCHIVE, root / CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_MD5, CIFAR10_ARCHIVE_SIZE)
    return CIFAR10Status(root, folder, files, archive)


def is_real_cifar10(root: str | Path | None = None) -> bool:
    """True when ``root`` holds the real CIFAR-10: every file present with its published md5 sum."""
    return cifar10_present(root) and check_cifar10(root).ok


def _problem_message(status: CIFAR10Status, reason: str = "", untouched: bool = True) -> str:
    """What is wrong with ``status`` (missing files, files failing their md5 sum) and what to do;
    ``untouched``: nothing was written, so the message may say so."""
    root, folder = status.root.resolve(), status.folder.resolve()
    why = f" ({reason})" if reason else ""
    wrong, missing = status.wrong, status.missing
    if wrong:
        count = f"{len(wrong)} file{'s' if len(wrong) > 1 else ''}"
        lines = [f"CIFAR-10 in {root} is not the official data set: {count} fail{'s' if len(wrong) == 1 else ''} "
                 f"the md5 check{why}:"]
        lines += [f"    {f.describe()}" for f in wrong]
    elif status.present:
        lines = [f"CIFAR-10 in {folder} is incomplete{why}."]
    else:
        lines = [f"CIFAR-10 was not found in {folder}{why}."]
    if missing:
        lines.append(f"Missing: {', '.join(missing)} ({len(missing)} of {len(status.files)} files).")
    if wrong or status.present:
        bad = [str(f.path.resolve()) for f in wrong if f.name == CIFAR10_ARCHIVE]
        lines.append((f"Nothing was downloaded and nothing in {root} was changed: " if untouched else "")
                     + f"a download never replaces files that\nare there. "
                     f"To download the official files, delete (or move away) {folder}"
                     + (f"\nand {bad[0]}" if bad else "") + " and run again"
                     + ("; to complete it by hand, add\nthe missing files listed below" if missing and not wrong else "")
                     + ".\nGenerated data (write_fake_cifar10) belongs in a folder of its own, read with "
                       "load_cifar10(that_folder, download=False).")
    if missing or not wrong:
        files = "\n".join(f"    {folder / name}   md5 {md5}" for name, md5 in CIFAR10_FILES.items())
        lines.append(
            f"To install it by hand, on a machine with internet download\n"
            f"    {CIFAR10_URL}\n"
            f"(163 MB, md5 {CIFAR10_ARCHIVE_MD5}) and either copy the archive to {root / CIFAR10_ARCHIVE}\n"
            f"(it is checked and unpacked on the next run, when {folder} holds none of the files) or unpack it in "
            f"{root}, so that these files exist:\n{files}")
    lines.append(f"To use another folder (the course's own copy, say), set the environment variable {DATA_DIR_ENV} "
                 f"to the absolute path of the folder that holds {CIFAR10_FOLDER}/ (now {root}).")
    return "\n".join(lines)


def missing_cifar10_message(root: str | Path | None = None, reason: str = "") -> str:
    """Why CIFAR-10 is not usable under ``root`` and what to do: the missing files, the files failing their
    md5 sum (size, both sums, likely cause), where to put what, from which URL, with which md5 sums."""
    return _problem_message(check_cifar10(root), reason)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _fetch_archive(root: Path) -> Path:
    """Download the archive to ``<root>/cifar-10-python.tar.gz.download`` (torchvision: progress bar, md5 check),
    then rename it to its name; a failed download is deleted. Raises OSError or RuntimeError."""
    from torchvision.datasets.utils import download_url

    archive, part = root / CIFAR10_ARCHIVE, root / (CIFAR10_ARCHIVE + ".download")
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            download_url(CIFAR10_URL, str(root), filename=part.name, md5=CIFAR10_ARCHIVE_MD5)
        os.replace(part, archive)
    except RuntimeError:                     # torchvision: "File not found or corrupted." after the download
        if part.is_file():
            size, md5 = part.stat().st_size, _md5(part)
            raise RuntimeError(f"the archive downloaded from {CIFAR10_URL} has md5 {md5}, expected "
                               f"{CIFAR10_ARCHIVE_MD5} ({size:,} bytes, the official one has "
                               f"{CIFAR10_ARCHIVE_SIZE:,}); it was deleted") from None
        raise
    finally:
        part.unlink(missing_ok=True)
    return archive


def _unpack(archive: Path, folder: Path) -> None:
    """Unpack ``archive`` into a temporary folder beside ``folder``, then move each file that ``folder`` lacks into it."""
    tmp = Path(tempfile.mkdtemp(prefix=".cifar10-unpack-", dir=folder.parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.split("/")[0] == CIFAR10_FOLDER]
            tar.extractall(tmp, members=members, filter="data")
        unpacked = tmp / CIFAR10_FOLDER
        if not unpacked.is_dir():
            raise RuntimeError(f"{archive} holds no {CIFAR10_FOLDER}/ folder")
        folder.mkdir(exist_ok=True)
        for item in sorted(unpacked.iterdir()):
            if not (folder / item.name).exists():          # never over a file that is there
                os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_cifar10(root: str | Path | None = None) -> Path:
    """Make ``<root>/cifar-10-batches-py`` the real CIFAR-10 and return it, downloading only into a folder
    that holds none of its files (torchvision downloads and checks the md5 sum of the archive).

    * every file there with its md5 sum: returned as it is, no network;
    * a file there (or the archive in ``root``) failing its md5 sum: ``DatasetIntegrityError`` naming each
      such file with its size, both md5 sums and the likely cause; nothing is downloaded or changed;
    * some files there, others missing: ``DatasetNotFoundError`` listing the missing ones, nothing downloaded;
    * none there: the archive in ``root`` is unpacked when its md5 sum is right, else downloaded first.
      Offline (or any failure) ``DatasetNotFoundError`` lists the missing files and how to place them by hand.
    """
    status = check_cifar10(root)
    if status.ok:
        return status.folder
    if status.wrong:
        raise DatasetIntegrityError(_problem_message(status))
    if status.present:
        raise DatasetNotFoundError(_problem_message(status, "not downloaded: the folder holds some of the files"))
    root = status.root
    try:
        root.mkdir(parents=True, exist_ok=True)
        archive = root / CIFAR10_ARCHIVE if status.archive is not None and status.archive.ok else _fetch_archive(root)
        _unpack(archive, status.folder)
    except (OSError, RuntimeError, tarfile.TarError, EOFError) as err:   # URLError is an OSError
        raise DatasetNotFoundError(_problem_message(check_cifar10(root), f"download failed: {type(err).__name__}: "
                                                                         f"{err}", untouched=False)) from None
    after = check_cifar10(root)
    if not after.ok:
        raise DatasetIntegrityError(_problem_message(after, "after unpacking the archive", untouched=False))
    return after.folder


def ensure_cifar10(root: str | Path | None = None, download: bool = True) -> Path:
    """The CIFAR-10 batches folder under ``root``.

    ``download=True``: the md5 gate of ``download_cifar10``: the real CIFAR-10 as it is, downloaded into a
    folder holding none of its files, else an error saying which files fail or are missing (nothing is
    downloaded over files that are there). ``download=False``: the folder as it is when every file exists
    (generated files accepted, no md5 sum checked), else ``DatasetNotFoundError`` listing the missing files.
    """
    if download:
        return download_cifar10(root)
    if cifar10_present(root):
        return cifar10_folder(root)
    raise DatasetNotFoundError(missing_cifar10_message(root, "download=False: nothing is downloaded"))


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
    return _batch_arrays(path, _load_pickle(path))


def _load_pickle(path: Path) -> dict:
    """A pickled CIFAR-10 file as a dict with str keys; a file that does not unpickle is named in a ValueError."""
    with open(path, "rb") as f:
        try:
            entry = pickle.load(f, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
            raise ValueError(f"{path} cannot be read as a pickled CIFAR-10 file ({type(err).__name__}: {err}); "
                             f"`python -m dlcourse.data --check` says what is wrong with each file") from err
    if not isinstance(entry, dict):
        raise ValueError(f"{path} holds a pickled {type(entry).__name__}, not a CIFAR-10 dict")
    return _str_keys(entry)


def _batch_arrays(path: Path, entry: dict) -> tuple[np.ndarray, np.ndarray]:
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
    return _class_names(_load_pickle(Path(folder) / "batches.meta"))


def _class_names(meta: dict) -> tuple:
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"])


def load_cifar10(root: str | Path | None = None, download: bool = True) -> CIFAR10Data:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` as uint8 tensors (50,000 train / 10,000 test when real).

    ``root`` defaults to ``data_dir()``. ``download=True`` reads only the real CIFAR-10 (md5-checked),
    downloading it into a folder that holds none of its files; ``download=False`` reads whatever is there,
    e.g. ``write_fake_cifar10``'s files (see ``ensure_cifar10``). One reader serves both.
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


# -- the 5-epoch checkpoint of experiment 2 ---------------------------------------------------------
#: written into the student edition's package by ``python -m autograder publish`` when the instructor
#: published a checkpoint (``make pretrain``); absent from the course's own source
PRETRAINED_RECORD = Path(__file__).with_name("pretrained.json")
PRETRAINED_FILE = "resnet20_epoch5.pth"
_PUBLISH_HOW = ("Instructors: `make pretrain` (a CUDA GPU and the real CIFAR-10) writes "
                "build/pretrain/resnet20_epoch5.pth and its .sha256; `make publish EDITION=DIR` then copies it into "
                "the edition's checkpoints/ and records its sha256 and download URL in the edition's "
                "dlcourse/pretrained.json; push the edition.")


class PretrainedCheckpointError(DatasetNotFoundError):
    """The 5-epoch checkpoint is missing, unpublished, or not the published file; the message says which file,
    what was expected and what was found, and exactly where to put the file."""


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file, hex (what ``sha256sum`` prints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def pretrained_record() -> dict | None:
    """What the instructor published about the 5-epoch checkpoint (file, sha256, bytes, url, epochs, test
    accuracy), from ``dlcourse/pretrained.json``; None when this copy of the package has none."""
    try:
        record = json.loads(PRETRAINED_RECORD.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("sha256") and record.get("file") else None


def _pretrained_where(record: dict, target: Path, lead: str = "Download it") -> str:
    """Where the file comes from and exactly where it goes."""
    return (f"{lead} (on a machine with internet) from\n    {record['url']}\n"
            f"({record['bytes']:,} bytes, sha256 {record['sha256']}) and put it at\n    {target}\n"
            f"(the course data folder: ${DATA_DIR_ENV}, else {DEFAULT_DATA_DIR}; a clone of the course edition "
            f"holds it as {record.get('path_in_edition', 'checkpoints/' + record['file'])}); then run again. "
            "`python -m dlcourse.data --pretrained` checks it.")


def _pretrained_mismatch(record: dict, path: Path, size: int, sha: str, what: str) -> str:
    expected = int(record["bytes"])
    cause = ("the file is empty: an interrupted download or copy" if size == 0 else
             "shorter than the published file: an interrupted download or copy" if size < expected else
             "the size of the published file but other bytes: a damaged copy" if size == expected else
             "not the published file: another checkpoint (your own run, an older edition) under its name")
    return (f"{what} is not the 5-epoch checkpoint your instructor published:\n"
            f"    found:    {size:,} bytes, sha256 {sha}\n"
            f"    expected: {expected:,} bytes, sha256 {record['sha256']}\n"
            f"    likely cause: {cause}")


def _verified(record: dict, path: Path) -> bool:
    """True when ``path`` is the published file; raises PretrainedCheckpointError (file left as it is) when not."""
    size, sha = path.stat().st_size, sha256_of(path)
    if sha == record["sha256"]:
        return True
    raise PretrainedCheckpointError(
        _pretrained_mismatch(record, path, size, sha, str(path)) + "\n"
        f"Nothing was downloaded over it and it was not changed. Delete (or move) {path} and run again to "
        "download the published file, or " + _pretrained_where(record, path, "download it yourself"))


def _download_pretrained(record: dict, target: Path) -> Path:
    """Download the published checkpoint to a temporary name beside ``target``, check its sha256, then move it
    to ``target`` only if nothing is there; a failed or wrong download is deleted."""
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".download", dir=target.parent)
    tmp = Path(tmp_name)
    limit = 2 * int(record["bytes"]) + (1 << 20)      # a server sending far more is not sending this file
    try:
        h, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(record["url"], timeout=DOWNLOAD_TIMEOUT_S) as response:
            while block := response.read(1 << 20):
                size += len(block)
                if size > limit:
                    raise OSError(f"the server sent more than {limit:,} bytes")
                h.update(block)
                out.write(block)
        if h.hexdigest() != record["sha256"]:
            raise PretrainedCheckpointError(
                _pretrained_mismatch(record, tmp, size, h.hexdigest(), f"The file downloaded from {record['url']}")
                + "\nIt was deleted; nothing was put at " + str(target) + ". Ask your instructor: the published "
                "file and this package's record of it disagree (an edition republished since you installed the "
                "package? then reinstall it), or " + _pretrained_where(record, target, "download it yourself"))
        try:
            os.link(tmp, target)                          # fails if something appeared at target meanwhile
        except FileExistsError:
            pass                                          # checked below, never replaced
        except OSError:                                   # no hard links here (some network or FAT drives)
            if not target.exists():
                os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _verified(record, target)
    return target


def pretrained_checkpoint(path: str | Path | None = None, download: bool = True) -> Path:
    """The path of experiment 2's 5-epoch ResNet20 checkpoint, checked against the sha256 the instructor published.

    ``path``: a copy you have (only checked, never downloaded to). Otherwise ``<data_dir()>/resnet20_epoch5.pth``:
    used when it is there, else the copy in the course edition's ``checkpoints/`` when the package is installed
    from a clone of it, else (``download=True``) downloaded once from the published URL into the data folder.
    Every file is checked against the published sha256 before it is returned; an existing file is never
    replaced or changed. Raises ``PretrainedCheckpointError`` naming the file, the expected and the found size
    and sha256, and where to put the file; without a published record (the course's own source, an edition
    published before the checkpoint existed) it says the instructor has not published one, and how to.
    """
    record = pretrained_record()
    if record is None:
        raise PretrainedCheckpointError(
            f"No 5-epoch checkpoint was published with this copy of the course package ({PRETRAINED_RECORD} is "
            "not there), so there is no checksum to check a file against: your instructor has not published it "
            "(yet). Ask them, or train from epoch 0 (RESUME_FROM = None); a checkpoint you were given directly "
            "can be set as RESUME_FROM = \"path/to/resnet20_epoch5.pth\" (unchecked).\n" + _PUBLISH_HOW)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise PretrainedCheckpointError(f"The 5-epoch checkpoint {path} does not exist. "
                                            + _pretrained_where(record, path.resolve()) +
                                            f" Or call pretrained_checkpoint() without a path to use the data folder.")
        _verified(record, path)
        return path
    target = data_dir() / record["file"]
    if target.exists():
        _verified(record, target)
        return target
    clone = Path(__file__).resolve().parent.parent / record.get("path_in_edition", "checkpoints/" + record["file"])
    if clone.is_file():
        _verified(record, clone)
        return clone
    if not download:
        raise PretrainedCheckpointError(f"The 5-epoch checkpoint is not in {target.parent} (download=False: nothing "
                                        "is downloaded). " + _pretrained_where(record, target))
    try:
        return _download_pretrained(record, target)
    except PretrainedCheckpointError:
        raise
    except (OSError, ValueError) as err:   # URLError and timeouts are OSErrors
        raise PretrainedCheckpointError(f"The 5-epoch checkpoint is not in {target.parent} and the download failed "
                                        f"({type(err).__name__}: {err}); nothing was put there. "
                                        + _pretrained_where(record, target)) from None


def main(argv: list[str] | None = None) -> int:
    """``python -m dlcourse.data [--check]``: download CIFAR-10 into the data folder (or say why not), or only check it."""
    parser = argparse.ArgumentParser(prog="python -m dlcourse.data",
                                     description=f"Download CIFAR-10 into the course data folder (${DATA_DIR_ENV}, "
                                                 f"else {DEFAULT_DATA_DIR}), md5-checked, never over files that "
                                                 "are there.")
    parser.add_argument("--check", action="store_true",
                        help="only check each file's md5 sum and say what is wrong; download nothing "
                             "(exit status 0 when it is the real CIFAR-10)")
    parser.add_argument("--pretrained", nargs="?", const="", metavar="PATH",
                        help="instead: experiment 2's 5-epoch checkpoint, checked against the published sha256 "
                             "(PATH, or the data folder's copy, downloaded when missing unless --check)")
    args = parser.parse_args(argv)
    if args.pretrained is not None:
        try:
            path = pretrained_checkpoint(args.pretrained or None, download=not args.check)
        except PretrainedCheckpointError as err:
            print(err)
            return 1
        print(f"the 5-epoch checkpoint is {path} (sha256 checked): set RESUME_FROM to it, or USE_PRETRAINED = True "
              "in section 9 of experiment 2")
        return 0
    root = data_dir()
    status = check_cifar10(root)
    if args.check:
        print(status.report() if status.ok else status.report() + "\n\n" + _problem_message(status))
        return 0 if status.ok else 1
    if status.ok:
        print(f"CIFAR-10 is in {status.folder} (md5 sums checked)")
        return 0
    try:
        folder = download_cifar10(root)
    except DatasetNotFoundError as err:
        print(err)
        return 1
    print(f"CIFAR-10 downloaded to {folder} (md5 sums checked)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
