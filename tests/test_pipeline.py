"""Instructor commands end to end: collect, feedback, export, report, resume, release errors."""
from __future__ import annotations

import csv
import json
import shutil
import zipfile

import pytest

from autograder.collect import collect
from autograder.course import Course
from autograder.feedback import generate_feedback
from autograder.grade import Autograder
from autograder.release import ReleaseError, release
from autograder.reports import export_grades, write_report
from conftest import REPO, all_assignments, read


def _hidden_lines(assignment):
    from autograder.feedback import redact_source

    nb = read(next((REPO / "solutions" / assignment).glob("*.ipynb")))
    visible = "\n".join(redact_source(c.source) for c in nb.cells)
    return [l.strip() for c in nb.cells for l in c.source.splitlines()
            if len(l.strip()) > 20 and l.strip() not in visible and not l.strip().startswith("#")]


def test_feedback_has_no_hidden_test_code(graded_class):
    """Feedback HTML is written per student per assignment and never contains hidden-test source."""
    course, results = graded_class
    files = generate_feedback(course)
    students = {(r.assignment, r.student) for r in results.values() if r.status == "graded"}
    assert len(files) >= len(students)
    for path in files:
        html = path.read_text()
        import html as htmlmod

        text = htmlmod.unescape(html)
        leaks = [l for l in _hidden_lines(path.parent.name) if l in text]
        assert not leaks, f"{path} shows hidden-test code: {leaks[:2]}"
    blank = next(p for p in files if p.parts[-3] == "blank")
    assert "NotImplementedError" in blank.read_text(), "feedback should show the failure message"


def test_export_writes_grades_csv(graded_class, tmp_path):
    """export writes a CSV with every graded submission: the solution scores, the blank release does not."""
    course, results = graded_class
    rows = list(csv.DictReader(export_grades(course, tmp_path / "grades.csv").open()))
    exported = {(r["assignment"], r["student_id"]): float(r["score"]) for r in rows}
    assert set(results) <= set(exported), "some graded submissions are missing from the CSV"
    assert all(exported[(a, "perfect")] > 0 for a, _ in results if (a, "perfect") in results)
    assert all(exported[(a, "blank")] == 0 for a, _ in results if (a, "blank") in results)


def test_export_marks_written_answers_still_to_grade(graded_class, tmp_path):
    """The CSV says how many points of written answers await a human: the solution's answers do, the blank's don't."""
    from autograder.course import read_notebook
    from autograder.reports import score_table

    course, results = graded_class
    rows = list(csv.DictReader(export_grades(course, tmp_path / "grades.csv").open()))
    pending = {(r["assignment"], r["student_id"]): float(r["pending_written_points"]) for r in rows}
    for assignment in {a for a, _ in results}:
        written = sum(c.metadata.nbgrader.get("points", 0) for nb in course.source_notebooks(assignment)
                      for c in read_notebook(nb).cells
                      if c.cell_type == "markdown" and c.get("metadata", {}).get("nbgrader", {}).get("solution"))
        assert pending[(assignment, "perfect")] == written, assignment
        assert pending[(assignment, "blank")] == 0, assignment
    assert "pending" in score_table(course)


def test_report_item_analysis(graded_class):
    """The item analysis counts, per test, the students who passed (perfect yes, blank no)."""
    course, results = graded_class
    csv_path, html_path, text = write_report(course)
    rows = list(csv.DictReader(csv_path.open()))
    assert rows and html_path.read_text().startswith("<!doctype html>")
    for row in rows:
        assert 1 <= int(row["passed"]) < int(row["submissions"]), row


def test_resume_skips_unchanged_submissions(graded_class):
    """A second run regrades nothing whose content hash is unchanged."""
    course, results = graded_class
    again = Autograder(course, workers=1, show_progress=False).run()
    assert again and all(r.status == "skipped" for r in again)


def test_collect_from_zip_rejects_path_traversal(tmp_path):
    """collect takes a zip of <student>/<assignment>/ folders and refuses entries escaping the course."""
    course = Course.open(root=tmp_path / "course", repo=REPO, db_url=f"sqlite:///{tmp_path}/gb.db")
    assignment = all_assignments()[0]
    nb = next((REPO / "assignments" / assignment).glob("*.ipynb"))
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.write(nb, f"export/alice/{assignment}/{nb.name}")
        zf.write(nb, f"export/bob/{assignment}/{nb.name}")
    assert sorted(collect(course, good)) == [("alice", assignment), ("bob", assignment)]
    assert (course.submitted("alice", assignment) / "timestamp.txt").exists()
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    with pytest.raises(ValueError, match="unsafe"):
        collect(course, evil)
    assert not (tmp_path / "escaped.txt").exists()


def test_release_fails_on_invalid_source(tmp_path):
    """release refuses a source notebook with duplicate grade ids, naming the problem."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "solutions" / all_assignments()[0], repo / "solutions" / "broken")
    shutil.copy(REPO / "nbgrader_config.py", repo)
    nb_path = next((repo / "solutions" / "broken").glob("*.ipynb"))
    data = json.loads(nb_path.read_text())
    graded = [c for c in data["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    graded[1]["metadata"]["nbgrader"]["grade_id"] = graded[0]["metadata"]["nbgrader"]["grade_id"]
    nb_path.write_text(json.dumps(data))
    course = Course.open(root=tmp_path / "root", repo=repo, db_url=f"sqlite:///{tmp_path}/gb.db")
    with pytest.raises(ReleaseError, match="used 2 times"):
        release(course)
