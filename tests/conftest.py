"""Shared fixtures: one real nbgrader course per test session, graded once, checked by many tests.

Grading is the expensive part, so it is shared two ways:
- ``graded_class``: one real nbgrader course, one parallel autograde run (sandboxed student processes,
  gradebook, every stage) of every assignment's perfect and blank submissions, its tamper mutants with
  their plain twins, and a fixed sample of its other hand-written mutants (``PIPELINE_SAMPLE`` each);
- ``mutant_verdicts``: every hand-written mutant graded by the mutation engine (``autograder.mutate``:
  the same trusted grader on the same cells, forked from warm workers, stopping at the first failing
  test). ``test_harness`` checks that both agree on the mutants that both grade.
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
PIPELINE_SAMPLE = int(os.environ.get("COURSE_TEST_PIPELINE_MUTANTS", "2"))   # plain mutants per assignment


def all_assignments() -> list[str]:
    """Every assignment, or only those named in COURSE_ASSIGNMENTS (comma-separated) while authoring."""
    names = Course.open(repo=REPO, root=REPO).assignments()
    only = [a for a in os.environ.get("COURSE_ASSIGNMENTS", "").split(",") if a]
    return [a for a in names if a in only] if only else names


def all_mutants() -> list[tuple[str, object]]:
    return [(a, m) for a in all_assignments() for m in load_mutants(REPO / "solutions" / a)]


def mutant_student(mutant) -> str:
    return f"mutant-{mutant.name}"[:64]


def pipeline_mutants(assignment: str) -> list:
    """The hand-written mutants graded through the whole nbgrader pipeline: every tamper_* mutant, the plain
    mutant whose code it extends, and the first PIPELINE_SAMPLE others by a hash of their names (stable)."""
    import hashlib

    mutants = load_mutants(REPO / "solutions" / assignment)
    tamper = [m for m in mutants if m.name.startswith("tamper_")]
    twins = {t.name for m in tamper for t in mutants
             if not t.name.startswith("tamper_") and m.code.strip().startswith(t.code.strip())}
    rest = sorted((m for m in mutants if not m.name.startswith("tamper_") and m.name not in twins),
                  key=lambda m: hashlib.sha256(m.name.encode()).hexdigest())
    chosen = {m.name for m in tamper} | twins | {m.name for m in rest[:PIPELINE_SAMPLE]}
    return [m for m in mutants if m.name in chosen]


def new_course(tmp: Path) -> Course:
    course = Course.open(root=tmp, repo=REPO, db_url=f"sqlite:///{tmp / 'gradebook.db'}")
    release(course, all_assignments())
    return course


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    """A course with perfect, blank and some mutant submissions (``pipeline_mutants``) for every assignment, autograded."""
    tmp = tmp_path_factory.mktemp("course")
    course = new_course(tmp)
    inbox = tmp / "inbox"
    for assignment in all_assignments():
        for solution in course.source_notebooks(assignment):
            for student, src in (("perfect", solution), ("blank", course.release_dir / assignment / solution.name)):
                (inbox / student / assignment).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, inbox / student / assignment / solution.name)
            for mutant in pipeline_mutants(assignment):
                folder = inbox / mutant_student(mutant) / assignment
                folder.mkdir(parents=True, exist_ok=True)
                write_mutant_submission(solution, mutant, folder / solution.name)
    collect(course, inbox)
    results = Autograder(course, workers=WORKERS, cell_timeout=CELL_TIMEOUT, show_progress=False).run()
    return course, {(r.assignment, r.student): r for r in results}


@pytest.fixture(scope="session")
def mutant_verdicts():
    """{(assignment, mutant name): MutantResult} for every hand-written mutant but the tamper_* ones (whose
    attacks are on the grading pipeline, so they are graded by ``graded_class`` only), from the engine."""
    from autograder import mutate

    course = Course.open(repo=REPO, root=REPO)
    verdicts = {}
    with mutate.Engine(workers=WORKERS) as engine:
        for assignment in all_assignments():
            mutants = [m for m in load_mutants(REPO / "solutions" / assignment) if not m.name.startswith("tamper_")]
            result = mutate.grade_assignment(engine, course, assignment, names=[], extra=mutants, log=lambda *_: None)
            assert not result.error, f"{assignment}: {result.error}"
            verdicts.update({(assignment, m.name): m for m in result.mutants})
    return verdicts


def hand_in(inbox: Path, student: str, assignment: str, notebook: Path, files: dict[str, bytes] | None = None) -> Path:
    """Put a submission into ``inbox/<student>/<assignment>/`` as a student hands it in: the notebook and ``files``
    (relative path -> bytes, folders made as needed); returns that folder (for ``collect``)."""
    folder = inbox / student / assignment
    folder.mkdir(parents=True)
    shutil.copy(notebook, folder / notebook.name)
    for name, data in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def released_notebooks() -> list[Path]:
    return sorted((REPO / "assignments").glob("*/*.ipynb"))


def read(path: Path):
    return nbformat.read(str(path), as_version=4)
