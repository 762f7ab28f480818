"""Broken and hostile submissions: each gets a clear logged reason and a zero where one is due,
everyone else is still graded, and the gradebook stays intact."""
from __future__ import annotations

import copy
import sqlite3

import nbformat
import pytest

from autograder.collect import collect
from autograder.course import is_answer_code_cell, is_test_cell
from autograder.grade import Autograder
from autograder.reports import cell_scores
from conftest import REPO, new_course, read

ASSIGNMENT = "01_backprop"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def _with_answer_prefix(prefix: str):
    nb = read(SOLUTION)
    cell = next(c for c in nb.cells if is_answer_code_cell(c))
    cell.source = prefix + cell.source
    return nb


def _deleted(kind: str):
    nb = read(SOLUTION)
    pick = is_test_cell if kind == "test" else is_answer_code_cell
    del nb.cells[next(i for i, c in enumerate(nb.cells) if pick(c))]
    return nb


def _duplicated():
    nb = read(SOLUTION)
    i = next(i for i, c in enumerate(nb.cells) if is_test_cell(c))
    nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i]))
    return nb


def _deleted_answer_and_test():
    nb = read(SOLUTION)
    first_answer = next(i for i, c in enumerate(nb.cells) if is_answer_code_cell(c))
    first_test = next(i for i, c in enumerate(nb.cells) if is_test_cell(c))
    for i in sorted({first_answer, first_test}, reverse=True):
        del nb.cells[i]
    return nb


def _tampered():
    """A wrong answer whose student also emptied every test cell, hoping they pass."""
    from autograder.mutants import apply_mutant, load_mutants

    mutant = next(m for m in load_mutants(SOLUTION.parent) if m.target == "linear_forward")
    nb = apply_mutant(read(SOLUTION), mutant)
    for c in nb.cells:
        if is_test_cell(c):
            c.source = "pass"
    return nb


BAD = {
    "blank": lambda: read(REPO / "assignments" / ASSIGNMENT / SOLUTION.name),
    "deleted-answer-and-test": _deleted_answer_and_test,
    "tampered-tests": _tampered,
    "perfect": lambda: read(SOLUTION),
    "invalid-json": None,
    "deleted-test-cell": lambda: _deleted("test"),
    "deleted-answer-cell": lambda: _deleted("answer"),
    "duplicated-test-cell": _duplicated,
    "infinite-loop": lambda: _with_answer_prefix("while True:\n    pass\n"),
    "sys-exit": lambda: _with_answer_prefix("import sys\nsys.exit(3)\n"),
    "kernel-dies": lambda: _with_answer_prefix("import os\nos._exit(1)\n"),
    "output-flood": lambda: _with_answer_prefix("for i in range(200000):\n    print('spam', i)\n"),
}


@pytest.fixture(scope="module")
def bad_class(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("badclass")
    course = new_course(tmp)
    inbox = tmp / "inbox"
    for student, make in BAD.items():
        folder = inbox / student / ASSIGNMENT
        folder.mkdir(parents=True)
        path = folder / SOLUTION.name
        if make is None:
            path.write_text(SOLUTION.read_text()[:5000] + "\n<<<<<<< HEAD")
        else:
            nbformat.write(make(), str(path))
    collect(course, inbox)
    results = Autograder(course, workers=2, cell_timeout=15, show_progress=False).run()
    return course, {r.student: r for r in results}


def _total(course, student):
    s = cell_scores(course, ASSIGNMENT, student)
    return sum(v[0] for v in s.values()), sum(v[1] for v in s.values())


def test_everyone_is_graded(bad_class):
    """Every submission gets a result and a gradebook row; the good one gets full marks."""
    course, results = bad_class
    assert set(results) == set(BAD)
    got, full = _total(course, "perfect")
    assert results["perfect"].status == "graded" and got == full > 0


def test_gradebook_intact(bad_class):
    """SQLite reports no corruption after the run."""
    course, _ = bad_class
    with sqlite3.connect(course.root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_invalid_json_scores_zero_with_reason(bad_class):
    """Invalid JSON: zero, and the log says the notebook is unreadable."""
    course, results = bad_class
    r = results["invalid-json"]
    assert any("not a readable notebook" in e for e in r.events), r.events
    assert _total(course, "invalid-json")[0] == 0


def test_deleted_test_cell_is_restored(bad_class):
    """A deleted test cell comes back from the gradebook: the event is reported, nothing is lost."""
    course, results = bad_class
    r = results["deleted-test-cell"]
    assert any("deleted: restored" in e for e in r.events), r.events
    got, full = _total(course, "deleted-test-cell")
    assert got == full


def test_deleted_answer_cell_loses_its_points(bad_class):
    """A deleted answer cell comes back blank: its tests score zero, the event is reported."""
    course, results = bad_class
    r = results["deleted-answer-cell"]
    assert r.status == "graded" and any("deleted: restored" in e for e in r.events), r.events
    got, full = _total(course, "deleted-answer-cell")
    assert 0 < got < full


def test_untouched_notebooks_raise_no_false_alarm(bad_class):
    """The untouched release (zero) and the solution (full marks) are graded with no tampering events."""
    course, results = bad_class
    assert results["blank"].status == "graded" and results["blank"].events == []
    assert results["perfect"].events == []
    assert _total(course, "blank")[0] == 0


def test_deleted_answer_and_test_cells_are_restored(bad_class):
    """Deleting an answer cell and the test after it (which crashes plain nbgrader) is graded fairly."""
    course, results = bad_class
    r = results["deleted-answer-and-test"]
    assert r.status == "graded", r.reason
    assert sum("deleted: restored" in e for e in r.events) == 2, r.events
    got, full = _total(course, "deleted-answer-and-test")
    assert 0 < got < full


def test_emptied_test_cells_are_restored(bad_class):
    """Test cells replaced by `pass` are restored from the gradebook, so a wrong answer still loses points."""
    course, results = bad_class
    r = results["tampered-tests"]
    assert any("edited: original restored" in e for e in r.events), r.events
    got, full = _total(course, "tampered-tests")
    assert got < full


def test_duplicated_test_cell_is_dropped(bad_class):
    """A duplicated graded cell is reported and counted once."""
    course, results = bad_class
    assert any("duplicated" in e for e in results["duplicated-test-cell"].events)
    got, full = _total(course, "duplicated-test-cell")
    assert got == full


def test_infinite_loop_is_interrupted(bad_class):
    """An endless cell is interrupted at the time limit; the rest of the notebook is still graded."""
    course, results = bad_class
    r = results["infinite-loop"]
    assert r.status == "graded" and any("time limit" in e for e in r.events), r.events
    got, full = _total(course, "infinite-loop")
    assert 0 < got < full


def test_sys_exit_loses_only_its_cell(bad_class):
    """sys.exit() in a cell does not stop grading: only what depends on that cell is lost."""
    course, results = bad_class
    assert results["sys-exit"].status == "graded"
    got, full = _total(course, "sys-exit")
    assert 0 < got < full


def test_dying_student_process_scores_zero_with_reason(bad_class):
    """A student process that dies (os._exit in the first answer) zeroes the tests after it, with the reason logged."""
    course, results = bad_class
    r = results["kernel-dies"]
    assert r.status == "graded" and any("student process ended" in e and "exit code 1" in e for e in r.events), r.events
    assert _total(course, "kernel-dies")[0] == 0


def test_output_flood_is_truncated(bad_class):
    """A flood of output is cut to a few hundred lines and costs no points."""
    course, results = bad_class
    assert results["output-flood"].status == "graded"
    got, full = _total(course, "output-flood")
    assert got == full
    graded = course.autograded("output-flood", ASSIGNMENT) / SOLUTION.name
    assert graded.stat().st_size < 2_000_000, f"autograded notebook is {graded.stat().st_size} bytes"


def _written_answer(nb):
    return next(c for c in nb.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution")
                and c.metadata.get("nbgrader", {}).get("grade"))


def test_unreadable_submission_is_shown_to_the_grader(bad_class):
    """An unreadable notebook still has a formgrader page that says why it scored zero, with nothing to grade by hand."""
    from autograder.reports import pending_manual

    course, _ = bad_class
    shown = read(course.autograded("invalid-json", ASSIGNMENT) / SOLUTION.name)
    assert "could not be graded automatically" in shown.cells[0].source
    assert "not a readable notebook" in shown.cells[0].source
    assert all(not c.get("outputs") for c in shown.cells if c.cell_type == "code")
    assert (ASSIGNMENT, "invalid-json") not in pending_manual(course)


def test_dead_student_process_keeps_its_written_answers(bad_class):
    """A submission whose student process died is graded with its written answers waiting for a grader."""
    from autograder.reports import pending_manual

    course, _ = bad_class
    shown = read(course.autograded("kernel-dies", ASSIGNMENT) / SOLUTION.name)
    first_words = " ".join(_written_answer(read(SOLUTION)).source.split()[:8])
    assert first_words in " ".join(_written_answer(shown).source.split())
    assert pending_manual(course).get((ASSIGNMENT, "kernel-dies"), 0) > 0


def test_failed_submission_keeps_its_written_answers(bad_class, tmp_path, monkeypatch):
    """When grading itself fails, the formgrader still shows the written answers (cleaned) and they await grading."""
    from autograder.reports import pending_manual

    course, _ = bad_class
    before = {s: _total(course, s) for s in ("perfect", "blank")}
    nb = read(SOLUTION)
    _written_answer(nb).source = "My answer: WRITTEN-MARKER-42 <script>alert('x')</script>"
    nb.cells.insert(0, nbformat.v4.new_code_cell("print('code is never copied to the view')"))
    (tmp_path / "grader-fails" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(nb, str(tmp_path / "grader-fails" / ASSIGNMENT / SOLUTION.name))
    collect(course, tmp_path)
    monkeypatch.setenv("COURSE_GRADER_MEMORY_MB", "24")   # the trusted grader cannot even start: grading fails
    results = Autograder(course, cell_timeout=15, show_progress=False, budgets=False).run(students=["grader-fails"])
    assert [r.status for r in results] == ["failed"], [(r.status, r.reason) for r in results]
    shown = read(course.autograded("grader-fails", ASSIGNMENT) / SOLUTION.name)
    assert "could not be graded automatically" in shown.cells[0].source
    answer = _written_answer(shown).source
    assert "WRITTEN-MARKER-42" in answer and "<script" not in answer
    assert not any("never copied" in c.source for c in shown.cells)
    written = sum(c.metadata["nbgrader"]["points"] for c in read(SOLUTION).cells if c.cell_type == "markdown"
                  and c.metadata.get("nbgrader", {}).get("grade"))
    assert pending_manual(course)[(ASSIGNMENT, "grader-fails")] == written
    assert _total(course, "grader-fails")[0] == 0
    assert {s: _total(course, s) for s in before} == before
