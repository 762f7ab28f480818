"""Due dates, the late-penalty policy, and the submission times that decide lateness.

**Where due dates live: ``schedule.toml`` in the course root**, which for the instructor's course is the
repository (the committed file beside ``nbgrader_config.py``); a course root kept apart (``--course DIR``,
the demo, the tests) has its own or none. A TOML file rather than a table in ``nbgrader_config.py``:
it is data, not code (read without running anything, checked here with errors that name the file and
the key), it has real date-times with an offset, and every reader takes the same file:
``python -m autograder`` (collect warns with it, autograde and export write it into the gradebook) and
nbgrader's own apps, through :class:`SchedulePenalty` (configured in ``nbgrader_config.py``), so plain
``nbgrader autograde`` and the formgrader's button penalise the same way. The gradebook's
``Assignment.duedate`` is a copy, rewritten from the file before each autograde and export.

No ``schedule.toml``: nothing changes (no due date is written or cleared, nothing is penalised). With
one, it is authoritative: an assignment it gives no due date has none in the gradebook.

**The policy** (``[late_penalty] method``), applied by nbgrader per notebook
(``SubmittedNotebook.late_submission_penalty``): ``"none"``, ``"zero"`` (a late notebook scores 0),
``"per_day"`` (``percent_per_day`` of the notebook's score per started day late, at most
``max_percent``). An extension given in the formgrader moves that student's due date. Penalties are
recomputed from the current scores before each autograde and export, so written answers graded by hand
later, or a due date moved, are penalised as configured without regrading.

**Submission times.** nbgrader reads a submission's time from its ``timestamp.txt``, which only
``collect`` may write: the time comes from a trusted source (when ``collect`` received it, an LMS's
export given with ``--submitted-at``, or an exchange entry's last change on disk) and is recorded with a
hash of the submission's files in ``<root>/reports/submission_times.json``. Grading hands nbgrader that
recorded time, and none at all for a submission whose files are not those collect recorded (one copied
in by ``nbgrader collect``, whose ``timestamp.txt`` the student's own ``nbgrader submit`` wrote).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path

from nbgrader.plugins import LateSubmissionPlugin

SCHEDULE_FILE = "schedule.toml"
TIMES_FILE = "submission_times.json"
METHODS = ("none", "zero", "per_day")
STAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"   # what nbgrader writes and reads in timestamp.txt


class ScheduleError(ValueError):
    """schedule.toml or a times file says something that cannot be applied."""


@dataclass(frozen=True)
class Policy:
    method: str = "none"
    percent_per_day: float = 0.0
    max_percent: float = 100.0

    def penalty(self, score: float | None, seconds_late: float) -> float | None:
        """Points taken from a notebook that scored ``score`` and came ``seconds_late`` after its due
        date; None when it is not late or the policy takes nothing. Never below 0 or above the score."""
        if seconds_late <= 0 or self.method == "none":
            return None
        score = max(0.0, float(score or 0.0))
        if self.method == "zero":
            return score
        days = math.ceil(seconds_late / 86400)
        return min(score, score * min(self.max_percent, self.percent_per_day * days) / 100)

    def describe(self) -> str:
        if self.method == "per_day":
            return f"{self.percent_per_day:g}% per started day late, at most {self.max_percent:g}%"
        return {"none": "no penalty", "zero": "a late notebook scores 0"}[self.method]


@dataclass
class Schedule:
    path: Path | None = None                                  # None: the course has no schedule.toml
    due: dict[str, datetime] = field(default_factory=dict)   # assignment -> due date, aware, UTC
    policy: Policy = field(default_factory=Policy)
    zone: tzinfo | None = None                                # for times written without an offset

    def aware(self, when: datetime, what: str) -> datetime:
        """``when`` in UTC; a time without an offset is read in the schedule's ``timezone``."""
        if when.tzinfo is None:
            if self.zone is None:
                raise ScheduleError(f"{what}: {when.isoformat()} has no time zone: give an offset "
                                    f"(+08:00, Z) or set timezone = \"Area/City\" in {SCHEDULE_FILE}")
            when = when.replace(tzinfo=self.zone)
        return when.astimezone(timezone.utc)


def schedule_path(root: str | os.PathLike) -> Path:
    return Path(root) / SCHEDULE_FILE


def load_schedule(root: str | os.PathLike, assignments: list[str] | None = None) -> Schedule:
    """The schedule of the course root ``root`` (an empty one when it has no schedule.toml); with
    ``assignments``, a due date for any other name is an error (a typo would silently never apply)."""
    path = schedule_path(root)
    if not path.is_file():
        return Schedule()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ScheduleError(f"{path}: {err}") from None
    unknown = set(data) - {"timezone", "late_penalty", "due"}
    if unknown:
        raise ScheduleError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: timezone, "
                            "[late_penalty], [due])")
    schedule = Schedule(path=path)
    if "timezone" in data:
        try:
            schedule.zone = zoneinfo.ZoneInfo(str(data["timezone"]))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"{path}: timezone {data['timezone']!r} is not a time zone name "
                                "such as \"Asia/Shanghai\"") from None
    late = data.get("late_penalty", {})
    extra = set(late) - {"method", "percent_per_day", "max_percent"}
    if extra or late.get("method", "none") not in METHODS:
        raise ScheduleError(f"{path}: [late_penalty] takes method = {' | '.join(map(repr, METHODS))}, "
                            f"percent_per_day and max_percent (got {dict(late)})")
    try:
        policy = Policy(late.get("method", "none"), float(late.get("percent_per_day", 0)),
                        float(late.get("max_percent", 100)))
    except (TypeError, ValueError):
        raise ScheduleError(f"{path}: [late_penalty] percentages must be numbers (got {dict(late)})") from None
    if policy.method == "per_day" and not (0 < policy.percent_per_day <= 100 and 0 < policy.max_percent <= 100):
        raise ScheduleError(f"{path}: per_day needs 0 < percent_per_day <= 100 and 0 < max_percent <= 100")
    schedule.policy = policy
    for name, when in data.get("due", {}).items():
        if assignments is not None and name not in assignments:
            raise ScheduleError(f"{path}: [due] names {name!r}, which is no assignment "
                                f"(known: {', '.join(assignments)})")
        if not isinstance(when, datetime):
            kind = "a date without a time" if isinstance(when, date) else type(when).__name__
            raise ScheduleError(f"{path}: [due] {name} is {kind}: write a date and time, "
                                "e.g. 2027-03-01T23:59:00+08:00")
        schedule.due[name] = schedule.aware(when, f"{path}: [due] {name}")
    return schedule


def course_schedule(course) -> Schedule:
    return load_schedule(course.root, course.assignments())


class SchedulePenalty(LateSubmissionPlugin):
    """nbgrader's late-penalty plugin with the policy of the course root's schedule.toml (no file: none)."""

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float):
        section = self.config.get("CourseDirectory", {})
        policy = load_schedule(section.get("root") or os.getcwd()).policy
        self.log.info("Late submission penalty: %s", policy.describe())
        return policy.penalty(score, total_seconds_late)


def _utc_naive(when: datetime | None) -> datetime | None:
    """How nbgrader's gradebook stores a time: naive, in UTC."""
    return None if when is None else when.astimezone(timezone.utc).replace(tzinfo=None)


def apply_schedule(course, assignments: list[str] | None = None, students: list[str] | None = None) -> list[str]:
    """Write the due dates into the gradebook and recompute the late penalties of the submissions
    there (of these assignments and students only, when given). Returns what changed, in words.
    A course without schedule.toml is left exactly as it is."""
    import warnings

    from nbgrader.api import Gradebook

    schedule = course_schedule(course)
    if schedule.path is None:
        return []
    notes = []
    with warnings.catch_warnings(), Gradebook(course.gradebook_url()) as gb:
        warnings.simplefilter("ignore")
        chosen = [a for a in gb.assignments if not assignments or a.name in assignments]
        for a in chosen:
            want = _utc_naive(schedule.due.get(a.name))
            if a.duedate != want:
                notes.append(f"{a.name}: due date {'cleared' if want is None else f'set to {want} UTC'} "
                             f"(was {a.duedate or 'none'})")
                a.duedate = want
        gb.db.commit()
        for a in chosen:
            for sub in a.submissions:
                if students and sub.student.id not in students:
                    continue
                late = sub.total_seconds_late
                for nb in sub.notebooks:
                    penalty = schedule.policy.penalty(nb.score, late)
                    if nb.late_submission_penalty != penalty:
                        nb.late_submission_penalty = penalty
        gb.db.commit()
    return notes


# -- submission times ----------------------------------------------------------------------
def files_hash(folder: Path) -> str:
    """SHA-256 over the relative path and bytes of every file in ``folder`` but its timestamp.txt."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = str(path.relative_to(folder))
        if rel != "timestamp.txt":
            h.update(rel.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def stamp(when: datetime) -> str:
    """``when`` as nbgrader's timestamp.txt holds it (UTC)."""
    return when.astimezone(timezone.utc).strftime(STAMP_FORMAT)


def _times_path(course) -> Path:
    return course.reports_dir / TIMES_FILE


def load_times(course) -> dict:
    try:
        return json.loads(_times_path(course).read_text())
    except (OSError, ValueError):
        return {}


def record_times(course, entries: dict[tuple[str, str], tuple[datetime, str, str]]) -> None:
    """Record ``(student, assignment) -> (time, where it came from, files_hash)`` beside earlier ones."""
    times = load_times(course)
    for (student, assignment), (when, where, digest) in entries.items():
        times[f"{assignment}/{student}"] = {"time": when.astimezone(timezone.utc).isoformat(),
                                            "source": where, "files": digest}
    path = _times_path(course)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(times, indent=1, sort_keys=True))
    tmp.replace(path)


def recorded_time(course, student: str, assignment: str, times: dict | None = None) -> datetime | None:
    """The time collect recorded for this submission, if its files are still the ones it recorded."""
    entry = (load_times(course) if times is None else times).get(f"{assignment}/{student}")
    folder = course.submitted(student, assignment)
    if not entry or entry.get("files") != files_hash(folder):
        return None
    return datetime.fromisoformat(entry["time"])


def read_times_csv(path: Path, schedule: Schedule) -> dict[tuple[str, str], tuple[datetime, str]]:
    """``student,assignment,time`` rows (an LMS's export; a header row is allowed) ->
    ``(student, assignment) -> (UTC time, "FILE line N")``. Times are ISO 8601 (``2027-03-01T23:59:00+08:00``,
    ``2027-03-01 15:59:00Z``); one without an offset is read in schedule.toml's ``timezone``."""
    out = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not any(row) or row[0].startswith("#") or (n == 1 and row[0].lower() in ("student", "student_id")):
                continue
            if len(row) != 3:
                raise ScheduleError(f"{path} line {n}: expected student,assignment,time (got {row})")
            student, assignment, text = row
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise ScheduleError(f"{path} line {n}: {text!r} is not an ISO 8601 time "
                                    "(e.g. 2027-03-01T23:59:00+08:00)") from None
            out[(student, assignment)] = (schedule.aware(when, f"{path} line {n}"), f"{path.name} line {n}")
    return out


def describe_lateness(when: datetime, due: datetime | None) -> str:
    if due is None:
        return "no due date"
    seconds = (when - due).total_seconds()
    return "on time" if seconds <= 0 else f"late by {timedelta(seconds=math.ceil(seconds))}"
