"""LMS download archives (Canvas, Moodle) turned into the ``<student>/<files>`` layout ``collect`` takes.

What an instructor downloads from the LMS ("Download submissions"), unpacked:

- **Canvas**: one flat folder; each file is ``<name>_<user id>_<attachment id>_<file as uploaded>``,
  with ``_LATE`` after the name when Canvas counts it late, and ``-1``, ``-2`` before the extension
  for a re-upload (``doejane_LATE_4021_98765_Copy of 01_backprop-1.ipynb``).
- **Moodle**: one folder per submission, ``<Full Name>_<participant id>_assignsubmission_file_``,
  holding the files as uploaded (or, with "download in folders" off, the same prefix on each file);
  ``..._assignsubmission_onlinetext_`` folders hold online text, which is not graded.

File names are parsed by nbgrader's own ``FileNameCollectorPlugin`` (the parser of
``nbgrader zip_collect``) with the patterns below; the unpacking stays ``collect``'s, which refuses
unsafe archive entries. The student id is the LMS's numeric id, or, with a roster (a CSV with
columns ``lms_id,student_id``), the course's id for it; an LMS id missing from a given roster is
reported and skipped. The names an LMS puts in file names are never used as ids (they are neither
unique nor safe). Every file that matches no pattern is reported by name.
"""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

CANVAS = (r"^(?P<last_name>[A-Za-z0-9-]+?)(?P<late>_LATE)?_(?P<student_id>\d+)_(?P<attachment_id>\d+)_"
          r"(?P<file_id>[^/]+)$")
MOODLE = (r"^(?P<first_name>[^/_][^/]*?)_(?P<student_id>\d+)_assignsubmission_(?P<plugin>file|onlinetext)_"
          r"(?:/(?P<file_id>[^/]+)|(?P<flat_file_id>[^/]+))?$")
PATTERNS = {"canvas": CANVAS, "moodle": MOODLE}
#: what an LMS makes of a re-upload: "01_backprop-1.ipynb" (Canvas)
REUPLOAD = re.compile(r"-\d+(?=\.ipynb(?:\.json)?$)", re.IGNORECASE)


def _entries(root: Path) -> list[str]:
    """Every file under ``root`` as a relative POSIX path (folders of Moodle included as their files)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and "__MACOSX" not in p.parts)


def _parser(kind: str):
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin

    return FileNameCollectorPlugin(named_regexp=PATTERNS[kind], valid_ext=[".ipynb", ".json", ".py", ".pth", ".csv",
                                                                           ".txt", ".npz", ".pt", ".html", ".png"])


def _match(kind: str, relative: str) -> dict | None:
    match = re.match(PATTERNS[kind], relative)
    return match.groupdict() if match else None


def detect(root: Path) -> str | None:
    """"canvas" or "moodle" when most files under ``root`` are named as that LMS names them, else None."""
    entries = _entries(root)
    if not entries:
        return None
    for kind in PATTERNS:
        if sum(_match(kind, e) is not None for e in entries) * 2 > len(entries):
            return kind
    return None


def read_roster(path: Path) -> dict[str, str]:
    """LMS id -> the course's student id, from a CSV with columns lms_id,student_id."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"lms_id", "student_id"} <= set(rows[0]):
        raise ValueError(f"{path}: a roster needs the columns lms_id,student_id (found {', '.join(rows[0])})")
    return {r["lms_id"].strip(): r["student_id"].strip() for r in rows if r.get("lms_id") and r.get("student_id")}


def to_student_folders(root: Path, kind: str, dest: Path, roster: dict[str, str] | None = None,
                       log=print) -> Path:
    """Copy an unpacked ``kind`` download from ``root`` to ``dest/<student>/<file>``; returns ``dest``."""
    parser = _parser(kind)
    found = []
    for relative in _entries(root):
        info = parser.collect(relative) if Path(relative).suffix in parser.valid_ext else None
        if info is None:
            log(f"{kind}: {relative!r} is not named as {kind.capitalize()} names submissions: not collected")
        elif info.get("plugin") == "onlinetext":
            log(f"{kind}: {relative!r} is online text, not a file: not collected")
        elif info.get("file_id") or info.get("flat_file_id"):
            found.append((relative, info))
    # oldest first, so that of two uploads of one file the later is kept (Canvas numbers attachments in order)
    found.sort(key=lambda item: (int(item[1].get("attachment_id") or 0), item[0]))
    from autograder.collect import SAFE_NAME, notebook_stem

    kept: dict[tuple[str, str], Path] = {}    # (student, the notebook it stands for) -> the file kept
    for relative, info in found:
        lms_id = info["student_id"]
        student = roster.get(lms_id) if roster is not None else lms_id
        if student is None:
            log(f"{kind}: {relative!r}: LMS id {lms_id} is not in the roster: not collected")
            continue
        if not SAFE_NAME.match(student):
            log(f"{kind}: {relative!r}: the roster's student id {student!r} may hold letters, digits, '.', '_' and "
                "'-' only: not collected")
            continue
        cleaned = REUPLOAD.sub("", info.get("file_id") or info.get("flat_file_id"))
        target = dest / student / cleaned
        key = (student, notebook_stem(cleaned) or cleaned)
        if key in kept:
            log(f"{kind}: {relative!r}: {student} uploaded {key[1]!r} more than once: only this, the latest, is kept")
            kept[key].unlink()
        kept[key] = target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
        late = " (the LMS marks it late)" if info.get("late") else ""
        log(f"{kind}: {relative!r} -> {student}/{cleaned}{late}")
    return dest
