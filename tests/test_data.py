"""dlcourse.data: generated CIFAR-10 through the real loading code, the offline message, the transforms."""
from __future__ import annotations

import pickle
import urllib.error

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


def test_absent_and_offline_message_says_what_to_put_where(monkeypatch, tmp_path):
    """Without the files and without network, the error names the folder, the files, the URL and the md5 sums."""
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    for call in (lambda: D.load_cifar10(), lambda: D.ensure_cifar10(download=False)):
        with pytest.raises(D.DatasetNotFoundError) as err:
            call()
        message = str(err.value)
        assert str(tmp_path / "cifar-10-batches-py") in message and D.CIFAR10_URL in message
        assert D.CIFAR10_ARCHIVE_MD5 in message and "COURSE_DATA_DIR" in message
        assert all(name in message and md5 in message for name, md5 in D.CIFAR10_FILES.items())
    assert "no network" in str(pytest.raises(D.DatasetNotFoundError, D.download_cifar10).value)


def test_download_rejects_files_with_wrong_md5(monkeypatch, tmp_path):
    """torchvision's md5 check (what download_cifar10 relies on) rejects generated files: they are reported, not used."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive",
                        lambda url, root, **kw: D.write_fake_cifar10(root, num_train=10, num_test=10))
    with pytest.raises(D.DatasetNotFoundError, match="corrupted"):
        D.download_cifar10(tmp_path)
    assert D.cifar10_present(tmp_path) and not D.is_real_cifar10(tmp_path)


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
