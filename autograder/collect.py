"""Take submissions from a folder or a zip into ``submitted/<student>/<assignment>/``.

Accepted layouts (inside the folder or the zip): ``<student>/<assignment>/<files>``, or, with
``--assignment A``, ``<student>/<files>``. Each submission's ``timestamp.txt`` is the time this
command received it (a student's own is replaced). Names are checked, so a crafted zip cannot write
outside ``submitted/`` (no ``..``, no absolute paths, no links).

A notebook handed in under another name than the release's is renamed when there is no doubt which
it is: what Colab, browsers and LMSs make of ``01_backprop.ipynb`` ("Copy of 01_backprop.ipynb",
"01_backprop (1).ipynb", "01_backprop.ipynb.json", "01_backprop copy.ipynb"), or the only notebook of
a one-notebook assignment. Every rename, and every notebook that cannot be placed, is reported by name.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from autograder.course import Course

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def notebook_stem(filename: str) -> str | None:
    """The release notebook a handed-in file name stands for (lower case), or None if not a notebook:
    "Copy of 01_backprop (2).ipynb.json" -> "01_backprop"."""
    name = filename.strip()
    if name.lower().endswith(".ipynb.json"):
        name = name[:-len(".json")]
    if not name.lower().endswith(".ipynb"):
        return None
    stem = name[:-len(".ipynb")].strip()
    stem = re.sub(r"^(?:copy[ _]of[ _]+)+", "", stem, flags=re.IGNORECASE)      # Colab, Google Drive
    stem = re.sub(r"(?:[ _-]*\(\d+\))+$", "", stem)                              # browsers: "X (1)"
    stem = re.sub(r"[ _-]copy(?:[ _-]\d+)?$", "", stem, flags=re.IGNORECASE)    # macOS: "X copy 2"
    return stem.strip().lower()


def place_notebooks(folder: Path, expected: list[str], label: str) -> list[str]:
    """Rename the notebooks in ``folder`` to the release's names where there is no doubt; report the rest."""
    notes = []
    present = {p.name for p in folder.iterdir() if p.is_file()}
    others = sorted(n for n in present if n not in expected and notebook_stem(n) is not None)
    by_stem = {Path(e).stem.lower(): e for e in expected}
    for name in list(others):
        target = by_stem.get(notebook_stem(name))
        if target is None:
            continue
        others.remove(name)
        if target in present:
            notes.append(f"{label}: {name!r} handed in beside {target!r}: {target!r} is graded, {name!r} kept but not")
            continue
        (folder / name).rename(folder / target)
        present = (present - {name}) | {target}
        notes.append(f"{label}: {name!r} renamed to {target!r}")
    missing = [e for e in expected if e not in present]
    if len(expected) == 1 and missing and len(others) == 1:
        (folder / others[0]).rename(folder / expected[0])
        notes.append(f"{label}: {others[0]!r}, its only notebook, renamed to {expected[0]!r}")
        others, missing = [], []
    for name in others:
        notes.append(f"{label}: cannot tell which notebook {name!r} is (expected {', '.join(expected)}): not graded")
    for name in missing:
        notes.append(f"{label}: no {name!r} handed in: it scores zero")
    return notes


def _safe_extract(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts or (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"{archive.name}: refusing unsafe entry {info.filename!r}")
        zf.extractall(dest)


def collect(course: Course, source: Path, assignment: str | None = None) -> list[tuple[str, str]]:
    """Copy submissions in; returns the (student, assignment) pairs collected."""
    assignments = set(course.assignments())
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file() and zipfile.is_zipfile(source):
            _safe_extract(source, Path(tmp))
            root = Path(tmp)
            entries = [p for p in root.iterdir() if not p.name.startswith(("__MACOSX", "."))]
            if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in assignments \
                    and not any(c.name in assignments for c in entries[0].iterdir() if c.is_dir()):
                root = entries[0]  # a zip of one wrapping folder
        elif source.is_dir():
            root = source
        else:
            raise ValueError(f"{source} is neither a folder nor a zip file")

        collected = []
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
        for student_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            student = student_dir.name
            if not SAFE_NAME.match(student):
                print(f"skipped {student!r}: student ids may hold letters, digits, '.', '_' and '-' only")
                continue
            pairs = ([(assignment, student_dir)] if assignment and any(student_dir.glob("*.ipynb"))
                     else [(a.name, a) for a in student_dir.iterdir() if a.is_dir()])
            for name, folder in pairs:
                if name not in assignments:
                    print(f"skipped {student}/{name}: no such assignment (known: {', '.join(sorted(assignments))})")
                    continue
                dest = course.submitted(student, name)
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(folder, dest, symlinks=True,
                                ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
                for link in [p for p in dest.rglob("*") if p.is_symlink()]:
                    link.unlink()
                expected = sorted(p.name for p in (course.release_dir / name).glob("*.ipynb"))
                for note in place_notebooks(dest, expected, f"{student}/{name}") if expected else []:
                    print(note)
                # when the submission was received, as this command saw it: a timestamp.txt the student's
                # files carried is replaced (nbgrader reads this file for late penalties)
                if (dest / "timestamp.txt").exists():
                    print(f"{student}/{name}: its own timestamp.txt was replaced by the collection time")
                (dest / "timestamp.txt").write_text(stamp)
                collected.append((student, name))
    return collected
