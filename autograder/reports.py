"""Grades out of the gradebook: the CSV export, the per-test item analysis and a score table."""
from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from autograder.course import Course


@dataclass
class ItemStats:
    assignment: str
    notebook: str
    test: str
    points: float
    passed: int
    submissions: int

    @property
    def rate(self) -> float:
        return self.passed / self.submissions if self.submissions else 0.0


def export_grades(course: Course, dest: Path) -> Path:
    """``nbgrader export`` to ``dest`` (CSV, one row per student per assignment), plus a column
    ``pending_written_points``: the points of written answers nobody has graded yet (their score
    counts as 0 in ``score`` until someone grades them in the formgrader), and the extra grades of
    ``evaluate`` (``test_accuracy``, ``heldout_r2``; empty where it measured nothing). The due dates of
    ``schedule.toml`` and the late penalties of the current scores are written into the gradebook
    first (``autograder/duedates.py``), so the ``duedate``, ``late_submission_penalty`` and ``score``
    columns follow it."""
    from autograder.duedates import apply_schedule

    apply_schedule(course)
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = course.nbgrader("export", f"--to={dest}")
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader export failed:\n{proc.stderr[-2000:]}")
    from autograder import evaluate

    pending = pending_manual(course)
    measured = evaluate.recorded(course)
    with dest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0].keys()) if rows else ["assignment", "student_id"]
    with dest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields + ["pending_written_points"] + evaluate.metrics())
        w.writeheader()
        for row in rows:
            key = (row.get("assignment"), row.get("student_id"))
            row["pending_written_points"] = f"{pending.get(key, 0.0):g}"
            for metric in evaluate.metrics():
                value = measured.get(key, {}).get(metric)
                row[metric] = "" if value is None else f"{value:.4f}"
            w.writerow(row)
    return dest


def pending_manual(course: Course) -> dict[tuple[str, str], float]:
    """(assignment, student) -> points of written answers still to be graded by hand (absent: none)."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(course.sqlite_url()) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                points = sum(g.max_score for nb in sub.notebooks for g in nb.grades
                             if g.cell.cell_type != "code" and g.needs_manual_grade)
                if points:
                    out[(assignment.name, sub.student.id)] = points
    return out


def scores(course: Course) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(assignment, student) -> (autograded score, autograded max, needs-manual points)."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(course.sqlite_url()) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                auto = auto_max = manual = 0.0
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        if grade.cell.cell_type == "code":
                            auto += grade.score or 0.0
                            auto_max += grade.max_score
                        else:
                            manual += grade.max_score
                out[(assignment.name, sub.student.id)] = (auto, auto_max, manual)
    return out


def late_penalties(course: Course) -> dict[tuple[str, str], tuple[float, float]]:
    """(assignment, student) -> (seconds late, points taken) for each late submission (absent: on time)."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(course.sqlite_url()) as gb:
        for assignment in gb.assignments:
            if assignment.duedate is None:
                continue
            for sub in assignment.submissions:
                if sub.total_seconds_late > 0:
                    out[(assignment.name, sub.student.id)] = (sub.total_seconds_late, sub.late_submission_penalty)
    return out


def cell_scores(course: Course, assignment: str, student: str) -> dict[str, tuple[float, float]]:
    """grade_id -> (score, max) for each autograded test of one submission."""
    from nbgrader.api import Gradebook

    with Gradebook(course.sqlite_url()) as gb:
        sub = gb.find_submission(assignment, student)
        return {g.name: (g.score or 0.0, g.max_score) for nb in sub.notebooks for g in nb.grades
                if g.cell.cell_type == "code"}


def item_analysis(course: Course) -> list[ItemStats]:
    """For each autograded test cell: how many submissions got its full points."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(course.sqlite_url()) as gb:
        for assignment in gb.assignments:
            for notebook in assignment.notebooks:
                for cell in notebook.grade_cells:
                    if cell.cell_type != "code":
                        continue
                    grades = [g for g in cell.grades]
                    passed = sum(1 for g in grades if (g.score or 0) >= g.max_score > 0)
                    rows.append(ItemStats(assignment.name, notebook.name, cell.name, cell.max_score,
                                          passed, len(grades)))
    return rows


def write_report(course: Course) -> tuple[Path, Path, str]:
    """Item analysis as CSV and HTML under ``reports/``; returns both paths and the text table."""
    rows = item_analysis(course)
    course.reports_dir.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = course.reports_dir / "item_analysis.csv", course.reports_dir / "item_analysis.html"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["assignment", "notebook", "test", "points", "passed", "submissions", "pass_rate"])
        for r in rows:
            w.writerow([r.assignment, r.notebook, r.test, r.points, r.passed, r.submissions, f"{r.rate:.3f}"])
    lines = [f"{'assignment':<18} {'test':<40} {'pts':>4} {'passed':>8}  rate"]
    body = []
    for r in rows:
        lines.append(f"{r.assignment:<18} {r.test:<40} {r.points:>4g} {r.passed:>3}/{r.submissions:<4} {r.rate:5.0%}")
        shade = int(200 * r.rate)
        body.append(f"<tr><td>{html.escape(r.assignment)}</td><td>{html.escape(r.test)}</td><td>{r.points:g}</td>"
                    f"<td>{r.passed}/{r.submissions}</td><td style='background:rgb({230 - shade // 2},{130 + shade // 2},140)'>"
                    f"{r.rate:.0%}</td></tr>")
    html_path.write_text(
        "<!doctype html><meta charset=utf-8><title>Item analysis</title>"
        "<style>body{font-family:sans-serif}td,th{padding:3px 10px;border-bottom:1px solid #ddd}</style>"
        "<h1>Item analysis: who passed each test</h1><table><tr><th>assignment</th><th>test</th>"
        "<th>points</th><th>passed</th><th>rate</th></tr>" + "".join(body) + "</table>")
    return csv_path, html_path, "\n".join(lines)


def score_table(course: Course, results=None) -> str:
    """A plain-text table of autograded scores per student and assignment, the written answers still
    to grade by hand, and failure reasons."""
    from autograder.sanitize import one_line

    table = scores(course)
    pending = pending_manual(course)
    late = late_penalties(course)
    status = {(r.assignment, r.student): r for r in results or []}
    lines = [f"{'student':<24} {'assignment':<18} {'auto score':>12}  {'written':<12}  note"]
    for (assignment, student), (auto, auto_max, manual) in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        r = status.get((assignment, student))
        note = ""
        if r is not None:
            note = f"{r.status.upper()}: {r.reason}" if r.status in ("failed", "refused") else "; ".join(r.events)
        if (assignment, student) in late:
            seconds, penalty = late[(assignment, student)]
            note = f"late by {timedelta(seconds=round(seconds))}: -{penalty:g} points" + (f"; {note}" if note else "")
        todo = pending.get((assignment, student), 0)
        written = f"{todo:g} pending" if todo else ("graded" if manual else "-")
        lines.append(f"{one_line(student, 24):<24} {assignment:<18} {auto:>5g} / {auto_max:<4g}  {written:<12}  "
                     f"{one_line(note, 110)}")
    return "\n".join(lines)
