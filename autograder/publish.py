"""The student edition: what students, self-learners and Colab see, written from this (private) source.

``python -m autograder publish DIR`` (``make publish EDITION=DIR``) writes into ``DIR``:

* ``lectures/`` (notebooks, glossary, syllabus) and the released ``assignments/``, as committed;
* ``dlcourse/``, the package the notebooks import, with a ``pyproject.toml`` of its own whose
  dependencies are lower bounds that Colab's versions meet (no nbgrader, JupyterLab or grader);
* a student ``README.md`` (how to work, how to hand in, the syllabus, a Colab link per notebook) and
  a ``LICENSE``.

Never solutions, hidden tests, mutants, the grader, reports or gradebooks: ``edition_leaks`` scans the
result for every solution region, hidden test and mutant of the source and publishing fails on any.
The badges and setup cells point at ``[tool.dlcourse] repository`` in ``pyproject.toml``: set it to
the edition's repository, ``make release``, publish, and push ``DIR`` there.

**The 5-epoch checkpoint of experiment 2.** When ``make pretrain`` has written
``build/pretrain/resnet20_epoch5.pth`` (or ``publish(..., pretrained=PATH)`` names another), publishing
checks it (a checkpoint of 5 epochs; the sum in its ``.sha256`` when there is one), copies it with its
``.sha256`` to ``checkpoints/resnet20_epoch5.pth`` of the edition (about 2-3 MB, committed with it; the
edition's ``.gitignore`` keeps it) and records in the edition's package, ``dlcourse/pretrained.json``,
its sha256, size, epochs, test accuracy and download URL: GitHub's raw address of that file on the
edition's branch, ``https://raw.githubusercontent.com/<owner>/<name>/<branch>/checkpoints/resnet20_epoch5.pth``,
built from the one repository URL. ``dlcourse.data.pretrained_checkpoint()`` finds, downloads and checks
the file against that record. Without a checkpoint, publishing says so in one line and the student
README says it is not published yet.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from autograder.colab import Repository, readme_table
from autograder.mutants import load_mutants

HIDDEN_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
TEXT_SUFFIXES = {".ipynb", ".md", ".py", ".txt", ".toml", ".json", ".csv", ".cfg", ".yml", ".yaml", ""}

STUDENT_PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "dlcourse"
version = "{version}"
description = "The student package of an open deep-learning course: checks, data, runtime, self-check"
readme = "README.md"
requires-python = ">=3.10"
license = {{ text = "MIT" }}
# lower bounds only (the repository's pyproject.toml [project] dependencies): Colab's preinstalled versions
# (torch 2.11, numpy 2.1, ipywidgets 7.7, ...) satisfy them
dependencies = [
{dependencies}
]

[tool.setuptools]
packages = ["dlcourse"]

[tool.setuptools.package-data]
dlcourse = ["pretrained.json"]   # the published checkpoint's sha256 and URL, when there is one
'''

MIT = """MIT License

Copyright (c) 2026 the authors of the course

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

STUDENT_README = """# Deep learning with PyTorch: the student edition

Lectures and assignments of an open deep-learning course, as Jupyter notebooks. Every assignment
checks your work as you go; your instructor grades it with hidden tests as well.

## How to work

**On Colab** (nothing to install): open a notebook with its link below, then *File → Save a copy in
Drive* and work in your copy. Its first cell installs the course package. For the later units
choose *Runtime → Change runtime type → GPU*.

**On your own machine** (Python 3.10 or newer):

```
python -m venv .venv && . .venv/bin/activate
pip install -e .            # the course package and what the notebooks need
pip install jupyterlab && jupyter lab
```

Each assignment ends with a *Check your work* cell: it reruns a fresh copy of your notebook from top
to bottom, as the grader does, and shows every visible test, passed or failed, and why
(`python -m dlcourse.selfcheck NOTEBOOK.ipynb` does the same in a terminal). Hidden tests run only
when your instructor grades. Do not edit or delete test cells: the grader runs the originals, and the
self-check reports an edited one.

## How to hand in

Hand in the notebook (saved, with your answers) and the files the assignment asks for (experiment 1:
`model.pth`; experiment 2: `final.pth`), as your instructor says: through the course's JupyterHub
(*Assignments → Submit*), or uploaded to your LMS. A copy saved by Colab or a browser ("Copy of
01_backprop.ipynb", "01_backprop (1).ipynb") is recognised.

{pretrained}

## The course

Order, prerequisites, hours and points: [lectures/SYLLABUS.md](lectures/SYLLABUS.md). The Chinese
rendering of every term: [lectures/GLOSSARY.md](lectures/GLOSSARY.md).

{table}

Licence: MIT (see `LICENSE`).
"""


PRETRAINED_PUBLISHED = """## Experiment 2 without a GPU: the 5-epoch checkpoint

Ten epochs of CIFAR-10 take hours on a laptop's CPU. Your instructor trained ResNet20 for the first
{epochs} epochs (learning rate 0.1; test accuracy {acc} after them) and published that checkpoint here:
[`{path}`]({path}) ({megabytes:.1f} MB, SHA-256 `{sha256}`). In section 9 of experiment 2 set
`USE_PRETRAINED = True`: the notebook then calls `pretrained_checkpoint()` from `dlcourse.data`, which

* looks for `{file}` in the course data folder (`~/.cache/dlcourse`, or `$COURSE_DATA_DIR` when it is
  set: where CIFAR-10 goes too; `data_dir()` prints it), and in `checkpoints/` of a clone of this repository;
* when it is in neither, downloads it once into the data folder from
  {url}
* checks its SHA-256 against the one recorded in the course package (`dlcourse/pretrained.json`), and only
  then the run resumes at epoch {epochs} with learning rate 0.01.

Offline, copy `{path}` into the data folder yourself. `python -m dlcourse.data --pretrained` checks it
(so does `sha256sum -c {path}.sha256` in a clone). A file that fails the check is never replaced or
changed: the error names it, the expected and the found sums, and where the right file goes. Say in your
answers that you resumed from it."""

PRETRAINED_MISSING = """## Experiment 2 without a GPU: the 5-epoch checkpoint

The 5-epoch checkpoint of experiment 2 is not published yet: this edition has no `checkpoints/`
folder and `pretrained_checkpoint()` says so. Until your instructor publishes it, train from epoch 0
(on a CPU, Colab's free GPU runtime is the quick way)."""


class PublishError(RuntimeError):
    pass


def _blocks(source: str, begin: str, end: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(re.escape(begin) + r"\n(.*?)" + re.escape(end), source, re.S)]


def private_texts(repo: Path) -> list[tuple[str, str]]:
    """(where, text) for every piece of the source that students must never see: each solution region,
    each hidden-test block, and each hand-written mutant's code."""
    out = []
    for nb_path in sorted((repo / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(str(nb_path), as_version=4)
        for i, cell in enumerate(nb.cells):
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", f"cell {i}")
            if cell.cell_type == "markdown" and cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                if cell.source.strip():
                    out.append((f"{nb_path.parent.name}/{gid} (model answer)", cell.source.strip()))
                continue
            for text in _blocks(cell.source, "### BEGIN SOLUTION", "### END SOLUTION"):
                if text:
                    out.append((f"{nb_path.parent.name}/{gid} (solution)", text))
            for text in _blocks(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"):
                if text:
                    out.append((f"{nb_path.parent.name}/{gid} (hidden test)", text))
        for mutant in load_mutants(nb_path.parent):
            out.append((f"{nb_path.parent.name}/mutant {mutant.name}", mutant.code.strip()))
    return out


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def edition_leaks(dest: Path, repo: Path) -> list[str]:
    """What in ``dest`` should not be there: private folders or files, nbgrader markers, or any solution
    region, model answer, hidden test or mutant of the source (compared with whitespace normalised)."""
    problems = []
    for name in ("solutions", "autograder", "tests", "reports", "submitted", "autograded", "feedback"):
        if (dest / name).exists():
            problems.append(f"{name}/ is in the edition")
    texts = [(where, _normalised(t)) for where, t in private_texts(repo)]
    for path in sorted(p for p in dest.rglob("*") if p.is_file() and ".git" not in p.parts):
        rel = path.relative_to(dest)
        if path.name in ("mutants.py", "equivalent_mutants.txt", "gradebook.db", "nbgrader_config.py"):
            problems.append(f"{rel}: a private file")
            continue
        if path.suffix not in TEXT_SUFFIXES:
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":
            try:
                raw = "\n".join(c.source for c in nbformat.reads(raw, as_version=4).cells)
            except Exception:  # noqa: BLE001 - not a notebook after all: scan its text
                pass
        for marker in HIDDEN_MARKERS:
            if marker in raw:
                problems.append(f"{rel}: holds {marker!r}")
        text = _normalised(raw)
        for where, private in texts:
            if len(private) >= 12 and private in text:
                problems.append(f"{rel}: holds {where}")
    return problems


def _version(repo: Path) -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (repo / "pyproject.toml").read_text(), re.M)
    return match.group(1) if match else "0.0.0"


def student_dependencies(repo: Path) -> str:
    """The student package's dependencies, as TOML list items: the repository's ``[project] dependencies``
    (lower bounds; the grader's exact pins are its ``grader`` extra and never reach the edition)."""
    import tomllib

    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    return "\n".join(f'    "{d}",' for d in deps)


def pretrained_checkpoint_record(checkpoint: Path, repository: Repository) -> dict:
    """What the edition records about the 5-epoch checkpoint ``checkpoint`` (``dlcourse/pretrained.json``),
    after checking that it is one: a dict with ``net`` and ``epoch`` 5 that loads as plain tensors, whose
    sha256 matches its ``.sha256`` when there is one."""
    import torch

    from autograder.pretrain import read_checksum
    from dlcourse.data import PRETRAINED_FILE, sha256_of

    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever it is, it is not a checkpoint to publish
        raise PublishError(f"{checkpoint} does not load as a checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, dict) or "net" not in loaded or loaded.get("epoch") != 5:
        what = f"epoch {loaded.get('epoch')!r}" if isinstance(loaded, dict) else type(loaded).__name__
        raise PublishError(f"{checkpoint} is not a 5-epoch checkpoint of experiment 2 ({what}; expected a dict with "
                           "'net' and 'epoch': 5, as `make pretrain` writes)")
    sha = sha256_of(checkpoint)
    recorded = read_checksum(checkpoint)
    if recorded is not None and recorded != sha:
        raise PublishError(f"{checkpoint} has sha256 {sha}, but {checkpoint.name}.sha256 says {recorded}: the file "
                           "changed after `make pretrain` wrote it; run `make pretrain` again (or delete the .sha256 "
                           "if this file is the one to publish)")
    path = f"checkpoints/{PRETRAINED_FILE}"
    acc = loaded.get("acc")
    return {"format": "dlcourse pretrained checkpoint", "version": 1, "assignment": "09_exp2_cifar10",
            "model": "ResNet20", "file": PRETRAINED_FILE, "path_in_edition": path,
            "url": repository.raw_url(path), "sha256": sha, "bytes": checkpoint.stat().st_size, "epochs": 5,
            "test_acc": float(acc) if isinstance(acc, (int, float)) else None}


def publish(course, dest: Path, *, force: bool = False, check_drift: bool = True, pretrained: Path | None = None,
            log=print) -> list[str]:
    """Write the student edition into ``dest``; returns what was written. Refuses when ``assignments/``
    drifted from ``solutions/`` (``check_drift``: a fresh release, about a minute), when ``dest`` holds
    other files (unless ``force``), or on any leak. ``pretrained``: the 5-epoch checkpoint to publish
    (default ``build/pretrain/resnet20_epoch5.pth``, when ``make pretrain`` wrote it; one line through
    ``log`` says whether it was published)."""
    import json

    from autograder.colab import stamp_repository
    from autograder.pretrain import DEFAULT_OUT, checksum_path
    from autograder.release import check_release

    repo = course.repo
    dest = Path(dest).resolve()
    repository = Repository.from_pyproject(repo)
    checkpoint = Path(pretrained) if pretrained is not None else repo / DEFAULT_OUT
    if pretrained is not None and not checkpoint.is_file():
        raise PublishError(f"the checkpoint to publish, {checkpoint}, does not exist")
    record = pretrained_checkpoint_record(checkpoint, repository) if checkpoint.is_file() else None
    if dest == repo or repo in dest.parents:
        raise PublishError(f"{dest} is inside the source repository: publish next to it, not into it")
    busy = dest.exists() and any(p.name != ".git" for p in dest.iterdir())
    if busy and not force:
        raise PublishError(f"{dest} is not empty: pass --force to replace its contents (its .git is kept)")
    drift = stamp_repository(repo, check=True) + check_release(course) if check_drift else []
    if drift:
        raise PublishError("assignments/ is not what `make release` generates; run it first:\n  " + "\n  ".join(drift))
    if busy:
        for p in dest.iterdir():
            if p.name != ".git":
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", "mutants.py", "equivalent_mutants.txt",
                                  "pretrained.json")
    shutil.copytree(repo / "lectures", dest / "lectures", ignore=skip)
    shutil.copytree(repo / "assignments", dest / "assignments", ignore=skip)
    shutil.copytree(repo / "dlcourse", dest / "dlcourse", ignore=skip)
    (dest / "pyproject.toml").write_text(STUDENT_PYPROJECT.format(version=_version(repo),
                                                              dependencies=student_dependencies(repo)))
    (dest / "LICENSE").write_text(MIT)
    if record is not None:
        (dest / "checkpoints").mkdir()
        shutil.copyfile(checkpoint, dest / record["path_in_edition"])
        checksum_path(dest / record["path_in_edition"]).write_text(f"{record['sha256']}  {record['file']}\n")
        (dest / "dlcourse" / "pretrained.json").write_text(json.dumps(record, indent=1) + "\n")
        acc = "unknown" if record["test_acc"] is None else f"{record['test_acc']:.3f}"
        pretrained_text = PRETRAINED_PUBLISHED.format(**record, acc=acc, path=record["path_in_edition"],
                                                      megabytes=record["bytes"] / 1e6)
        log(f"published the 5-epoch checkpoint {checkpoint} as {record['path_in_edition']} (sha256 "
            f"{record['sha256']}, {record['bytes']:,} bytes; download URL {record['url']})")
    else:
        pretrained_text = PRETRAINED_MISSING
        log(f"no 5-epoch checkpoint at {checkpoint} (`make pretrain` writes it, on a CUDA GPU with the real CIFAR-10): "
            "the edition says it is not published yet")
    table = readme_table(repo, repository)
    (dest / "README.md").write_text(STUDENT_README.format(table=table, pretrained=pretrained_text))
    (dest / ".gitignore").write_text(".venv/\n__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\ndata/\n*.pth\n"
                                     "!/checkpoints/resnet20_epoch5.pth\n")
    leaks = edition_leaks(dest, repo)
    if leaks:
        raise PublishError("the edition would leak private material:\n  " + "\n  ".join(leaks))
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
