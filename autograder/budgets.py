"""Time budgets from the reference: how long a submission may take is measured on the solution.

Before an assignment's submissions are graded, its solution is graded once here, by the same
trusted grader, sandbox and thread share the submissions get (no gradebook entry is made). Its
time per cell and in all sets the budgets: a cell may take ``FACTOR`` times the solution's time plus
``CELL_SLACK_S``; a whole notebook ``FACTOR`` times the solution's total plus ``JOB_SLACK_S``. The
measurement is kept in ``<course>/reports/budgets.json`` per assignment, keyed by the source
notebook's hash and the machine, and repeated when either changes.

It is also a check: when the solution does not get every point on this machine, grading that
assignment would be unfair, so it is refused with the failing tests named.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

FACTOR = 3.0
CELL_SLACK_S = 30.0
JOB_SLACK_S = 60.0


class ReferenceFails(RuntimeError):
    """The solution itself does not pass here."""


def machine() -> str:
    from autograder.grade import usable_cpus

    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    return f"{platform.machine()} {platform.processor() or ''} {usable_cpus()} CPUs, {gpu}".replace("  ", " ")


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def reference_job(source: Path, release_dir: Path, workdir: Path) -> dict:
    """The verdict job that grades the solution notebook as if it were a submission."""
    import nbformat

    from autograder.preprocessors import _copy_submission, _grade_id, cell_kind
    from autograder.verdict import Cell, bound_names

    nb = nbformat.read(str(source), as_version=4)
    cells, answer_names = [], set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        kind = cell_kind(cell)
        kind = kind if kind in ("test", "locked", "answer") else "free"
        cells.append(Cell(kind, cell.source, _grade_id(cell) or "", index))
        if kind == "answer":
            answer_names.update(bound_names(cell.source))
    _copy_submission(release_dir, release_dir, workdir)
    (workdir / source.name).write_text(nbformat.writes(nb))
    return {"cells": [c.__dict__ for c in cells], "answer_names": sorted(answer_names), "workdir": str(workdir)}


def measure(course, assignment: str, env: dict, sandbox_spec: str | None, cell_timeout: float,
            job_timeout: float) -> dict:
    """Grade the solution once; its times per notebook and cell. Raises ReferenceFails when a test fails."""
    from autograder.preprocessors import run_job_in_subprocess

    out = {}
    for source in course.source_notebooks(assignment):
        with tempfile.TemporaryDirectory(prefix="course-reference-") as tmp:
            job = reference_job(source, course.release_dir / assignment, Path(tmp) / assignment)
            job.update(cell_timeout=cell_timeout, job_timeout=job_timeout, sandbox=sandbox_spec,
                       isolation="" if sandbox_spec else "0", env=env)
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                verdict = run_job_in_subprocess(job)
            finally:
                os.environ.clear()
                os.environ.update(saved)
        failed = sorted(k for k, v in verdict["tests"].items() if not v["passed"])
        if failed:
            details = "; ".join(f"{k}: {verdict['tests'][k]['message'][:160]}" for k in failed[:3])
            raise ReferenceFails(f"the solution of {assignment} fails {len(failed)} test(s) on this machine "
                                 f"({details}): grading it would be unfair")
        out[source.stem] = {"hash": _hash(source), "total": verdict["seconds"], "cells": verdict["cell_seconds"]}
    return out


def budgets_for(course, assignment: str, env: dict, sandbox_spec: str | None, cell_timeout: float,
                job_timeout: float, log=print) -> Path:
    """The budgets file for this run, measuring the assignment's solution first when needed."""
    path = course.reports_dir / "budgets.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    here = machine()
    entry = data.get(assignment, {})
    fresh = entry.get("machine") == here and all(
        entry.get("notebooks", {}).get(nb.stem, {}).get("hash") == _hash(nb) for nb in course.source_notebooks(assignment))
    if not fresh:
        log(f"measuring {assignment}'s solution for its time budgets ({here})")
        entry = {"machine": here, "notebooks": measure(course, assignment, env, sandbox_spec, cell_timeout,
                                                        job_timeout)}
        data[assignment] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
    return path


def limits(budgets_file: str | None, assignment: str, notebook: str) -> tuple[dict, float | None]:
    """(seconds per cell by grade_id, seconds for the notebook) from a budgets file, or ({}, None)."""
    try:
        entry = json.loads(Path(budgets_file).read_text())[assignment]["notebooks"][notebook]
    except (TypeError, OSError, ValueError, KeyError):
        return {}, None
    cells = {k: FACTOR * float(v) + CELL_SLACK_S for k, v in entry["cells"].items() if not k.isdigit()}
    return cells, FACTOR * float(entry["total"]) + JOB_SLACK_S
