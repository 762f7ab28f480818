"""``python -m autograder evaluate ASSIGNMENT``: the models students handed in, measured on data they never saw.

Autograding runs an experiment's notebook again at small settings (generated images, a few steps), so it
cannot say how good the model a student trained at home is. This command measures the handed-in file itself:

``09_exp2_cifar10``  each student's ``checkpoints/final.pth`` (or ``final.pth``): its ``"net"`` state dict is
                     loaded into the course's own ResNet20 (the solution's class, not the student's) and its
                     top-1 accuracy is measured on the CIFAR-10 **test set** (10,000 images), on the GPU when
                     there is one. The accuracy the checkpoint claims (``"acc"``) is reported beside it.
``08_exp1_fitting``  each student's ``model.pth``: loaded into the course's ``make_mlp(MY_HIDDEN_SIZES)`` and
                     compared with the student's own ``my_function`` on a held-out grid of ``MY_X_RANGE``
                     (1,000 midpoints, none of them a point of the evenly spaced grid the notebook uses):
                     R^2 and MSE.

**Nothing handed in is trusted.** A file is opened only inside the sandbox (the grading sandbox of
``autograder.grade``, in a student process of its own with no other file), by ``torch.load(...,
weights_only=True)``; what crosses back is data (``dlcourse.wire``: tensors as dtype, shape and bytes, no
pickles), and anything else (a handle to an object) is refused. The model, the test data and the
arithmetic are the grader's. For exp1, ``my_function`` is the student's code: it runs in a second sandboxed
process that holds no file at all (so it cannot read the weights it is compared with), after the
notebook's locked cells; only its values on the grid come back. Time limits: ``--timeout`` seconds per
process.

**Data.** CIFAR-10 comes from the course data folder (``$COURSE_DATA_DIR``, else ``~/.cache/dlcourse``; or
``--data DIR``) and must be the real data set (every md5 sum matching); without it the command says what
to put where and exits with 1. ``--unverified-data`` accepts another copy in the same format (the tests
use generated images); the report then says so on every row.

**Where the results go.** ``reports/evaluate_<assignment>.csv`` and ``.html`` (one row per student:
status, measured value, what the checkpoint claims, the file's sha256, the reason when it could not be
measured), and **the gradebook** as an extra grade: the table ``course_evaluations`` in the gradebook's
own database (SQLite or PostgreSQL), one row per (assignment, student, metric), which ``export`` adds to
``grades.csv`` as the columns ``test_accuracy`` (exp2) and ``heldout_r2`` (exp1). It is an extra grade,
not points: it changes no score; an instructor who wants it to count maps it to points in the
spreadsheet. A missing or unloadable file is a row with its reason (and no value), never a crash.
"""
from __future__ import annotations

import csv
import hashlib
import html
import math
from collections import OrderedDict
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.course import Course

ASSIGNMENTS = {"09_exp2_cifar10": ("test_accuracy", ("checkpoints/final.pth", "final.pth")),
               "08_exp1_fitting": ("heldout_r2", ("model.pth",))}
MAX_FILE_BYTES = 64 * 1024 * 1024        # ResNet20 with its optimizer state is about 3 MB
LOAD_TIMEOUT_S = 120.0
GRID_POINTS = 1000
TABLE = "course_evaluations"
_DICTS = (dict, OrderedDict)     # torch.load gives state dicts as OrderedDict; the wire keeps that type


class EvaluationError(Exception):
    """A handed-in file that cannot be measured; the message says why, in one line."""


@dataclass
class Evaluation:
    assignment: str
    student: str
    metric: str
    status: str = "measured"          # measured | missing | unloadable | failed
    value: float | None = None
    file: str = ""
    sha256: str = ""
    claimed: float | None = None      # what the checkpoint says about itself ("acc"), when it says
    epoch: int | None = None
    extra: dict = field(default_factory=dict)     # e.g. {"mse": ...}
    reason: str = ""
    data: str = ""
    device: str = ""
    seconds: float = 0.0


# -- the sandboxed side ---------------------------------------------------------------------------
class SandboxedProcesses:
    """Student processes in the grading sandbox, one per file or per piece of student code."""

    def __init__(self, course: Course, isolation: bool | None = None):
        from autograder.grade import Autograder

        self._grader = Autograder(course, workers=1, isolation=isolation, show_progress=False)
        self._grader._open_sandbox()            # the same sandbox, hidden paths and policy as autograde
        self.sandbox = self._grader._sandbox
        self.mode = self._grader.isolation_mode

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, files: dict[str, Path], work, timeout: float = LOAD_TIMEOUT_S):
        """Start a student process in a scratch folder holding only ``files`` (name -> path), call
        ``work(session)`` and return what it returns; the process is gone afterwards."""
        from autograder.verdict import Session, StudentProcess

        with tempfile.TemporaryDirectory(prefix="course-evaluate-") as tmp:
            folder = Path(tmp) / "work"
            folder.mkdir()
            for name, path in files.items():
                shutil.copyfile(path, folder / name)
            process = StudentProcess(folder, sandbox=self.sandbox)
            session = Session(process.start(), process)
            session.deadline = time.monotonic() + timeout
            try:
                return work(session)
            finally:
                session.bye()
                process.close()

    def load_weights(self, path: Path, timeout: float = LOAD_TIMEOUT_S):
        """``torch.load(path, map_location="cpu", weights_only=True)`` in the sandbox; data only comes back."""
        from autograder.verdict import CellTimeout, StudentError, StudentGone

        def load(session):
            return session.call_import("torch", "load", ["handed_in.pth"], {"map_location": "cpu", "weights_only": True})

        try:
            value = self.run({"handed_in.pth": path}, load, timeout)
        except (StudentError, StudentGone, CellTimeout) as err:
            raise EvaluationError(f"torch.load(weights_only=True) could not read it ({_short(err)})") from None
        except Exception as err:  # noqa: BLE001 - a built-in error raised by torch.load in the sandbox
            raise EvaluationError(f"torch.load(weights_only=True) could not read it ({type(err).__name__}: "
                                  f"{_short(err)})") from None
        _only_data(value, "the file")
        return value


def _short(err: BaseException, n: int = 240) -> str:
    from autograder.sanitize import one_line

    return one_line(str(err))[:n]


def _only_data(value, what: str, depth: int = 0) -> None:
    """Refuse anything but dicts, lists, tuples, numbers, strings, None and tensors (no handles)."""
    import torch

    from autograder.verdict import RemoteObject

    if depth > 32:
        raise EvaluationError(f"{what} is nested too deeply")
    if isinstance(value, RemoteObject):
        raise EvaluationError(f"{what} holds an object that is not tensors and numbers (save state dicts, not models)")
    if type(value) in _DICTS:
        for k, v in value.items():
            _only_data(v, what, depth + 1)
    elif type(value) in (list, tuple):
        for v in value:
            _only_data(v, what, depth + 1)
    elif not (value is None or type(value) in (bool, int, float, str, bytes) or isinstance(value, torch.Tensor)):
        raise EvaluationError(f"{what} holds a {type(value).__name__}, not tensors and numbers")


def _state_dict(value, what: str) -> dict:
    import torch

    if type(value) not in _DICTS or not value or not all(type(k) is str and isinstance(v, torch.Tensor)
                                                       for k, v in value.items()):
        raise EvaluationError(f"{what} is not a state dict (a dict of parameter names to tensors)")
    return value


def _load_into(model, state: dict) -> None:
    """``model.load_state_dict(state)`` (strict), with a one-line reason when the names or shapes differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(k[:60] for k in unexpected[:3])})")
        raise EvaluationError(f"its parameter names do not match the course's model: {'; '.join(parts)}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise EvaluationError(f"{k} has shape {tuple(state[k].shape)}, the course's model needs {tuple(v.shape)}")
        if state[k].dtype.is_floating_point != v.dtype.is_floating_point:
            raise EvaluationError(f"{k} holds {state[k].dtype}, the course's model needs {v.dtype}")
    model.load_state_dict({k: t.to(own[k].dtype) for k, t in state.items()}, strict=True)


# -- exp2: ResNet20 on the CIFAR-10 test set --------------------------------------------------------
def cifar10_test_set(root: Path | None, unverified: bool):
    """(X_test uint8 (N, 3, 32, 32), y_test (N,), description); EvaluationError saying what to put where."""
    import torch

    from dlcourse.data import check_cifar10, cifar10_folder, missing_cifar10_message, read_cifar10_batch

    folder = cifar10_folder(root)
    if not unverified:
        status = check_cifar10(root)
        if not status.ok:
            raise EvaluationError(missing_cifar10_message(root, reason="evaluate measures on the real test set"))
        what = f"the real CIFAR-10 test set ({folder})"
    else:
        what = f"UNVERIFIED copy of CIFAR-10 ({folder}; md5 sums not checked: not the real test set unless they match)"
    path = folder / "test_batch"
    if not path.is_file():
        raise EvaluationError(missing_cifar10_message(root, reason="evaluate needs test_batch"))
    X, y = read_cifar10_batch(path)
    return torch.from_numpy(X), torch.from_numpy(y), what


def measure_cifar10(state: dict, X, y, device) -> float:
    """Top-1 accuracy of the course's ResNet20 holding ``state`` on (X, y), in eval mode."""
    import torch

    from autograder.pretrain import solution_namespace
    from dlcourse.data import TensorBatches

    model = solution_namespace("09_exp2_cifar10")["ResNet20"]()
    _load_into(model, state)
    model.to(device).eval()
    correct = 0
    with torch.no_grad():
        for Xb, yb in TensorBatches(X, y, batch_size=500, train=False, device=device):
            logits = model(Xb)
            if not torch.isfinite(logits).all():
                raise EvaluationError("the model's outputs are not finite (NaN or inf weights?)")
            correct += int((logits.argmax(dim=1) == yb).sum())
    return correct / len(y)


def evaluate_exp2(procs: SandboxedProcesses, row: Evaluation, path: Path, test_set, device) -> None:
    import torch

    checkpoint = procs.load_weights(path)
    state = checkpoint.get("net") if type(checkpoint) in _DICTS and "net" in checkpoint else checkpoint
    state = _state_dict(state, "its 'net'" if state is not checkpoint else "the file")
    if type(checkpoint) in _DICTS:
        acc, epoch = checkpoint.get("acc"), checkpoint.get("epoch")
        if isinstance(acc, torch.Tensor) and acc.numel() == 1:
            acc = acc.item()
        row.claimed = float(acc) if type(acc) in (int, float) and math.isfinite(acc) else None
        row.epoch = epoch if type(epoch) is int else None
    X, y, row.data = test_set
    row.value = measure_cifar10(state, X, y, device)
    row.extra["test_images"] = len(y)
    if row.claimed is not None and abs(row.claimed - row.value) > 0.02:
        row.reason = f"the checkpoint says acc={row.claimed:.4f}; measured {row.value:.4f}"


# -- exp1: model.pth against the student's own function ---------------------------------------------
def _trusted_cells(assignment: str, course: Course, names: tuple[str, ...]) -> list[str]:
    from autograder.course import read_notebook

    nb = read_notebook(course.source_notebooks(assignment)[0])
    found = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells if c.cell_type == "code"}
    return [found[n] for n in names]


def _student_cell(submission: Path, grade_id: str) -> str:
    """The source of the submission's answer cell ``grade_id`` (read strictly: JSON, cells, strings)."""
    import json

    try:
        nb = json.loads(submission.read_bytes().decode("utf-8"))
        for cell in nb.get("cells", []):
            meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell.get("metadata"), dict) else {}
            if isinstance(meta, dict) and meta.get("grade_id") == grade_id and cell.get("cell_type") == "code":
                source = cell.get("source", "")
                source = "".join(source) if isinstance(source, list) else source
                if isinstance(source, str):
                    return source
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
        raise EvaluationError(f"{submission.name} is not a readable notebook") from None
    raise EvaluationError(f"{submission.name} has no cell {grade_id!r} (where my_function is written)")


def _hidden_sizes(value) -> tuple[int, ...]:
    if type(value) not in (list, tuple) or not 1 <= len(value) <= 16 or \
            not all(type(v) is int and 1 <= v <= 4096 for v in value):
        raise EvaluationError(f"MY_HIDDEN_SIZES is {str(value)[:60]}, not a list of 1-16 layer widths")
    return tuple(value)


def _x_range(value) -> tuple[float, float]:
    if type(value) not in (list, tuple) or len(value) != 2 or not all(type(v) in (int, float) and math.isfinite(v)
                                                                      for v in value) or not value[0] < value[1]:
        raise EvaluationError(f"MY_X_RANGE is {str(value)[:60]}, not (low, high) with low < high")
    return float(value[0]), float(value[1])


def heldout_grid(x_range: tuple[float, float], n: int = GRID_POINTS):
    """(n, 1) midpoints of n equal steps of x_range: none is a point of the notebook's own evenly spaced grid."""
    import torch

    low, high = x_range
    return (low + (torch.arange(n, dtype=torch.float64) + 0.5) * (high - low) / n).float().unsqueeze(1)


def student_function_values(procs: SandboxedProcesses, course: Course, submission: Path):
    """Run the locked cells and the student's my_function cell in a sandboxed process with no files;
    return (MY_X_RANGE, MY_HIDDEN_SIZES, grid (n, 1), my_function(grid) (n, 1))."""
    import torch

    from autograder.verdict import CellTimeout, StudentError, StudentGone

    cells = _trusted_cells("08_exp1_fitting", course, ("imports", "settings")) + [_student_cell(submission, "my_function")]

    def work(session):
        for i, source in enumerate(cells):
            reply = session.exec_cell(source)
            if not reply.get("ok"):
                error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
                where = "the my_function cell" if i == len(cells) - 1 else "a locked cell"
                raise EvaluationError(f"{where} failed: {str(error.get('ename', ''))[:80]}: "
                                      f"{str(error.get('evalue', ''))[:160]}")
        found = session.globals(["MY_X_RANGE", "MY_HIDDEN_SIZES"])
        x_range, sizes = _x_range(found.get("MY_X_RANGE")), _hidden_sizes(found.get("MY_HIDDEN_SIZES"))
        grid = heldout_grid(x_range)
        values = session.call_global("my_function", [grid.clone()], {})
        if not isinstance(values, torch.Tensor) or values.numel() != grid.numel():
            raise EvaluationError(f"my_function(x) for x of shape ({len(grid)}, 1) did not return {len(grid)} numbers")
        return x_range, sizes, grid, values.detach().reshape(grid.shape).float()

    try:
        return procs.run({}, work)
    except (StudentError, StudentGone, CellTimeout) as err:
        raise EvaluationError(f"running my_function failed ({_short(err)})") from None


def evaluate_exp1(procs: SandboxedProcesses, course: Course, row: Evaluation, path: Path, submission: Path) -> None:
    import torch

    from autograder.pretrain import solution_namespace

    state = _state_dict(procs.load_weights(path), "the file")
    x_range, sizes, grid, target = student_function_values(procs, course, submission)
    if not torch.isfinite(target).all():
        raise EvaluationError("my_function is not finite on the grid")
    model = solution_namespace("08_exp1_fitting")["make_mlp"](hidden_sizes=sizes)
    _load_into(model, state)
    model.eval()
    with torch.no_grad():
        pred = model(grid)
    mse = torch.mean((pred - target) ** 2).item()
    var = target.var(unbiased=False).item()
    row.value = 1.0 - mse / var if var > 0 else float("nan")
    row.extra.update(mse=mse, x_range=list(x_range), hidden_sizes=list(sizes), grid_points=len(grid))
    row.data = f"{len(grid)} midpoints of MY_X_RANGE {x_range}"
    if not math.isfinite(row.value):
        raise EvaluationError("my_function is constant on the grid: R^2 is undefined")


# -- the run --------------------------------------------------------------------------------------
def handed_in(course: Course, assignment: str, student: str) -> Path | None:
    folder = course.submitted() / student / assignment
    for name in ASSIGNMENTS[assignment][1]:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            return path
    return None


def run(course: Course, assignment: str, students: list[str] | None = None, data: Path | None = None,
        unverified_data: bool = False, device: str | None = None, isolation: bool | None = None,
        log=print) -> list[Evaluation]:
    """Measure every handed-in model of ``assignment``; write the report and the gradebook; return the rows."""
    import torch

    if assignment not in ASSIGNMENTS:
        raise EvaluationError(f"evaluate knows {', '.join(ASSIGNMENTS)}, not {assignment!r}")
    metric = ASSIGNMENTS[assignment][0]
    students = students or course.students(assignment)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    test_set = cifar10_test_set(data, unverified_data) if assignment == "09_exp2_cifar10" else None
    rows: list[Evaluation] = []
    with SandboxedProcesses(course, isolation) as procs:
        log(f"evaluate {assignment}: {len(students)} student(s), handed-in files opened {procs.mode}; on {dev}")
        for student in students:
            row = Evaluation(assignment, student, metric, device=str(dev))
            started = time.monotonic()
            path = handed_in(course, assignment, student)
            try:
                if path is None:
                    row.status, row.reason = "missing", f"no {' or '.join(ASSIGNMENTS[assignment][1])} handed in"
                else:
                    row.file = str(path.relative_to(course.submitted() / student / assignment))
                    size = path.stat().st_size
                    if size > MAX_FILE_BYTES:
                        raise EvaluationError(f"{row.file} is {size / 1e6:.0f} MB (at most {MAX_FILE_BYTES / 1e6:.0f} MB)")
                    row.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
                    if assignment == "09_exp2_cifar10":
                        evaluate_exp2(procs, row, path, test_set, dev)
                    else:
                        notebook = course.submitted() / student / assignment / f"{assignment}.ipynb"
                        evaluate_exp1(procs, course, row, path, notebook)
            except EvaluationError as err:
                row.status, row.value, row.reason = "unloadable", None, _short(err, 400)
            except Exception as err:  # noqa: BLE001 - one student's file never stops the others
                row.status, row.value, row.reason = "failed", None, f"{type(err).__name__}: {_short(err, 300)}"
            row.seconds = round(time.monotonic() - started, 3)
            rows.append(row)
            shown = f"{row.value:.4f}" if row.value is not None else row.status
            log(f"  {student}: {metric} {shown}{' (' + row.reason + ')' if row.reason else ''}")
    write_report(course, assignment, rows)
    record_in_gradebook(course, rows)
    return rows


# -- results ---------------------------------------------------------------------------------------
FIELDS = ("student", "status", "metric", "value", "claimed", "epoch", "file", "sha256", "reason", "data", "device",
          "seconds")


def write_report(course: Course, assignment: str, rows: list[Evaluation]) -> tuple[Path, Path]:
    from autograder.sanitize import clean_text

    out = course.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out / f"evaluate_{assignment}.csv", out / f"evaluate_{assignment}.html"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in rows:
            d = asdict(r)
            w.writerow([clean_text(str("" if d[k] is None else d[k])) for k in FIELDS])
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(clean_text(str('' if getattr(r, k) is None else getattr(r, k))))}</td>"
                                     for k in FIELDS) + "</tr>" for r in rows)
    head = "".join(f"<th>{k}</th>" for k in FIELDS)
    html_path.write_text(f"<!doctype html><meta charset='utf-8'><title>evaluate {html.escape(assignment)}</title>"
                         f"<h1>Handed-in models of {html.escape(assignment)}</h1><table border=1><tr>{head}</tr>"
                         f"{cells}</table>")
    return csv_path, html_path


def _table(metadata):
    from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text

    return Table(TABLE, metadata or MetaData(),
                 Column("assignment", String(128), primary_key=True), Column("student", String(128), primary_key=True),
                 Column("metric", String(64), primary_key=True), Column("value", Float, nullable=True),
                 Column("status", String(32)), Column("sha256", String(64)), Column("reason", Text),
                 Column("data", Text), Column("measured_at", DateTime))


def record_in_gradebook(course: Course, rows: list[Evaluation]) -> None:
    """Upsert the rows into the gradebook database's ``course_evaluations`` table (nbgrader's own tables untouched)."""
    import datetime

    from sqlalchemy import MetaData, create_engine, delete

    engine = create_engine(course.gradebook_url())
    try:
        table = _table(MetaData())
        table.create(engine, checkfirst=True)
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        with engine.begin() as conn:
            for r in rows:
                conn.execute(delete(table).where(table.c.assignment == r.assignment, table.c.student == r.student,
                                                 table.c.metric == r.metric))
                conn.execute(table.insert().values(assignment=r.assignment, student=r.student, metric=r.metric,
                                                   value=r.value, status=r.status, sha256=r.sha256,
                                                   reason=r.reason[:2000], data=r.data[:2000], measured_at=now))
    finally:
        engine.dispose()


def recorded(course: Course) -> dict[tuple[str, str], dict[str, float | None]]:
    """(assignment, student) -> {metric: value} from the gradebook ({} when evaluate never ran)."""
    from sqlalchemy import MetaData, create_engine, inspect, select

    engine = create_engine(course.gradebook_url())
    try:
        if not inspect(engine).has_table(TABLE):
            return {}
        table = _table(MetaData())
        out: dict = {}
        with engine.connect() as conn:
            for a, s, m, v in conn.execute(select(table.c.assignment, table.c.student, table.c.metric, table.c.value)):
                out.setdefault((a, s), {})[m] = v
        return out
    finally:
        engine.dispose()


def metrics() -> list[str]:
    return [m for m, _ in ASSIGNMENTS.values()]


def cli(course: Course, assignment: str, students=None, data=None, unverified_data=False, device=None,
        isolation=None) -> int:
    try:
        rows = run(course, assignment, students, data, unverified_data, device, isolation)
    except EvaluationError as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 1
    measured = [r for r in rows if r.status == "measured"]
    print(f"{len(measured)} of {len(rows)} measured; wrote {course.reports_dir / f'evaluate_{assignment}.csv'} "
          f"and .html, and the gradebook's {TABLE} (export adds the column {ASSIGNMENTS[assignment][0]})")
    return 0
