"""One definition of grading: plain ``nbgrader autograde`` grades as ``python -m autograder autograde``
does (the same pipeline, from ``nbgrader_config.py``), and refuses when the course package is missing."""
from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.collect import collect
from autograder.course import Course
from autograder.grade import Autograder
from autograder.mutants import apply_mutant, load_mutants
from autograder.release import release
from autograder.reports import cell_scores
from conftest import REPO, read

ASSIGNMENT = "01_backprop"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
TWIN = next(m for m in load_mutants(SOLUTION.parent) if m.name == "linear_forward_no_bias")


def _course(root, students: dict) -> Course:
    course = Course.open(root=root, repo=REPO, db_url=f"sqlite:///{root / 'gradebook.db'}")
    release(course, [ASSIGNMENT])
    inbox = root.parent / f"{root.name}-inbox"
    for student, nb in students.items():
        (inbox / student / ASSIGNMENT).mkdir(parents=True)
        nbformat.write(nb, str(inbox / student / ASSIGNMENT / SOLUTION.name))
    collect(course, inbox)
    shutil.rmtree(inbox)
    course.write_nbgrader_config()
    return course


def _plain_nbgrader(course: Course, *prelude: str) -> subprocess.CompletedProcess:
    code = "; ".join([*prelude, "import sys", "from nbgrader.apps.nbgraderapp import main",
                      f"sys.argv = ['nbgrader', 'autograde', {ASSIGNMENT!r}, '--force']", "main()"])
    return subprocess.run([sys.executable, "-c", code], cwd=course.root, capture_output=True, text=True,
                          errors="replace", timeout=1800)


@pytest.fixture(scope="module")
def two_courses(tmp_path_factory):
    students = {"perfect": read(SOLUTION), "twin": apply_mutant(read(SOLUTION), TWIN)}
    ours = _course(tmp_path_factory.mktemp("ours") / "course", students)
    Autograder(ours, workers=2, show_progress=False).run()
    plain = _course(tmp_path_factory.mktemp("plain") / "course", students)
    proc = _plain_nbgrader(plain)
    return ours, plain, proc


def test_plain_nbgrader_grades_the_same(two_courses):
    """Plain `nbgrader autograde` gives every test cell the score our command gives it."""
    ours, plain, proc = two_courses
    assert proc.returncode == 0, proc.stderr[-2000:]
    for student in ("perfect", "twin"):
        mine, theirs = cell_scores(ours, ASSIGNMENT, student), cell_scores(plain, ASSIGNMENT, student)
        assert mine and mine == theirs, (student, mine, theirs)


def test_plain_nbgrader_runs_the_trusted_grader(two_courses):
    """Plain nbgrader's graded notebook carries the grader's verdicts, not the student process's outputs."""
    _, plain, _ = two_courses
    nb = read(plain.autograded("twin", ASSIGNMENT) / SOLUTION.name)
    failed = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed and all(len(c.outputs) <= 2 for c in failed)


def test_without_the_course_package_grading_refuses(tmp_path):
    """When `autograder` cannot be imported, nbgrader's config switches grading off with a message saying why."""
    course = _course(tmp_path / "course", {"perfect": read(SOLUTION)})
    proc = _plain_nbgrader(course, "import sys", "sys.modules['autograder'] = None",
                           "sys.modules['autograder.preprocessors'] = None")
    out = proc.stdout + proc.stderr
    assert "cannot grade" in out and "make autograde" in out, out[-2000:]
    assert not any(got for got, _ in cell_scores(course, ASSIGNMENT, "perfect").values())
