"""Generate the student release from ``solutions/``, lint notebooks, and detect drift."""
from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import nbformat

from autograder.course import Course, grade_id, read_notebook

HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### BEGIN SOLUTION", "### END SOLUTION", "### END HIDDEN TESTS")


class ReleaseError(RuntimeError):
    pass


def lint_notebook(path: Path, *, source: bool = False) -> list[str]:
    """Problems with a committed notebook: invalid format, outputs, bad or duplicate grade ids."""
    try:
        nb = read_notebook(path)
    except ValueError as err:
        return [str(err)]
    problems = []
    ids = Counter()
    for i, cell in enumerate(nb.cells):
        if cell.get("outputs") or cell.get("execution_count"):
            problems.append(f"{path}: cell {i} has outputs; commit notebooks without outputs")
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id")
        if not gid:
            problems.append(f"{path}: cell {i} has nbgrader metadata but no grade_id")
            continue
        ids[gid] += 1
        if meta.get("grade") and cell.cell_type == "code" and not meta.get("solution"):
            if not meta.get("points"):
                problems.append(f"{path}: test cell {gid} has no points")
            first = cell.source.lstrip().splitlines()[:1]
            if source and not (first and first[0].startswith(('"""', "'''"))):
                problems.append(f"{path}: test cell {gid} should start with a one-line docstring")
        if meta.get("points") and not meta.get("grade"):
            problems.append(f"{path}: cell {gid} has points but is not graded")
    problems += [f"{path}: grade_id {gid!r} is used {n} times" for gid, n in ids.items() if n > 1]
    if source and nb.metadata.get("dlcourse", {}).get("tests") == "trusted":
        from autograder.verdict import untrusted_names

        problems += [f"{path}: {p}" for p in untrusted_names(nb)]
    return problems


def release(course: Course, assignments: list[str] | None = None) -> list[Path]:
    """Run ``nbgrader generate_assignment`` for each assignment; raise on any problem."""
    written = []
    for assignment in assignments or course.assignments():
        problems = [p for nb in course.source_notebooks(assignment) for p in lint_notebook(nb, source=True)]
        if problems:
            raise ReleaseError("invalid source notebook:\n  " + "\n  ".join(problems))
        proc = course.nbgrader("generate_assignment", assignment, "--force")
        if proc.returncode != 0:
            errors = [l for l in (proc.stdout + proc.stderr).splitlines() if "ERROR" in l or "Error" in l]
            raise ReleaseError(f"generate_assignment {assignment} failed:\n  " + "\n  ".join(errors[-15:]))
        written += sorted((course.release_dir / assignment).glob("*.ipynb"))
    return written


def _normalised(path: Path) -> str:
    return json.dumps(json.loads(path.read_text()), sort_keys=True, indent=1)


def check_release(course: Course) -> list[str]:
    """Differences between ``assignments/`` and a fresh release of ``solutions/`` (empty: no drift)."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Course.open(root=tmp, repo=course.repo, db_url=f"sqlite:///{tmp}/gradebook.db")
        release(scratch)
        fresh = {p.relative_to(scratch.release_dir) for p in scratch.release_dir.rglob("*") if p.is_file()}
        committed = {p.relative_to(course.repo / "assignments") for p in (course.repo / "assignments").rglob("*")
                     if p.is_file() and ".ipynb_checkpoints" not in p.parts}
        for rel in sorted(fresh - committed):
            problems.append(f"assignments/{rel} is missing: run `make release`")
        for rel in sorted(committed - fresh):
            problems.append(f"assignments/{rel} is not generated from solutions/: remove it or add its source")
        for rel in sorted(fresh & committed):
            a, b = scratch.release_dir / rel, course.repo / "assignments" / rel
            same = _normalised(a) == _normalised(b) if rel.suffix == ".ipynb" else a.read_bytes() == b.read_bytes()
            if not same:
                problems.append(f"assignments/{rel} differs from what `make release` generates (hand-edited?)")
    return problems


def leaked_solution_code(path: Path) -> list[str]:
    """Solution or hidden-test markers left in a released notebook."""
    nb = nbformat.read(str(path), as_version=4)
    return [f"{path}: cell {grade_id(c) or i} contains {marker!r}"
            for i, c in enumerate(nb.cells) for marker in HIDDEN_MARKERS if marker in c.source]
