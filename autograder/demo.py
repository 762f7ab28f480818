"""``make demo``: release everything, grade a small class of good and bad submissions, report.

Runs in a scratch course (``build/demo``) so it never touches the instructor's gradebook, and
downloads nothing.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat

from autograder.collect import collect
from autograder.course import Course, grade_id, is_answer_code_cell, is_test_cell
from autograder.feedback import generate_feedback
from autograder.grade import Autograder
from autograder.mutants import apply_mutant, load_mutants
from autograder.release import release
from autograder.dashboard import write_dashboard
from autograder.reports import export_grades, score_table, write_report

LOOP_FOREVER = "while True:  # a student's runaway loop\n    pass\n"


def _buggy(nb, mutants):
    """The solution with one mutant per graded function, for up to three functions."""
    seen = set()
    for m in mutants:
        if m.target not in seen and len(seen) < 3:
            nb = apply_mutant(nb, m)
            seen.add(m.target)
    return nb


def build_class(course: Course, inbox: Path) -> list[str]:
    """Write the demo submissions into ``inbox/<student>/<assignment>/``; returns the student ids."""
    students = set()
    for assignment in course.assignments():
        mutants = load_mutants(course.source_dir / assignment)
        for solution in course.source_notebooks(assignment):
            sol = nbformat.read(str(solution), as_version=4)
            released = nbformat.read(str(course.release_dir / assignment / solution.name), as_version=4)

            deleted = nbformat.from_dict(json.loads(json.dumps(sol)))
            first_answer = next(i for i, c in enumerate(deleted.cells) if is_answer_code_cell(c))
            first_test = next(i for i, c in enumerate(deleted.cells) if is_test_cell(c))
            for i in sorted({first_answer, first_test}, reverse=True):
                del deleted.cells[i]

            looping = nbformat.from_dict(json.loads(json.dumps(sol)))
            cell = next(c for c in looping.cells if is_answer_code_cell(c))
            cell.source = LOOP_FOREVER + cell.source

            variants = {"perfect": sol, "blank": released, "buggy": _buggy(sol, mutants),
                        "broken-deleted-cells": deleted, "broken-infinite-loop": looping}
            for student, nb in variants.items():
                folder = inbox / student / assignment
                folder.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, str(folder / solution.name))
                students.add(student)
            bad = inbox / "broken-json" / assignment
            bad.mkdir(parents=True, exist_ok=True)
            (bad / solution.name).write_text(solution.read_text()[:-200] + "<<< merge conflict")
            students.add("broken-json")
    return sorted(students)


def run_demo(repo: Path, root: Path, workers: int = 2, cell_timeout: int | None = None) -> int:
    t0 = time.monotonic()
    print("1/5 release: generating assignments/ from solutions/")
    release(Course.open(repo=repo))
    if root.exists():
        shutil.rmtree(root)
    course = Course.open(root=root, repo=repo, db_url=f"sqlite:///{root / 'gradebook.db'}")
    release(course)  # registers the assignments in the demo gradebook
    print("2/5 building a demo class: perfect, blank, buggy and broken submissions")
    inbox = root / "inbox"
    build_class(course, inbox)
    collected = collect(course, inbox)
    print(f"    collected {len(collected)} submissions from {inbox}")
    limit = f"cell time limit {cell_timeout} s" if cell_timeout else "time budgets measured on each solution"
    print(f"3/5 autograding with {workers} workers ({limit}: the runaway loop is stopped there)")
    results = Autograder(course, workers=workers, cell_timeout=cell_timeout, force=True).run()
    print("4/5 feedback, grades.csv and item analysis")
    feedback = generate_feedback(course)
    grades = export_grades(course, root / "grades.csv")
    csv_path, html_path, report_text = write_report(course)
    dashboard = write_dashboard(course)
    print("5/5 results\n")
    print(score_table(course, results))
    print("\n" + report_text)
    print(f"\nfeedback: {len(feedback)} HTML files under {course.feedback_dir()}")
    print(f"grades:   {grades}\nreport:   {csv_path}, {html_path}\ndashboard: {dashboard}")
    print(f"logs:     {course.root / 'logs'}\ndemo finished in {time.monotonic() - t0:.0f}s")
    return 0
