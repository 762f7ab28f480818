"""The grading pipeline's own steps, as nbgrader preprocessors (their order is in nbgrader_config.py).

``NormalizeSubmission``  (first, while nbgrader sanitizes) takes nothing a submission says about
    its cells on trust: every cell's nbgrader metadata and type come from the source notebook by
    grade_id, or it has none; duplicated cells keep one copy; deleted cells come back as released
    (an answer blank); all other metadata goes.
``TrustedExecute``  (in place of nbgrader's Execute) grades the notebook with the tests outside the
    student's process (``autograder.verdict``) and writes what it decided into the test cells: no
    output for a pass, one error for a failure. Nothing the student process printed reaches a test
    cell, so nbgrader's scoring of outputs (SaveAutoGrades) sees only the verdict.
``SanitizeForDisplay``  (last) cleans what the formgrader and feedback will render: markdown and raw
    cells, outputs (``autograder.sanitize``).

Grading refuses to start (rather than grade unsafely) when the course package is missing, and
plain ``nbgrader autograde`` runs these same steps: there is one definition of grading.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer

from autograder import sanitize

#: how TrustedExecute runs one job: a function(job dict) -> verdict dict. A warm grading worker
#: replaces it with a fork of itself; otherwise a fresh ``python -m autograder.verdict`` process.
RUN_JOB = None
#: verdicts of the notebooks graded in this process, for a worker to report (events, timings)
VERDICTS: list[dict] = []
EVENT_PREFIX = "course-event: "


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {})
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
    return gid if isinstance(gid, str) and gid else None


def cell_kind(cell) -> str:
    """answer | test | locked | written | free, from a *trusted* cell's metadata."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution") and meta.get("grade"):
        return "written" if cell.get("cell_type") == "markdown" else "answer"
    if meta.get("solution"):
        return "answer"
    if meta.get("grade"):
        return "test"
    if meta.get("locked"):
        return "locked"
    return "free"


def _coursedir(pp):
    obj = pp
    while obj is not None:
        if getattr(obj, "coursedir", None) is not None:
            return obj.coursedir
        obj = getattr(obj, "parent", None)
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=pp.config)


def _notebook_path(pp, resources, directory_name: str, student: str = ".") -> Path:
    coursedir = _coursedir(pp)
    folder = coursedir.format_path(getattr(coursedir, directory_name), student, resources["nbgrader"]["assignment"])
    return Path(folder) / f"{resources['nbgrader']['notebook']}.ipynb"


def _read(path: Path):
    return nbformat.read(str(path), as_version=4) if path.is_file() else None


def normalize(nb, source, release) -> list[str]:
    """Make ``nb``'s cells trustworthy in place (see NormalizeSubmission); returns what was found."""
    events: list[str] = []
    known = {_grade_id(c): c for c in source.cells if _grade_id(c)}
    released = {_grade_id(c): c for c in (release.cells if release is not None else []) if _grade_id(c)}
    seen: dict[str, object] = {}
    cells = []
    for cell in reversed(nb.cells):          # nbgrader keeps the last copy of a duplicated cell
        raw = cell.get("metadata", {}).get("nbgrader") if isinstance(cell.get("metadata"), dict) else None
        gid = _grade_id(cell)
        if raw is not None and gid not in known:
            events.append(f"a cell carried nbgrader metadata {sanitize.one_line(json.dumps(raw, default=str), 80)} "
                          "that is not in the assignment: treated as an ordinary cell")
            gid = None
        if gid is not None and gid in seen:
            events.append(f"cell {gid} was duplicated: extra copy dropped")
            gid = None
            cell = nbformat.from_dict({"cell_type": "markdown", "source": "", "metadata": {}}) \
                if cell.get("cell_type") != "code" else cell
        original = known.get(gid)
        if original is not None:
            seen[gid] = cell
            if cell.get("cell_type") != original.cell_type:
                events.append(f"cell {gid} was changed from {original.cell_type} to {cell.get('cell_type')}: "
                              "its type restored")
                cell = nbformat.from_dict(json.loads(json.dumps(released.get(gid, original))))
            cell["metadata"] = nbformat.from_dict({"nbgrader": json.loads(json.dumps(original.metadata.nbgrader))})
            kind = cell_kind(original)
            if kind in ("test", "locked") and cell.get("source", "").strip() not in {
                    released.get(gid, original).source.strip(), original.source.strip()}:
                events.append(f"locked cell {gid} was edited: original restored")
                cell["source"] = released.get(gid, original).source
        else:
            cell["metadata"] = nbformat.from_dict({})
        cells.append(cell)
    cells.reverse()
    # put back, in course order, what was deleted: answers blank (as released), the rest as released
    order = [_grade_id(c) for c in source.cells if _grade_id(c)]
    for position, gid in enumerate(order):
        if gid in seen:
            continue
        template = released.get(gid) or known[gid]
        restored = nbformat.from_dict(json.loads(json.dumps(template)))
        restored["metadata"] = nbformat.from_dict({"nbgrader": json.loads(json.dumps(known[gid].metadata.nbgrader))})
        if restored.get("cell_type") == "code":
            restored["outputs"], restored["execution_count"] = [], None
        previous = next((order[k] for k in range(position - 1, -1, -1) if order[k] in seen), None)
        at = 0 if previous is None else next(i for i, c in enumerate(cells) if c is seen[previous]) + 1
        cells.insert(at, restored)
        seen[gid] = restored
        kind = cell_kind(known[gid])
        events.append(f"{'answer' if kind in ('answer', 'written') else kind} cell {gid} was deleted: restored"
                      + (" blank" if kind in ("answer", "written") else ""))
    nb.cells = cells
    meta = nb.get("metadata", {}) if isinstance(nb.get("metadata"), dict) else {}
    nb["metadata"] = nbformat.from_dict({k: json.loads(json.dumps(source.metadata[k]))
                                         for k in ("kernelspec", "language_info") if k in source.metadata})
    del meta
    ids: set = set()
    for cell in nb.cells:
        if "id" in cell and (not isinstance(cell["id"], str) or cell["id"] in ids):
            cell["id"] = secrets.token_hex(4)          # nbformat requires unique cell ids
        ids.add(cell.get("id"))
        for key in list(cell.keys()):
            if key not in ("cell_type", "source", "metadata", "outputs", "execution_count", "id", "attachments"):
                del cell[key]
        if not isinstance(cell.get("source"), str):
            src = cell.get("source")
            cell["source"] = "".join(str(s) for s in src) if isinstance(src, list) else ""
    return list(dict.fromkeys(events))


class NormalizeSubmission(NbGraderPreprocessor):
    """Cell types and nbgrader metadata from the source notebook, by grade_id; nothing else kept."""

    def preprocess(self, nb, resources):
        source = _read(_notebook_path(self, resources, "source_directory"))
        if source is None:
            raise RuntimeError(f"no source notebook for {resources['nbgrader']['notebook']}: cannot grade safely")
        release = _read(_notebook_path(self, resources, "release_directory"))
        for event in normalize(nb, source, release):
            self.log.warning(EVENT_PREFIX + sanitize.one_line(event))
        return nb, resources


class TrustedExecute(NbGraderPreprocessor):
    """Grades the notebook with the tests in a trusted process (see ``autograder.verdict``)."""

    timeout = Integer(600, help="the most seconds one cell may run (budgets from the solution are lower)").tag(config=True)
    job_timeout = Integer(3600, help="the most seconds one notebook may take, all cells together").tag(config=True)

    def preprocess(self, nb, resources):
        from autograder.verdict import Cell, bound_names

        started = time.monotonic()
        source = _read(_notebook_path(self, resources, "source_directory"))
        if source is None:
            raise RuntimeError("no source notebook: cannot grade safely")
        if source.metadata.get("dlcourse", {}).get("tests") != "trusted":
            raise RuntimeError(f"{resources['nbgrader']['notebook']}: its source does not say its tests run in the "
                               "trusted grader (metadata.dlcourse.tests = \"trusted\"); grading it would run them "
                               "beside the student's code, so it is refused")
        trusted = {_grade_id(c): c for c in source.cells if _grade_id(c) and c.cell_type == "code"}
        answer_names = sorted({n for c in source.cells if c.cell_type == "code" and cell_kind(c) == "answer"
                               for n in bound_names(c.source)})
        cells = []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            gid = _grade_id(cell)
            original = trusted.get(gid)
            kind = cell_kind(original) if original is not None else "free"
            if kind in ("test", "locked"):
                cells.append(Cell(kind, original.source, gid, index))
            else:
                cells.append(Cell("answer" if kind == "answer" else "free", cell.source, gid or "", index))
        submitted = _notebook_path(self, resources, "submitted_directory", resources["nbgrader"]["student"]).parent
        release_dir = _notebook_path(self, resources, "release_directory").parent
        with tempfile.TemporaryDirectory(prefix="course-work-") as tmp:
            work = Path(tmp) / resources["nbgrader"]["assignment"]
            _copy_submission(submitted, release_dir, work)
            from autograder import budgets

            cell_limits, notebook_limit = budgets.limits(os.environ.get("COURSE_BUDGETS"),
                                                         resources["nbgrader"]["assignment"],
                                                         resources["nbgrader"]["notebook"])
            job = {"cells": [c.__dict__ for c in cells], "answer_names": answer_names, "workdir": str(work),
                   "cell_timeout": self.timeout, "job_timeout": min(self.job_timeout, notebook_limit or self.job_timeout),
                   "budgets": cell_limits,
                   "sandbox": os.environ.get("COURSE_SANDBOX_SPEC") or None,
                   "isolation": os.environ.get("COURSE_ISOLATION", ""), "hide": _hidden_paths(self)}
            verdict = (RUN_JOB or run_job_in_subprocess)(job)
        self._write(nb, verdict)
        for event in verdict.get("events", []):
            self.log.warning(EVENT_PREFIX + sanitize.one_line(event))
        if verdict.get("student_gone"):
            self.log.warning(EVENT_PREFIX + sanitize.one_line(verdict["student_gone"]))
        verdict["wall_seconds"] = round(time.monotonic() - started, 3)
        verdict["notebook"] = resources["nbgrader"]["notebook"]
        VERDICTS.append(verdict)
        return nb, resources

    def _write(self, nb, verdict: dict) -> None:
        outputs = {int(k): v for k, v in verdict.get("outputs", {}).items()}
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.outputs = [nbformat.from_dict(o) for o in
                            (sanitize.clean_output(o) for o in outputs.get(index, [])) if o is not None]
            cell.execution_count = None
            gid = _grade_id(cell)
            result = verdict.get("tests", {}).get(gid) if gid else None
            if cell_kind(cell) == "test":
                cell.outputs = []
                if result and result.get("stdout"):
                    cell.outputs.append(nbformat.from_dict({"output_type": "stream", "name": "stdout",
                                                            "text": sanitize.clean_text(result["stdout"])}))
                if not result or not result.get("passed"):
                    message = (result or {}).get("message") or "the test did not run"
                    public = (result or {}).get("public") or message
                    cell.outputs.append(nbformat.from_dict({
                        "output_type": "error", "ename": sanitize.one_line((result or {}).get("ename") or "Error", 80),
                        "evalue": sanitize.clean_text(public),
                        "traceback": [sanitize.clean_text(message)]}))


def _hidden_paths(pp) -> list[str]:
    """What the student process must not see when it opens its own sandbox: the course and the gradebook."""
    coursedir = _coursedir(pp)
    paths = {coursedir.root}
    for name in ("source_directory", "release_directory", "submitted_directory", "autograded_directory",
                 "feedback_directory"):
        folder = getattr(coursedir, name, "")
        paths.add(folder if os.path.isabs(folder) else os.path.join(coursedir.root, folder))
    url = getattr(coursedir, "db_url", "")
    if url.startswith("sqlite:///"):
        paths.add(os.path.dirname(os.path.abspath(url[len("sqlite:///"):].split("?", 1)[0])))
    return sorted(str(Path(p).resolve()) for p in paths if p)


def _copy_submission(submitted: Path, release_dir: Path, dest: Path) -> None:
    """The student process's folder: the release's other files, then the submission's (no links)."""
    dest.mkdir(parents=True)
    for base in (release_dir, submitted):
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_symlink() or not path.is_file() or ".ipynb_checkpoints" in path.parts:
                continue
            rel = path.relative_to(base)
            if base == release_dir and path.suffix == ".ipynb":
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def run_job_in_subprocess(job: dict) -> dict:
    """A fresh trusted process for one job (plain ``nbgrader autograde`` and the formgrader)."""
    with tempfile.TemporaryDirectory(prefix="course-job-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job))
        proc = subprocess.run([sys.executable, "-m", "autograder.verdict", str(job_path), str(result_path)],
                              capture_output=True, text=True, errors="replace", cwd=tmp,
                              timeout=float(job.get("job_timeout", 3600)) + 120)
        if proc.returncode != 0 or not result_path.is_file():
            raise RuntimeError("the trusted grader failed: " + sanitize.one_line(proc.stderr[-600:], 600))
        return json.loads(result_path.read_text())


class SanitizeForDisplay(NbGraderPreprocessor):
    """What the formgrader and feedback render is cleaned (markdown, raw cells, outputs, metadata)."""

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader")
            sanitize.clean_cell(cell, meta if isinstance(meta, dict) else None)
        return nb, resources


__all__ = ["NormalizeSubmission", "TrustedExecute", "SanitizeForDisplay", "normalize"]
