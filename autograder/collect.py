"""Take submissions from a folder or a zip into ``submitted/<student>/<assignment>/``.

Accepted layouts (inside the folder or the zip): ``<student>/<assignment>/<files>``, or, with
``--assignment A``, ``<student>/<files>``. Each submission's ``timestamp.txt`` is the time this
command received it (a student's own is replaced). Names are checked, so a crafted zip cannot write
outside ``submitted/`` (no ``..``, no absolute paths, no links).
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
                # when the submission was received, as this command saw it: a timestamp.txt the student's
                # files carried is replaced (nbgrader reads this file for late penalties)
                if (dest / "timestamp.txt").exists():
                    print(f"{student}/{name}: its own timestamp.txt was replaced by the collection time")
                (dest / "timestamp.txt").write_text(stamp)
                collected.append((student, name))
    return collected
