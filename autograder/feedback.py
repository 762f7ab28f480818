"""Feedback that shows each test's name, points and the grader's message, never hidden-test code.

Feedback is made from what the trusted grader decided: the test cells' verdicts (written by
``TrustedExecute``: a failure's message, or for a failure in a hidden part only that a hidden test
failed) and the student's own cell sources. Outputs that the student's process produced while
being graded are left out: its code saw the hidden tests' inputs and could print them.
"""
from __future__ import annotations

from pathlib import Path

from nbconvert.preprocessors import Preprocessor

from autograder.course import Course

BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: their code is not shown)"


def redact_source(source: str) -> str:
    """Replace every hidden-test block with one comment line."""
    out, hidden = [], False
    for line in source.splitlines():
        if BEGIN_HIDDEN in line:
            hidden = True
            out.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif END_HIDDEN in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


class RedactHiddenTests(Preprocessor):
    """Strips hidden tests from test cells, tracebacks to ``Error: message`` (the grader's public
    message), and every output of the other code cells. Runs before nbgrader renders the feedback."""

    enabled = True  # nbconvert preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and not (meta.get("grade") and not meta.get("solution")):
            cell.outputs = []
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            had_hidden = BEGIN_HIDDEN in cell.source
            cell.source = redact_source(cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
                elif had_hidden and output.get("output_type") == "stream":
                    output["text"] = "(output of hidden tests not shown)\n"
        return cell, resources


def generate_feedback(course: Course, assignments: list[str] | None = None) -> list[Path]:
    """HTML feedback per student per assignment; returns the files written."""
    written = []
    for assignment in assignments or course.assignments():
        if not any(course.autograded().glob(f"*/{assignment}")):
            continue
        proc = course.nbgrader("generate_feedback", assignment, "--force")
        if proc.returncode != 0:
            print(f"feedback for {assignment} reported errors; see below\n{proc.stderr[-2000:]}")
        written += sorted(course.feedback_dir().glob(f"*/{assignment}/*.html"))
    return written
