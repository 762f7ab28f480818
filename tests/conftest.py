"""Shared fixtures: one real nbgrader course per test session, graded once, checked by many tests.

Grading is the expensive part (a fresh kernel per submission), so every assignment's perfect,
blank and mutant submissions are graded together in one parallel autograde run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.collect import collect
from autograder.course import Course
from autograder.grade import Autograder
from autograder.mutants import load_mutants, write_mutant_submission
from autograder.release import release

REPO = Path(__file__).resolve().parent.parent
WORKERS = int(os.environ.get("COURSE_TEST_WORKERS", str(max(2, os.cpu_count() or 2))))
CELL_TIMEOUT = int(os.environ.get("COURSE_TEST_CELL_TIMEOUT", "300"))


def all_assignments() -> list[str]:
    """Every assignment, or only those named in COURSE_ASSIGNMENTS (comma-separated) while authoring."""
    names = Course.open(repo=REPO, root=REPO).assignments()
    only = [a for a in os.environ.get("COURSE_ASSIGNMENTS", "").split(",") if a]
    return [a for a in names if a in only] if only else names


def all_mutants() -> list[tuple[str, object]]:
    return [(a, m) for a in all_assignments() for m in load_mutants(REPO / "solutions" / a)]


def mutant_student(mutant) -> str:
    return f"mutant-{mutant.name}"[:64]


def new_course(tmp: Path) -> Course:
    course = Course.open(root=tmp, repo=REPO, db_url=f"sqlite:///{tmp / 'gradebook.db'}")
    release(course, all_assignments())
    return course


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    """A course with perfect, blank and mutant submissions for every assignment, autograded."""
    tmp = tmp_path_factory.mktemp("course")
    course = new_course(tmp)
    inbox = tmp / "inbox"
    for assignment in all_assignments():
        for solution in course.source_notebooks(assignment):
            for student, src in (("perfect", solution), ("blank", course.release_dir / assignment / solution.name)):
                (inbox / student / assignment).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, inbox / student / assignment / solution.name)
            for mutant in load_mutants(course.source_dir / assignment):
                folder = inbox / mutant_student(mutant) / assignment
                folder.mkdir(parents=True, exist_ok=True)
                write_mutant_submission(solution, mutant, folder / solution.name)
    collect(course, inbox)
    results = Autograder(course, workers=WORKERS, cell_timeout=CELL_TIMEOUT, show_progress=False).run()
    return course, {(r.assignment, r.student): r for r in results}


def released_notebooks() -> list[Path]:
    return sorted((REPO / "assignments").glob("*/*.ipynb"))


def read(path: Path):
    return nbformat.read(str(path), as_version=4)
