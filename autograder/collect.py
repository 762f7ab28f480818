"""Take submissions from a folder or a zip into ``submitted/<student>/<assignment>/``.

Accepted layouts (inside the folder or the zip): ``<student>/<assignment>/<files>``, or, with
``--assignment A``, ``<student>/<files>``, or nbgrader's exchange inbox (``<exchange>/<course>/inbound``,
entries ``<student>+<assignment>+<time>[+<random>]``: the latest of each student is taken, and only from
an entry that student's Unix account owns). Names are checked, so a crafted zip cannot write outside
``submitted/`` (no ``..``, no absolute paths, no links).

Each submission's time (its ``timestamp.txt``, recorded in ``reports/submission_times.json``, see
``autograder/duedates.py``) comes from a trusted source only, never from the student's files: the time
given for it in ``--submitted-at FILE.csv`` (``student,assignment,time``, e.g. an LMS's export), else,
for an exchange entry, its last change on disk (the latest ctime of the entry and everything in it,
which no user can set back), else when this command received it. Each submission's time and its
source are printed; a submission whose only time is its collection, after its due date, is named in a
warning (it would be late only because it was collected late).

A notebook handed in under another name than the release's is renamed when there is no doubt which
it is: what Colab, browsers and LMSs make of ``01_backprop.ipynb`` ("Copy of 01_backprop.ipynb",
"01_backprop (1).ipynb", "01_backprop.ipynb.json", "01_backprop copy.ipynb"), or the only notebook of
a one-notebook assignment. Every rename, and every notebook that cannot be placed, is reported by name.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from autograder import duedates
from autograder.course import Course

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EXCHANGE_ENTRY = re.compile(r"^([^+/]+)\+([^+/]+)\+(.+)$")   # nbgrader submit's <student>+<assignment>+<time>[+<random>]
RECEIVED = "received by collect"


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


def last_change(folder: Path) -> datetime:
    """The latest ctime of ``folder`` and everything in it: when its content last changed on disk.

    A ctime is set by the kernel to the current time at every change (a write, a rename, a link, a
    chmod, utime itself), so a user can move it forward but never back."""
    latest = folder.lstat().st_ctime_ns
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            latest = max(latest, os.lstat(os.path.join(parent, name)).st_ctime_ns)
    return datetime.fromtimestamp(latest / 1e9, timezone.utc)


def _owner(path: Path) -> str:
    uid = path.lstat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def is_exchange_inbox(folder: Path) -> bool:
    entries = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bool(entries) and all(EXCHANGE_ENTRY.match(p.name) for p in entries)


def _exchange_entries(inbox: Path) -> list[tuple[str, str, Path, datetime, str]]:
    """The latest entry per student and assignment (by when it last changed, not by its name's time,
    which the student wrote), from entries the student's own account owns."""
    latest: dict[tuple[str, str], tuple[datetime, Path]] = {}
    older: dict[tuple[str, str], int] = {}
    for entry in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.is_symlink()):
        student, assignment, _ = EXCHANGE_ENTRY.match(entry.name).groups()
        if not SAFE_NAME.match(student):
            print(f"skipped exchange entry {entry.name!r}: student ids may hold letters, digits, '.', '_' and '-' only")
            continue
        if _owner(entry) != student:
            print(f"skipped exchange entry {entry.name!r}: it names {student!r} but {_owner(entry)!r} owns it")
            continue
        when = last_change(entry)
        key = (student, assignment)
        if key in latest:
            older[key] = older.get(key, 0) + 1
            if when <= latest[key][0]:
                continue
        latest[key] = (when, entry)
    for (student, assignment), n in sorted(older.items()):
        print(f"{student}/{assignment}: {n} earlier hand-in(s) in the exchange not taken")
    return [(s, a, entry, when, f"exchange entry {entry.name!r}, its last change on disk")
            for (s, a), (when, entry) in sorted(latest.items())]


def _lms_assignment(course: Course, folder: Path) -> str:
    """The one assignment whose release notebooks the files of an LMS download stand for."""
    stems = {notebook_stem(p.name) for p in folder.rglob("*") if p.is_file()} - {None}
    matches = [a for a in course.assignments()
               if stems & {p.stem.lower() for p in (course.release_dir / a).glob("*.ipynb")}]
    if len(matches) != 1:
        raise ValueError("an LMS download holds one assignment: say which with --assignment "
                         f"({'its notebooks match ' + ', '.join(matches) if matches else 'no notebook in it is named as a release is'})")
    return matches[0]


def collect(course: Course, source: Path, assignment: str | None = None,
            submitted_at: Path | None = None, lms_kind: str | None = None,
            roster: Path | None = None) -> list[tuple[str, str]]:
    """Copy submissions in; returns the (student, assignment) pairs collected.

    ``submitted_at``: a CSV of ``student,assignment,time`` from a trusted source (an LMS's export).
    ``lms_kind``: "canvas" or "moodle" for that LMS's download (default: recognised from its file
    names, see ``autograder/lms.py``); ``roster``: a CSV ``lms_id,student_id`` for its student ids."""
    from autograder import lms
    assignments = set(course.assignments())
    schedule = duedates.course_schedule(course)
    given = duedates.read_times_csv(submitted_at, schedule) if submitted_at else {}
    received = datetime.now(timezone.utc)
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

        found: list[tuple[str, str, Path, datetime, str]] = []   # student, assignment, folder, time, source
        kind = lms_kind or (None if source.is_dir() and is_exchange_inbox(root) else lms.detect(root))
        if kind:
            root = lms.to_student_folders(root, kind, Path(tmp) / "lms-students",
                                          lms.read_roster(roster) if roster else None)
            root.mkdir(exist_ok=True)
            assignment = assignment or _lms_assignment(course, root)
            print(f"a {kind.capitalize()} download of {assignment}")
        if not kind and source.is_dir() and is_exchange_inbox(root):
            found = [f for f in _exchange_entries(root) if not assignment or f[1] == assignment]
        else:
            for student_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if not SAFE_NAME.match(student_dir.name):
                    print(f"skipped {student_dir.name!r}: student ids may hold letters, digits, '.', '_' and '-' only")
                    continue
                pairs = ([(assignment, student_dir)] if assignment and any(student_dir.glob("*.ipynb"))
                         else [(a.name, a) for a in student_dir.iterdir() if a.is_dir()])
                found += [(student_dir.name, name, folder, received, RECEIVED) for name, folder in pairs]

        collected, times, late_by_collection = [], {}, []
        for student, name, folder, when, where in found:
            if name not in assignments:
                print(f"skipped {student}/{name}: no such assignment (known: {', '.join(sorted(assignments))})")
                continue
            if (student, name) in given:
                when, where = given[(student, name)]
                if when > received:
                    print(f"warning: {student}/{name}: {where} gives {duedates.stamp(when)}, after it was "
                          f"received ({duedates.stamp(received)}): check that file's time zone")
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
            # nbgrader reads the submission time from timestamp.txt: the student's own is never kept
            if (dest / "timestamp.txt").exists():
                print(f"{student}/{name}: its own timestamp.txt was replaced")
                (dest / "timestamp.txt").unlink()
            due = schedule.due.get(name)
            print(f"{student}/{name}: submitted {duedates.stamp(when)}, {where} "
                  f"({duedates.describe_lateness(when, due)})")
            if where == RECEIVED and due is not None and when > due:
                late_by_collection.append(f"{student}/{name}")
            times[(student, name)] = (when, where, duedates.files_hash(dest))
            (dest / "timestamp.txt").write_text(duedates.stamp(when))
            collected.append((student, name))
    if times:
        duedates.record_times(course, times)
    unused = sorted(set(given) - set(times))
    if unused:
        print(f"{submitted_at.name}: {len(unused)} row(s) name no submission collected now, e.g. "
              + ", ".join(f"{s}/{a}" for s, a in unused[:5]))
    if late_by_collection:
        print(f"warning: {len(late_by_collection)} submission(s) have no time but their collection, which is after "
              f"the due date, so they count as late: {', '.join(late_by_collection)}. If they were handed in "
              "earlier, collect again with --submitted-at FILE.csv (student,assignment,time, e.g. the LMS's export)")
    return collected
