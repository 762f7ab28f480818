"""Check your own work on an assignment: the visible tests, run the way the grader runs them.

In the notebook (its last cell)::

    from dlcourse.selfcheck import self_check
    self_check()

In a terminal, for a notebook file::

    python -m dlcourse.selfcheck 05_cnn.ipynb          # exit status 0 when every visible test passes
    python -m dlcourse.selfcheck 05_cnn.ipynb --json   # the same, machine-readable

Either way a fresh kernel runs a copy of the notebook from top to bottom (in a scratch folder, so your
files are left alone), exactly as ``nbgrader validate`` does, and a table shows each visible test: its
points, passed or failed, and the first line of the failure. A test cell fails when it raises or
writes to stderr, as in nbgrader; a test cell you edited is reported as edited and does not count
(the grader runs the original, as ``nbgrader validate`` warns). Hidden tests and the gradebook are never needed (the released
notebook holds no hidden tests), so a pass here does not promise full marks.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcourse.runtime import grading, on_colab, progress

HIDDEN_NOTE = ("Hidden tests (other shapes, edge cases) run only when your instructor grades, so they may "
               "still fail; written answers are graded by hand.")
MESSAGE_CHARS = 240


@dataclass
class TestResult:
    test: str          # the test cell's grade id
    points: float
    status: str        # "passed", "failed", or "hidden" (all of its checks are hidden tests)
    message: str = ""  # first line of the failure, empty when passed

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class Report:
    notebook: str
    results: list[TestResult] = field(default_factory=list)

    @property
    def visible(self) -> list[TestResult]:
        return [r for r in self.results if r.status != "hidden"]

    @property
    def passed(self) -> bool:
        """Every visible test passed (and there was at least one)."""
        return bool(self.visible) and all(r.passed for r in self.visible)

    def summary(self) -> str:
        done = sum(r.passed for r in self.visible)
        got = sum(r.points for r in self.visible if r.passed)
        total = sum(r.points for r in self.visible)
        hidden = sum(r.points for r in self.results if r.status == "hidden")
        text = f"{done} of {len(self.visible)} visible tests pass ({_num(got)}/{_num(total)} points)."
        return text + (f" {_num(hidden)} more points are in hidden tests only." if hidden else "")

    def to_json(self) -> str:
        return json.dumps({"notebook": self.notebook, "passed": self.passed, "summary": self.summary(),
                           "results": [asdict(r) for r in self.results]}, indent=1)

    def __str__(self) -> str:
        width = max([len(r.test) for r in self.results] + [4])
        lines = [f"Self-check of {self.notebook}", f"{'test':<{width}}  points  result  message"]
        for r in self.results:
            lines.append(f"{r.test:<{width}}  {_num(r.points):>6}  {_LABEL[r.status]:<6}  {r.message}")
        return "\n".join(lines + [self.summary(), HIDDEN_NOTE])

    def _repr_html_(self) -> str:
        rows = "".join(
            f'<tr data-test="{html.escape(r.test)}" data-status="{r.status}">'
            f"<td><code>{html.escape(r.test)}</code></td><td>{_num(r.points)}</td>"
            f'<td style="color:{_COLOUR[r.status]}">{_SYMBOL[r.status]} {r.status}</td>'
            f"<td>{html.escape(r.message)}</td></tr>" for r in self.results)
        return (f'<div class="dlcourse-self-check-report"><p><b>Self-check</b> of {html.escape(self.notebook)}: '
                f"{html.escape(self.summary())}</p>"
                f'<style>table.dlcourse-self-check td, table.dlcourse-self-check th {{text-align: left}}</style>'
                f'<table class="dlcourse-self-check"><thead><tr><th>test</th><th>points</th><th>result</th>'
                f"<th>message</th></tr></thead><tbody>{rows}</tbody></table>"
                f"<p><i>{html.escape(HIDDEN_NOTE)}</i></p></div>")


_LABEL = {"passed": "passed", "failed": "FAILED", "hidden": "hidden"}
_SYMBOL = {"passed": "✔", "failed": "✘", "hidden": "…"}
_COLOUR = {"passed": "#1a7f37", "failed": "#cf222e", "hidden": "#57606a"}
HIDDEN_ONLY = "all of its checks are hidden: they run when your instructor grades"
EDITED = ("this test cell was edited: the grader runs the original, so this result does not count; "
          "undo your edits (or copy the cell back from the released notebook)")


def _num(x: float) -> str:
    return f"{x:g}"


def visible_tests(nb) -> list:
    """The notebook's test cells (nbgrader: graded, not a solution); in a release, the visible ones."""
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata["nbgrader"].get("solution")]


def failure(cell) -> str | None:
    """Why a test cell failed (nbgrader's rule: an error, or anything on stderr), or None if it passed."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            if out.get("ename") == "NotImplementedError" and not out.get("evalue"):
                return "NotImplementedError: a function this test calls is not written yet"
            text = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip().rstrip(":")
            return _first_line(text)
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return _first_line("wrote to stderr (a test must be silent): " + out.get("text", "").strip())
    if not cell.get("execution_count"):
        return "did not run"
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS - 1] + "…"


def hidden_only(source: str) -> bool:
    """True for a released test cell whose checks were all hidden: only its docstring and comments are left."""
    lines = [line.strip() for line in source.strip().splitlines()]
    if lines and lines[0].startswith(('"' * 3, "'" * 3)):
        lines = lines[1:]
    return not [line for line in lines if line and not line.startswith("#")]


def checksum(cell) -> str:
    """nbgrader's checksum of a locked or graded cell (``nbgrader.utils.compute_checksum``, without nbgrader)."""
    meta = cell.metadata["nbgrader"]
    md5 = hashlib.md5()
    grade, solution = bool(meta.get("grade", False)), bool(meta.get("solution", False))
    locked = False if solution else True if grade else bool(meta.get("locked", False))
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        md5.update(part.encode("utf-8"))
    if meta.get("grade"):
        md5.update(str(float(meta["points"])).encode("utf-8"))
    return md5.hexdigest()


def edited(cell) -> bool:
    """True when a released test or locked cell no longer matches the checksum the release gave it."""
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("checksum")) and "grade_id" in meta and checksum(cell) != meta["checksum"]


def report_for(nb, name: str, original=None) -> Report:
    """Read the results of an executed notebook (``original``: the notebook as handed in, for edits)."""
    results = []
    changed = {c.metadata["nbgrader"]["grade_id"] for c in visible_tests(original if original is not None else nb)
               if edited(c)}
    for c in visible_tests(nb):
        meta, why = c.metadata["nbgrader"], failure(c)
        if meta["grade_id"] in changed:
            results.append(TestResult(meta["grade_id"], float(meta.get("points", 0)), "failed", EDITED))
            continue
        status = "failed" if why else "hidden" if hidden_only(c.source) else "passed"
        results.append(TestResult(meta["grade_id"], float(meta.get("points", 0)), status,
                                  why or (HIDDEN_ONLY if status == "hidden" else "")))
    return Report(name, results)


@contextmanager
def _environment(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_fresh(nb, *, timeout: int = 600, show_progress: bool = True):
    """Execute ``nb`` top to bottom in a fresh kernel of this Python, in a scratch folder; return it."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = as_notebook(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    with tempfile.TemporaryDirectory(prefix="self-check-") as scratch:
        # A kernel spec for exactly this Python, whatever "python3" means on this machine.
        spec = Path(scratch) / "kernels" / "dlcourse-self-check"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "self-check", "language": "python"}))
        work = Path(scratch) / "work"
        work.mkdir()
        path = os.pathsep.join([scratch] + [p for p in [os.environ.get("JUPYTER_PATH")] if p])
        # NBGRADER_EXECUTION: grading mode, as under `nbgrader validate` (demos cut, no progress bars,
        # and the self-check cell inside the copy does nothing). PYDEVD_DISABLE_FILE_VALIDATION: the
        # debugger of ipykernel 6 (Colab's) otherwise warns about frozen modules on stderr, into this cell.
        with _environment(JUPYTER_PATH=path, NBGRADER_EXECUTION="self-check", MPLBACKEND="Agg",
                          PYDEVD_DISABLE_FILE_VALIDATION="1"):
            client = NotebookClient(nb, timeout=timeout, kernel_name="dlcourse-self-check", allow_errors=True,
                                    interrupt_on_timeout=True, resources={"metadata": {"path": str(work)}})
            bar = progress(total=code_cells, desc="self-check", unit="cell", enabled=show_progress)
            client.on_cell_executed = lambda **_: bar.update(1)
            try:
                client.execute()
            except DeadKernelError as err:  # the cells after it keep no execution count: "did not run"
                print(f"the kernel died while running the notebook: {err}", file=sys.stderr)
            finally:
                bar.close()
    return nb


def as_notebook(nb):
    """A v4 notebook from a dict in any JSON form: sources as one string or, as Colab and files keep
    them, as a list of lines."""
    import nbformat

    return nbformat.reads(json.dumps(nb), as_version=4)


def check_notebook(nb, name: str, *, timeout: int = 600, show_progress: bool = True) -> Report:
    nb = as_notebook(nb)
    if not visible_tests(nb):
        raise ValueError(f"{name} has no test cells (nbgrader metadata): self-check works on the course's "
                         "assignment notebooks")
    return report_for(run_fresh(nb, timeout=timeout, show_progress=show_progress), name, original=nb)


def _this_notebook():
    """The running notebook: from Colab's front end, or the file Jupyter (or VS Code) says it is."""
    import nbformat

    if on_colab():
        from google.colab import _message  # Colab's own channel to the browser

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=60)
        return as_notebook(reply["ipynb"]), "this Colab notebook"
    candidates = []
    if os.environ.get("JPY_SESSION_NAME"):  # set by jupyter_server for the kernel of a notebook
        session = Path(os.environ["JPY_SESSION_NAME"])
        candidates += [session, Path.cwd() / session.name]
    try:
        candidates.append(Path(get_ipython().user_ns["__vsc_ipynb_file__"]))  # type: ignore[name-defined]  # noqa: F821
    except (NameError, KeyError):
        pass
    for path in candidates:
        if path.suffix == ".ipynb" and path.is_file():
            return nbformat.read(str(path), as_version=4), path.name
    raise FileNotFoundError("could not tell which notebook this is: call self_check('<name>.ipynb') with its file name")


def self_check(notebook: str | os.PathLike | None = None, *, timeout: int = 600):
    """Run this notebook's visible tests in a fresh kernel and show a table (returns None: shown once).

    Checks the notebook as last saved (on Colab: as it is in the browser), so save first.
    """
    if grading():
        print("self-check: skipped while the notebook is being graded or checked")
        return None
    import nbformat

    if notebook is not None:
        nb, name = nbformat.read(str(notebook), as_version=4), Path(notebook).name
    else:
        nb, name = _this_notebook()
    report = check_notebook(nb, name, timeout=timeout)
    try:
        from IPython.display import display

        display(report)
    except ImportError:
        print(report)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcourse.selfcheck",
                                     description="Run a notebook's visible tests in a fresh kernel and report them.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
    args = parser.parse_args(argv)
    import nbformat

    try:
        nb = nbformat.read(str(args.notebook), as_version=4)
        report = check_notebook(nb, args.notebook.name, timeout=args.timeout, show_progress=not args.json)
    except (OSError, ValueError) as err:  # missing file, not JSON, not a notebook, no test cells
        print(f"self-check: {args.notebook}: {err}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
