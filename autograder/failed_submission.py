"""What the formgrader shows for a submission that could not be graded automatically.

When grading fails (the notebook cannot be read, the student's process died, a limit was hit), its
tests score zero, but its written answers still deserve a grader. nbgrader's formgrader shows only
``autograded/<student>/<assignment>/<notebook>.ipynb``, so this writes one: the released notebook,
a first cell saying why grading failed, and, in place of each written-answer cell, the student's
answer (matched by the release's ``grade_id``, cleaned like every student text the formgrader
renders). Nothing else of the submission is copied: no code, no outputs, no metadata. In the
gradebook those written answers are marked "needs manual grading" (an answer left as released
scores 0, as nbgrader does), so they appear in the formgrader's lists, the export's
``pending_written_points`` and the dashboard until someone grades them.
"""
from __future__ import annotations

import html
from pathlib import Path

import nbformat

from autograder import sanitize
from autograder.course import Course, grade_id, read_notebook


def _is_written_answer(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "markdown" and bool(meta.get("grade")) and bool(meta.get("solution"))


def _student_answers(path: Path) -> dict[str, str]:
    """grade_id -> source of the student's markdown cells in ``path`` (first one wins); {} if unreadable."""
    try:
        nb = read_notebook(path)
    except (ValueError, OSError):
        return {}
    answers: dict[str, str] = {}
    for cell in nb.cells:
        gid = grade_id(cell) if isinstance(cell.get("metadata"), dict) else None
        if isinstance(gid, str) and cell.get("cell_type") == "markdown" and gid not in answers:
            source = cell.get("source", "")
            answers[gid] = "".join(source) if isinstance(source, list) else str(source)
    return answers


def written_answers_notebook(release: Path, submitted: Path | None, reason: str) -> tuple[nbformat.NotebookNode, dict]:
    """The notebook to show, and grade_id -> True when the student changed that written answer."""
    nb = read_notebook(release)
    answers = _student_answers(submitted) if submitted is not None and submitted.is_file() else {}
    changed = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if _is_written_answer(cell):
            gid = meta["grade_id"]
            if gid in answers:
                changed[gid] = answers[gid].strip() != cell.source.strip()
                cell.source = answers[gid]
            else:
                changed[gid] = False
        sanitize.clean_cell(cell, dict(meta) if isinstance(meta, dict) else None)
    note = ("**This submission could not be graded automatically**, so its tests score zero: "
            f"{html.escape(sanitize.one_line(reason))}.\n\n"
            + ("Its written answers are below, as handed in; grade them as usual."
               if any(changed.values()) else
               "No written answer could be read from it (or none was changed from the release)."))
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    return nb, changed


def show_for_manual_grading(course: Course, student: str, assignment: str, reason: str) -> list[str]:
    """Write the formgrader's view of a failed submission and mark its written answers for grading.

    Returns the notebooks written. Must run after the submission's grades exist in the gradebook
    (``_zero_failed`` creates them).
    """
    import warnings

    from nbgrader.api import Gradebook

    written, changed_by_nb = [], {}
    dest = course.autograded(student, assignment)
    for release in sorted((course.release_dir / assignment).glob("*.ipynb")):
        submitted = course.submitted(student, assignment) / release.name
        nb, changed = written_answers_notebook(release, submitted if submitted.is_file() else None, reason)
        dest.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(dest / release.name))
        written.append(release.name)
        changed_by_nb[release.stem] = changed
    with warnings.catch_warnings(), Gradebook(course.sqlite_url()) as gb:
        warnings.simplefilter("ignore")
        submission = gb.find_submission(assignment, student)
        for notebook in submission.notebooks:
            changed = changed_by_nb.get(notebook.name, {})
            for grade in notebook.grades:
                if grade.cell.cell_type != "markdown" or grade.manual_score is not None:
                    continue
                if changed.get(grade.cell.name):
                    grade.auto_score, grade.needs_manual_grade = None, True
                else:
                    grade.auto_score, grade.needs_manual_grade = 0, False
        gb.db.commit()
    return written
