"""dlcourse.data: generated CIFAR-10 through the real loading code, the offline message, the transforms."""
from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcourse import data as D


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return D.write_fake_cifar10(tmp_path_factory.mktemp("cifar"), num_train=23, num_test=7, seed=3)


def test_constants_match_torchvision():
    """The URL and md5 sums in the offline message are the ones torchvision checks."""
    from torchvision.datasets import CIFAR10

    assert D.CIFAR10_URL == CIFAR10.url and D.CIFAR10_ARCHIVE == CIFAR10.filename
    assert D.CIFAR10_ARCHIVE_MD5 == CIFAR10.tgz_md5 and D.CIFAR10_FOLDER == CIFAR10.base_folder
    expected = dict(CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]])
    assert D.CIFAR10_FILES == expected


def test_data_dir_from_environment(monkeypatch, tmp_path):
    """COURSE_DATA_DIR chooses the data folder; without it the default is ~/.cache/dlcourse."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert D.data_dir() == tmp_path and D.cifar10_folder() == tmp_path / "cifar-10-batches-py"
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert D.data_dir() == D.DEFAULT_DATA_DIR.expanduser()


def test_fake_files_have_the_official_format(fake_root):
    """write_fake_cifar10 writes the seven files of cifar-10-batches-py as pickled dicts with bytes keys."""
    folder = D.cifar10_folder(fake_root)
    assert sorted(p.name for p in folder.iterdir()) == sorted(D.CIFAR10_FILES)
    sizes = []
    for name in D.CIFAR10_TRAIN_BATCHES + ("test_batch",):
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")       # how the official site says to read the real files
        assert set(batch) == {b"data", b"labels", b"batch_label", b"filenames"}
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape[1] == 3072
        assert len(batch[b"labels"]) == len(batch[b"filenames"]) == len(batch[b"data"])
        assert all(isinstance(v, int) for v in batch[b"labels"]) and isinstance(batch[b"batch_label"], bytes)
        sizes.append(len(batch[b"data"]))
    assert sizes == [5, 5, 5, 4, 4, 7]
    with open(folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="bytes")
    assert [n.decode() for n in meta[b"label_names"]] == list(D.CIFAR10_CLASSES) and meta[b"num_vis"] == 3072


def test_fake_round_trip_through_the_real_loader(fake_root):
    """load_cifar10 (the reader used for the real files) returns exactly the generated images and labels."""
    data = D.load_cifar10(fake_root, download=False)
    assert data.X_train.shape == (23, 3, 32, 32) and data.X_test.shape == (7, 3, 32, 32)
    assert data.X_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    assert data.classes == D.CIFAR10_CLASSES
    X, y = D.fake_cifar10_arrays(23, seed=3)
    assert np.array_equal(data.X_train.numpy(), X) and np.array_equal(data.y_train.numpy(), y)
    X, y = D.fake_cifar10_arrays(7, seed=4)
    assert np.array_equal(data.X_test.numpy(), X) and np.array_equal(data.y_test.numpy(), y)
    assert D.cifar10_present(fake_root) and not D.is_real_cifar10(fake_root)   # md5 sums tell fake from real


def test_reader_accepts_str_keys_and_rejects_garbage(tmp_path):
    """read_cifar10_batch reads str or bytes keys, and names the file when the content is not a batch."""
    good = tmp_path / "str_keys"
    with open(good, "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 9]}, f)
    X, y = D.read_cifar10_batch(good)
    assert X.shape == (2, 3, 32, 32) and y.tolist() == [3, 9]
    bad = tmp_path / "bad_batch"
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.float32), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="bad_batch"):
        D.read_cifar10_batch(bad)


def test_fake_data_is_seeded_balanced_and_learnable():
    """Same seed, same images; classes balanced; a nearest-mean-colour classifier already beats chance by far."""
    X1, y1 = D.fake_cifar10_arrays(400, seed=0)
    X2, y2 = D.fake_cifar10_arrays(400, seed=0)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(D.fake_cifar10_arrays(400, seed=1)[0], X1)
    assert np.bincount(y1, minlength=10).tolist() == [40] * 10
    colour = X1.reshape(400, 3, -1).mean(axis=2)                                     # (N, 3)
    centres = np.stack([colour[y1 == c].mean(axis=0) for c in range(10)])          # (10, 3)
    Xt, yt = D.fake_cifar10_arrays(200, seed=7)
    test_colour = Xt.reshape(200, 3, -1).mean(axis=2)
    predicted = np.argmin(((test_colour[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)
    assert (predicted == yt).mean() > 0.5


@pytest.fixture
def offline(monkeypatch):
    """No network, at the socket layer: every connection attempt is refused (and counted)."""
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(f"offline (test): no connection to {address}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def _snapshot(root: Path) -> dict:
    """Every file under root: relative path -> bytes (and every folder -> None)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _as_official(monkeypatch, root: Path) -> None:
    """Let the generated set in root play the official one: its md5 sums and sizes become the published ones."""
    folder = D.cifar10_folder(root)
    monkeypatch.setattr(D, "CIFAR10_FILES", {name: hashlib.md5((folder / name).read_bytes()).hexdigest()
                                             for name in D.CIFAR10_FILES})
    monkeypatch.setattr(D, "CIFAR10_SIZES", {name: (folder / name).stat().st_size for name in D.CIFAR10_FILES})


def test_absent_and_offline_message_says_what_to_put_where(offline, monkeypatch, tmp_path):
    """Without the files and without network, the error names the folder, the missing files, the URL and the md5 sums."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    for call in (lambda: D.load_cifar10(), lambda: D.ensure_cifar10(download=False), D.download_cifar10):
        with pytest.raises(D.DatasetNotFoundError) as err:
            call()
        message = str(err.value)
        assert not isinstance(err.value, D.DatasetIntegrityError)
        assert str(tmp_path / "cifar-10-batches-py") in message and D.CIFAR10_URL in message
        assert D.CIFAR10_ARCHIVE_MD5 in message and "COURSE_DATA_DIR" in message
        assert all(name in message and md5 in message for name, md5 in D.CIFAR10_FILES.items())
        assert f"Missing: {', '.join(D.CIFAR10_FILES)} (7 of 7 files)" in message and "Missing: none" not in message
    assert offline, "the download was not even tried"
    assert "offline (test)" in message                        # the network's own error is quoted
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # no partial archive, no temporary folder left


def test_offline_with_some_files_missing_names_them_and_downloads_nothing(offline, monkeypatch, tmp_path):
    """A folder holding some of the files: the error lists the missing ones, no download is tried, nothing changes."""
    D.write_fake_cifar10(tmp_path, num_train=10, num_test=5)
    _as_official(monkeypatch, tmp_path)
    for name in ("test_batch", "batches.meta"):
        (D.cifar10_folder(tmp_path) / name).unlink()
    before = _snapshot(tmp_path)
    for call in (lambda: D.load_cifar10(tmp_path), lambda: D.load_cifar10(tmp_path, download=False),
                 lambda: D.download_cifar10(tmp_path)):
        with pytest.raises(D.DatasetNotFoundError) as err:
            call()
        message = str(err.value)
        assert "Missing: test_batch, batches.meta (2 of 7 files)" in message, message
        assert not isinstance(err.value, D.DatasetIntegrityError) and "fail" not in message
        assert "Nothing was downloaded" in message and "never replaces files" in message
    assert offline == [] and _snapshot(tmp_path) == before


def test_one_corrupted_batch_is_named_with_its_md5_sums_and_left_unchanged(offline, monkeypatch, tmp_path):
    """One truncated batch: an integrity error names that file (size, expected and actual md5, partial download);
    nothing is downloaded and the folder is byte-for-byte unchanged."""
    D.write_fake_cifar10(tmp_path, num_train=50, num_test=10)
    _as_official(monkeypatch, tmp_path)
    bad = D.cifar10_folder(tmp_path) / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:1000])                   # an interrupted copy
    actual = hashlib.md5(bad.read_bytes()).hexdigest()
    before = _snapshot(tmp_path)

    status = D.check_cifar10(tmp_path)
    assert [f.name for f in status.wrong] == ["data_batch_3"] and status.missing == () and not status.ok
    assert [f.name for f in status.files if f.ok] == [n for n in D.CIFAR10_FILES if n != "data_batch_3"]
    for call in (lambda: D.load_cifar10(tmp_path), lambda: D.ensure_cifar10(tmp_path), lambda: D.download_cifar10(tmp_path)):
        with pytest.raises(D.DatasetIntegrityError) as err:
            call()
        message = str(err.value)
        assert isinstance(err.value, D.DatasetNotFoundError)    # what the notebook already catches
        assert "data_batch_3" in message and actual in message and D.CIFAR10_FILES["data_batch_3"] in message
        assert "1,000 bytes" in message and "partial download" in message
        assert "1 file fails the md5 check" in message and "data_batch_1" not in message and "Missing" not in message
        assert f"delete (or move away) {D.cifar10_folder(tmp_path)}" in message and "COURSE_DATA_DIR" in message
    assert offline == [] and _snapshot(tmp_path) == before
    assert not D.is_real_cifar10(tmp_path)
    # the reader's path (download=False) reads what is there, so it stops at the truncated file and names it
    with pytest.raises(ValueError, match="data_batch_3 cannot be read"):
        D.load_cifar10(tmp_path, download=False)


def test_generated_folder_is_refused_by_the_download_gate_and_read_without_it(offline, tmp_path):
    """With the real md5 sums, a generated folder fails every file (each said to be generated); download=False reads it."""
    D.write_fake_cifar10(tmp_path, num_train=10, num_test=5)
    before = _snapshot(tmp_path)
    with pytest.raises(D.DatasetIntegrityError) as err:
        D.load_cifar10(tmp_path)
    message = str(err.value)
    assert "7 files fail the md5 check" in message and message.count("written by write_fake_cifar10") == 6
    assert all(md5 in message for md5 in D.CIFAR10_FILES.values())
    assert offline == [] and _snapshot(tmp_path) == before
    assert len(D.load_cifar10(tmp_path, download=False).y_train) == 10


def test_partial_archive_is_named_and_kept(offline, tmp_path):
    """A truncated cifar-10-python.tar.gz in the data folder: named with its md5 sums, not replaced, no download."""
    archive = tmp_path / D.CIFAR10_ARCHIVE
    archive.write_bytes(b"\x1f\x8b" + bytes(4094))
    with pytest.raises(D.DatasetIntegrityError) as err:
        D.download_cifar10(tmp_path)
    message = str(err.value)
    assert D.CIFAR10_ARCHIVE in message and D.CIFAR10_ARCHIVE_MD5 in message and "partial download" in message
    assert hashlib.md5(archive.read_bytes()).hexdigest() in message and "4,096 bytes" in message
    assert f"and {archive}" in message                          # delete it too, says what to do
    assert offline == [] and sorted(p.name for p in tmp_path.iterdir()) == [D.CIFAR10_ARCHIVE]


def test_all_present_real_files_load_without_network(offline, monkeypatch, tmp_path):
    """Every file with its (published) md5 sum: load_cifar10(download=True) reads it as it is, no network."""
    D.write_fake_cifar10(tmp_path, num_train=23, num_test=7, seed=3)
    _as_official(monkeypatch, tmp_path)
    assert D.check_cifar10(tmp_path).ok and D.is_real_cifar10(tmp_path)
    data = D.load_cifar10(tmp_path)
    assert np.array_equal(data.X_train.numpy(), D.fake_cifar10_arrays(23, seed=3)[0]) and offline == []


def test_data_dir_variable_points_everything_at_the_course_copy(offline, monkeypatch, tmp_path, capsys):
    """COURSE_DATA_DIR: load_cifar10(), check_cifar10() and `python -m dlcourse.data [--check]` use that copy."""
    course_copy = tmp_path / "course-data"
    D.write_fake_cifar10(course_copy, num_train=20, num_test=10, seed=5)
    monkeypatch.setenv("COURSE_DATA_DIR", str(course_copy))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))          # the default folder must not be consulted
    assert D.check_cifar10().folder == course_copy / "cifar-10-batches-py"
    assert D.main(["--check"]) == 1 and "written by write_fake_cifar10" in capsys.readouterr().out
    assert D.main([]) == 1 and "nothing was downloaded" in capsys.readouterr().out.lower()
    _as_official(monkeypatch, course_copy)
    assert len(D.load_cifar10().y_train) == 20 and len(D.load_cifar10(download=False).y_test) == 10
    assert D.main(["--check"]) == 0 and "the real CIFAR-10 is in" in capsys.readouterr().out
    assert D.main([]) == 0 and str(course_copy) in capsys.readouterr().out
    assert offline == [] and not (tmp_path / "home").exists()


@pytest.fixture
def archive_server(tmp_path_factory):
    """A local HTTP server for a folder: (folder, base URL)."""
    folder = tmp_path_factory.mktemp("served")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass                     # torchvision's redirect probe hangs up after the headers: a broken pipe here

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _fake_archive(path: Path, tmp: Path) -> str:
    """A cifar-10-python.tar.gz of a generated set (cifar-10-batches-py/ and a readme); returns its md5."""
    D.write_fake_cifar10(tmp, num_train=15, num_test=5, seed=2)
    (D.cifar10_folder(tmp) / "readme.html").write_text("generated")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(D.cifar10_folder(tmp), arcname=D.CIFAR10_FOLDER)
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_unpacks_into_an_empty_folder(archive_server, monkeypatch, tmp_path, capsys):
    """A download (from a local server) is md5-checked, unpacked and moved into place; no temporary file is left."""
    served, url = archive_server
    md5 = _fake_archive(served / D.CIFAR10_ARCHIVE, tmp_path / "source")
    _as_official(monkeypatch, tmp_path / "source")
    monkeypatch.setattr(D, "CIFAR10_URL", f"{url}/{D.CIFAR10_ARCHIVE}")
    monkeypatch.setattr(D, "CIFAR10_ARCHIVE_MD5", md5)
    root = tmp_path / "data"
    (root / D.CIFAR10_FOLDER).mkdir(parents=True)              # an empty folder is not "some of the files"
    assert D.download_cifar10(root) == D.cifar10_folder(root) and D.is_real_cifar10(root)
    assert sorted(p.name for p in root.iterdir()) == sorted([D.CIFAR10_ARCHIVE, D.CIFAR10_FOLDER])
    assert (D.cifar10_folder(root) / "readme.html").read_text() == "generated"
    assert len(D.load_cifar10(root).y_train) == 15
    capsys.readouterr()


def test_download_with_a_wrong_md5_is_deleted_and_reported(archive_server, monkeypatch, tmp_path, capsys):
    """A downloaded archive that fails its md5 check is reported with both sums and deleted; the folder stays absent."""
    served, url = archive_server
    md5 = _fake_archive(served / D.CIFAR10_ARCHIVE, tmp_path / "source")
    monkeypatch.setattr(D, "CIFAR10_URL", f"{url}/{D.CIFAR10_ARCHIVE}")
    root = tmp_path / "data"
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.download_cifar10(root)
    message = str(err.value)
    assert md5 in message and D.CIFAR10_ARCHIVE_MD5 in message and "it was deleted" in message
    assert "Missing: " in message and sorted(p.name for p in root.iterdir()) == []
    capsys.readouterr()


def test_normalize_and_test_transform_agree():
    """normalize() scales to [0, 1] and standardises each channel, exactly like the torchvision test transform."""
    X = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.tensor(D.CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(D.CIFAR10_STD).view(1, 3, 1, 1)
    expected = (X.float() / 255 - mean) / std
    assert torch.allclose(D.normalize(X), expected, atol=1e-6)
    transform = D.test_transform()
    assert torch.allclose(torch.stack([transform(x) for x in X]), expected, atol=1e-5)


def _candidates(image: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Every crop of the zero-padded image, plain and mirrored: (2 * (2p + 1)^2, C, H, W)."""
    C, H, W = image.shape
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    crops = [padded[:, i:i + H, j:j + W] for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
    return torch.stack(crops + [c.flip(-1) for c in crops])


def test_batched_crop_is_a_shifted_window_of_the_padded_image():
    """random_crop_flip on CPU tensors: same shape and dtype, each output a (possibly mirrored) window of the padded input."""
    g = torch.Generator().manual_seed(0)
    X = torch.randint(1, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)   # no zeros: padding shows as 0
    out = D.random_crop_flip(X, generator=g)
    assert out.shape == X.shape and out.dtype == X.dtype and out.device == X.device
    for x, o in zip(X, out):
        assert (_candidates(x) == o).flatten(1).all(dim=1).any(), "output is not a crop of the padded image"
    again = D.random_crop_flip(X, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, D.random_crop_flip(X, generator=torch.Generator().manual_seed(5)))
    small = D.random_crop_flip(X[:, :, :8, :10].float(), padding=2)               # other sizes and dtypes
    assert small.shape == (16, 3, 8, 10) and small.dtype == torch.float32


def test_batched_crop_offsets_and_flips_are_uniform():
    """Offsets cover -4..4 in both directions evenly and about half the images are mirrored."""
    N = 4000
    rows = torch.arange(1, 33, dtype=torch.float32).view(1, 32, 1).expand(N, 32, 32)
    cols = torch.arange(1, 33, dtype=torch.float32).view(1, 1, 32).expand(N, 32, 32)
    X = torch.stack([rows, cols], dim=1)                                            # pixel = its (row, col) + 1
    out = D.random_crop_flip(X, generator=torch.Generator().manual_seed(1))
    dy = (out[:, 0, 16, 16] - 17).long()                                            # the row shift of the centre
    flipped = out[:, 1, 16, 17] < out[:, 1, 16, 16]                                 # columns decrease: mirrored
    assert 0.46 < flipped.float().mean() < 0.54
    dx = (out[:, 1, 16, 16] - torch.where(flipped, 16, 17)).long()                # the column shift
    for shift in (dy, dx):
        counts = torch.bincount(shift + 4, minlength=9)
        assert shift.min() == -4 and shift.max() == 4 and counts.min() > N / 9 * 0.8


def test_torchvision_path_draws_from_the_same_crops():
    """The per-image torchvision train transform produces normalised crops/flips of the zero-padded image, like the batched one."""
    torch.manual_seed(0)
    x = torch.randint(1, 256, (3, 32, 32), dtype=torch.uint8)
    allowed = D.normalize(_candidates(x))                                           # (162, 3, 32, 32)
    transform = D.train_transform()
    seen_flip = set()
    for _ in range(30):
        y = transform(x)
        assert y.dtype == torch.float32 and y.shape == (3, 32, 32)
        match = torch.isclose(allowed, y.unsqueeze(0), atol=1e-5).flatten(1).all(dim=1).nonzero()
        assert len(match), "the torchvision transform produced something the batched recipe cannot"
        seen_flip.add(int(match[0]) >= 81)
    assert seen_flip == {True, False}


def test_loaders_on_the_cpu(fake_root):
    """make_loaders: a DataLoader by default on the CPU, TensorBatches when resident; both give normalised batches of the right size."""
    data = D.load_cifar10(fake_root, download=False)
    train_loader, test_loader = D.make_loaders(data, batch_size=8, device="cpu")
    assert isinstance(train_loader, torch.utils.data.DataLoader)
    X, y = next(iter(train_loader))
    assert X.shape == (8, 3, 32, 32) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert [len(yb) for _, yb in test_loader] == [7]
    resident_train, resident_test = D.make_loaders(data, batch_size=8, device="cpu", resident=True)
    assert isinstance(resident_train, D.TensorBatches) and len(resident_train) == 3
    batches = list(resident_train)
    assert [len(yb) for _, yb in batches] == [8, 8, 7]
    assert sorted(torch.cat([yb for _, yb in batches]).tolist()) == sorted(data.y_train.tolist())  # each once
    Xt, yt = next(iter(resident_test))
    assert torch.equal(yt, data.y_test) and torch.allclose(Xt, D.normalize(data.X_test))          # test: no augmentation
