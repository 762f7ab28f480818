"""Experiment 2's 5-epoch checkpoint: made as `make pretrain` makes it (on tiny generated data, on the CPU),
published with its sha256 into the student edition, and found, downloaded and checked there by
`dlcourse.data.pretrained_checkpoint()`, run from the edition's own copy of the package."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from autograder.colab import Repository
from autograder.course import Course
from autograder.pretrain import DEFAULT_OUT, checksum_path, pretrain_checkpoint, read_checksum, solution_namespace, \
    write_checksum
from autograder.publish import PublishError, publish
from conftest import REPO

EXP2 = "09_exp2_cifar10"
FILE = "resnet20_epoch5.pth"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real 5-epoch ResNet20 checkpoint from the solution's own training code, on 64 generated images."""
    import torch

    from dlcourse.data import load_cifar10, make_loaders, write_fake_cifar10

    tmp = tmp_path_factory.mktemp("pretrain")
    ns = solution_namespace(EXP2, repo=REPO)
    cpu = torch.device("cpu")
    data = load_cifar10(write_fake_cifar10(tmp / "fake", num_train=64, num_test=32, seed=0), download=False)
    ns.update(device=cpu, progress=lambda it, **k: it)
    train_loader, test_loader = make_loaders(data, batch_size=32, device=cpu)
    torch.manual_seed(0)
    model = ns["to_training_device"](ns["ResNet20"](), cpu)
    saved, _ = pretrain_checkpoint(ns, model, train_loader, test_loader, epochs=5)
    out = tmp / "build" / "pretrain" / FILE            # where `make pretrain` writes it
    out.parent.mkdir(parents=True)
    torch.save(saved, out)
    sha = write_checksum(out)
    return out, sha, saved


@pytest.fixture(scope="module")
def edition(checkpoint, tmp_path_factory):
    dest = tmp_path_factory.mktemp("edition") / "course-edition"
    lines: list[str] = []
    files = publish(Course.open(), dest, check_drift=False, pretrained=checkpoint[0], log=lines.append)
    return dest, files, lines


def test_pretrain_writes_the_checksum_beside_the_checkpoint(checkpoint):
    """`make pretrain`'s .sha256 is in sha256sum's format and holds the checkpoint's sum."""
    out, sha, saved = checkpoint
    assert checksum_path(out).read_text() == f"{_sha256(out)}  {FILE}\n" and read_checksum(out) == sha
    assert saved["epoch"] == 5 and saved["history"]["epoch"] == [0, 1, 2, 3, 4]
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", checksum_path(out).name], cwd=out.parent, check=True, capture_output=True)


def test_the_edition_holds_the_checkpoint_and_records_its_sha256_and_url(edition, checkpoint, tmp_path):
    """The file byte for byte, its .sha256, and dlcourse/pretrained.json with the sum, size and the raw URL built
    from the edition's one repository URL; the README says where it goes; git keeps it; the wheel carries the record."""
    dest, files, lines = edition
    out, sha, saved = checkpoint
    assert {f"checkpoints/{FILE}", f"checkpoints/{FILE}.sha256", "dlcourse/pretrained.json"} <= set(files)
    assert (dest / "checkpoints" / FILE).read_bytes() == out.read_bytes()
    record = json.loads((dest / "dlcourse" / "pretrained.json").read_text())
    url = Repository.from_pyproject(REPO).raw_url(f"checkpoints/{FILE}")
    assert url.startswith("https://raw.githubusercontent.com/") and url.endswith(f"/main/checkpoints/{FILE}")
    assert record["sha256"] == sha == _sha256(dest / "checkpoints" / FILE)
    assert record["bytes"] == out.stat().st_size and record["url"] == url and record["epochs"] == 5
    assert record["file"] == FILE and record["test_acc"] == pytest.approx(saved["acc"])
    readme = (dest / "README.md").read_text()
    assert sha in readme and url in readme and "USE_PRETRAINED = True" in readme and "not published" not in readme
    assert len(lines) == 1 and "published the 5-epoch checkpoint" in lines[0] and sha in lines[0]
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    ignored = subprocess.run(["git", "-C", str(dest), "check-ignore", "-q", f"checkpoints/{FILE}"])
    assert ignored.returncode == 1, "the edition's .gitignore would leave the checkpoint out of the commit"
    shutil.rmtree(dest / ".git")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(dest)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("dlcourse-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert json.loads(z.read("dlcourse/pretrained.json")) == record     # what Colab's install gets


def test_publish_refuses_a_checkpoint_that_changed_after_its_sum(checkpoint, tmp_path):
    """A checkpoint whose .sha256 disagrees, or that is not a 5-epoch checkpoint, is not published."""
    import torch

    changed = tmp_path / "build" / FILE
    changed.parent.mkdir()
    shutil.copy(checkpoint[0], changed)
    shutil.copy(checksum_path(checkpoint[0]), checksum_path(changed))
    with open(changed, "ab") as f:
        f.write(b"\0")
    with pytest.raises(PublishError, match="changed after `make pretrain`"):
        publish(Course.open(), tmp_path / "edition", check_drift=False, pretrained=changed, log=lambda line: None)
    torch.save({**checkpoint[2], "epoch": 3}, tmp_path / "three.pth")
    with pytest.raises(PublishError, match="not a 5-epoch checkpoint"):
        publish(Course.open(), tmp_path / "edition", check_drift=False, pretrained=tmp_path / "three.pth",
                log=lambda line: None)
    assert not (tmp_path / "edition").exists()


# -- the helper, run from the edition's own package ---------------------------------------------------------
def _installed(dest: Path, where: Path, url: str | None = None) -> Path:
    """The edition's dlcourse alone in ``where`` (as pip installs it: no checkpoints/ beside it); ``url``
    replaces the recorded download URL (a local server's)."""
    shutil.copytree(dest / "dlcourse", where / "dlcourse", ignore=shutil.ignore_patterns("__pycache__"))
    if url:
        record = json.loads((where / "dlcourse" / "pretrained.json").read_text())
        (where / "dlcourse" / "pretrained.json").write_text(json.dumps({**record, "url": url}))
    return where


def _helper(package_root: Path, data: Path, call: str = "pretrained_checkpoint()") -> tuple[int, str]:
    """Run ``call`` with the dlcourse of ``package_root`` and the data folder ``data``: (0, path) or (1, message)."""
    code = ("import sys, dlcourse\n"
            f"assert dlcourse.__file__.startswith({str(package_root)!r}), dlcourse.__file__\n"
            "from dlcourse.data import PretrainedCheckpointError, pretrained_checkpoint\n"
            f"try:\n    print({call})\nexcept PretrainedCheckpointError as err:\n    print(err); sys.exit(1)\n")
    env = {**os.environ, "PYTHONPATH": str(package_root), "COURSE_DATA_DIR": str(data)}
    env.pop("NBGRADER_EXECUTION", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=package_root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return proc.returncode, proc.stdout.strip()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server for a folder: (folder, base URL, the paths requested)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{srv.server_address[1]}", requests
    srv.shutdown()
    srv.server_close()


def test_the_helper_accepts_the_published_file_in_the_data_folder(edition, tmp_path):
    dest, _, _ = edition
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(dest / "checkpoints" / FILE, data / FILE)
    rc, out = _helper(_installed(dest, tmp_path / "site"), data)
    assert (rc, out) == (0, str(data / FILE))
    rc, out = _helper(_installed(dest, tmp_path / "site2"), tmp_path / "elsewhere", f"pretrained_checkpoint({str(data / FILE)!r})")
    assert (rc, out) == (0, str(data / FILE))


def test_a_corrupted_copy_is_named_with_both_sums_and_left_as_it_is(edition, tmp_path):
    dest, _, _ = edition
    data = tmp_path / "data"
    data.mkdir()
    good = (dest / "checkpoints" / FILE).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    (data / FILE).write_bytes(bytes(bad))
    expected, found = hashlib.sha256(good).hexdigest(), hashlib.sha256(bad).hexdigest()
    site = _installed(dest, tmp_path / "site")
    rc, out = _helper(site, data)
    assert rc == 1 and str(data / FILE) in out and f"expected: {len(good):,} bytes, sha256 {expected}" in out
    assert f"found:    {len(bad):,} bytes, sha256 {found}" in out and "a damaged copy" in out
    assert "was not changed" in out and f"put it at\n    {data / FILE}" in out
    assert (data / FILE).read_bytes() == bytes(bad) and sorted(p.name for p in data.iterdir()) == [FILE]
    (data / FILE).write_bytes(good[:1000])                               # an interrupted download
    rc, out = _helper(site, data)
    assert rc == 1 and "interrupted download" in out and (data / FILE).read_bytes() == good[:1000]


def test_it_downloads_into_an_empty_data_folder_from_the_recorded_url(edition, server, tmp_path):
    """From a local server standing in for the edition's raw URL: downloaded, checked, cached, nothing left over."""
    dest, _, _ = edition
    served, url, requests = server
    shutil.copy(dest / "checkpoints" / FILE, served / FILE)
    data = tmp_path / "data" / "not-yet"
    site = _installed(dest, tmp_path / "site", url=f"{url}/{FILE}")
    rc, out = _helper(site, data)
    assert (rc, out) == (0, str(data / FILE)), out
    assert (data / FILE).read_bytes() == (dest / "checkpoints" / FILE).read_bytes()
    assert sorted(p.name for p in data.iterdir()) == [FILE] and len(requests) == 1
    assert _helper(site, data) == (0, str(data / FILE)) and len(requests) == 1        # cached: no second download


def test_it_never_downloads_over_a_different_file(edition, server, tmp_path):
    """Another checkpoint under the name: refused, unchanged, and the server is never asked."""
    dest, _, _ = edition
    served, url, requests = server
    shutil.copy(dest / "checkpoints" / FILE, served / FILE)
    data = tmp_path / "data"
    data.mkdir()
    (data / FILE).write_bytes(b"my own run's checkpoint, much longer than the published one" * 100_000)
    before = (data / FILE).read_bytes()
    rc, out = _helper(_installed(dest, tmp_path / "site", url=f"{url}/{FILE}"), data)
    assert rc == 1 and "another checkpoint" in out and "Nothing was downloaded over it" in out
    assert (data / FILE).read_bytes() == before and requests == []


def test_a_download_that_fails_its_sum_is_deleted(edition, server, tmp_path):
    dest, _, _ = edition
    served, url, _ = server
    (served / FILE).write_bytes((dest / "checkpoints" / FILE).read_bytes()[:-10])
    data = tmp_path / "data"
    rc, out = _helper(_installed(dest, tmp_path / "site", url=f"{url}/{FILE}"), data)
    assert rc == 1 and f"The file downloaded from {url}/{FILE}" in out and "It was deleted" in out
    assert list(data.iterdir()) == []


def test_offline_it_says_what_to_put_where(edition, tmp_path):
    """download=False with nothing there: the URL, size, sum and the exact path; a clone of the edition uses
    its own checkpoints/ copy."""
    dest, _, _ = edition
    record = json.loads((dest / "dlcourse" / "pretrained.json").read_text())
    data = tmp_path / "data"
    rc, out = _helper(_installed(dest, tmp_path / "site"), data, "pretrained_checkpoint(download=False)")
    assert rc == 1 and record["url"] in out and record["sha256"] in out and f"put it at\n    {data / FILE}" in out
    assert not data.exists()
    assert _helper(dest, data, "pretrained_checkpoint(download=False)") == (0, str(dest / "checkpoints" / FILE))


def test_without_a_published_checksum_it_says_how_to_publish_one(tmp_path, monkeypatch):
    """The course's own package (no record) and an edition published before any checkpoint existed."""
    from dlcourse import data as D

    assert not D.PRETRAINED_RECORD.exists()
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    shutil.copy(REPO / "README.md", tmp_path / FILE)                     # a file there changes nothing
    with pytest.raises(D.PretrainedCheckpointError) as err:
        D.pretrained_checkpoint()
    assert "has not published" in str(err.value) and "make pretrain" in str(err.value)
    assert "make publish" in str(err.value)
    if (REPO / DEFAULT_OUT).exists():
        pytest.skip(f"{DEFAULT_OUT} exists here: publish would take it")
    lines: list[str] = []
    dest = tmp_path / "edition"
    files = publish(Course.open(), dest, check_drift=False, log=lines.append)
    assert len(lines) == 1 and "no 5-epoch checkpoint" in lines[0] and "not published yet" in lines[0]
    assert not any(f.startswith("checkpoints/") or f.endswith("pretrained.json") for f in files)
    assert "The 5-epoch checkpoint of experiment 2 is not published yet" in (dest / "README.md").read_text()
    rc, out = _helper(dest, tmp_path)
    assert rc == 1 and "has not published" in out and "make publish" in out


# -- the notebook ------------------------------------------------------------------------------------------
def _small_net():                                   # ResNet20's interface, a fraction of its cost
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def _run_cell(tmp_path, monkeypatch, **settings):
    """Section 9's run cell with USE_PRETRAINED = True, executed on 64 generated images (with ResNet20 unless
    ``settings`` replace it)."""
    import nbformat
    import torch

    from dlcourse.data import load_cifar10, write_fake_cifar10

    tmp_path.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    nb = nbformat.read(str(REPO / "solutions" / EXP2 / f"{EXP2}.ipynb"), as_version=4)
    (cell,) = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("NUM_EPOCHS = 10")]
    assert cell.count("USE_PRETRAINED = False ") == 1
    ns = solution_namespace(EXP2, repo=REPO)
    data = load_cifar10(write_fake_cifar10(tmp_path / "fake", num_train=64, num_test=32, seed=0), download=False)
    ns.update(data=data, device=torch.device("cpu"), use_real=True, FAST=False, progress=lambda it, **k: it)
    ns.update(settings)
    exec(compile(cell.replace("USE_PRETRAINED = False ", "USE_PRETRAINED = True "), "<section 9>", "exec"), ns)
    return ns


def test_the_notebook_resumes_from_the_checked_checkpoint_and_never_while_grading(edition, tmp_path, monkeypatch,
                                                                                  capsys):
    """USE_PRETRAINED = True resumes at epoch 5 from the data folder's checked copy; while grading, in fast mode
    and on generated data it is ignored (the source package has no record: a call would raise)."""
    from dlcourse import data as D

    dest, _, _ = edition
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    for settings, why in (({"FAST": True}, "fast mode"), ({"use_real": False}, "generated data")):
        ns = _run_cell(tmp_path / why.replace(" ", "-"), monkeypatch, ResNet20=_small_net, **settings)
        assert ns["RESUME_FROM"] is None and ns["history"]["epoch"] == list(range(10))
        assert f"USE_PRETRAINED ignored: {why}" in capsys.readouterr().out.replace("this run uses ", "")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    ns = _run_cell(tmp_path / "grading", monkeypatch, ResNet20=_small_net)
    assert ns["RESUME_FROM"] is None and "ignored: the notebook is being graded" in capsys.readouterr().out
    monkeypatch.delenv("NBGRADER_EXECUTION")
    with pytest.raises(D.PretrainedCheckpointError, match="has not published"):
        _run_cell(tmp_path / "unpublished", monkeypatch)
    monkeypatch.setattr(D, "PRETRAINED_RECORD", dest / "dlcourse" / "pretrained.json")   # the edition's record
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(dest / "checkpoints" / FILE, data / FILE)
    monkeypatch.setenv("COURSE_DATA_DIR", str(data))
    ns = _run_cell(tmp_path / "published", monkeypatch)
    assert ns["RESUME_FROM"] == data / FILE and ns["start_epoch"] == 5
    assert ns["history"]["epoch"] == [5, 6, 7, 8, 9] and ns["full_history"]["epoch"] == list(range(10))
    assert "resumed from" in capsys.readouterr().out
    (data / FILE).write_bytes(b"not it")
    with pytest.raises(D.PretrainedCheckpointError, match="expected: "):
        _run_cell(tmp_path / "corrupted", monkeypatch)
