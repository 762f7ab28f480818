"""The student's own results, as handed in: kept unchanged and shown to the person grading the answers.

Experiments 1 and 2 ask written questions about runs the grader never repeats at full size (exp1's
sweeps are cut to 100 steps while grading, exp2 trains on 32 generated images). So each notebook
saves its numbers in a small JSON file that is handed in with it (``ARTEFACTS``): exp1's sweep
results, exp2's per-epoch history (also stored in its checkpoints). Grading never overwrites them:

* nbgrader copies a submission's other files into ``autograded/<student>/<assignment>`` before it
  grades, and the student process runs in a scratch copy (``preprocessors._copy_submission``), so
  what it writes never comes back; ``nbgrader_config.py`` also tells Autograde not to put the source
  folder's files (an instructor's own ``model.pth``) over them (``exclude_overwriting()``).
* ``ShowHandedInResults`` (in the autograde pipeline, right before ``SanitizeForDisplay``) reads the
  handed-in JSON in the trusted grader, strictly (numbers, strings, lists, dicts and null only, size,
  depth and length capped; no code of the submission runs), renders a table and a matplotlib PNG,
  and inserts them as one cell before the written questions that discuss them, labelled "The
  student's own results, as handed in (not re-run)". A file it cannot read gives a one-line note
  saying why; every string from the file is escaped, and the cell is cleaned again after it.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder import sanitize

LABEL = "The student's own results, as handed in (not re-run)"
MAX_BYTES = 256_000       # a real exp1_results.json is about 20 KB, an exp2_history.json under 2 KB
MAX_DEPTH = 6
MAX_VALUES = 40_000       # numbers, strings and containers in the whole file
MAX_STRING = 300
MAX_ROWS = 200            # table rows shown


class ArtefactError(ValueError):
    """Why a handed-in file cannot be shown (one line, shown to the grader)."""


# -- reading, strictly --------------------------------------------------------------------------------
def _no_constant(name: str):
    raise ArtefactError(f"it holds {name}, which is not a JSON number (write null for a value that is not finite)")


def _pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ArtefactError("an object repeats a key")
    return dict(pairs)


def _check(value, depth: int = 0, counter: list | None = None) -> None:
    counter = counter if counter is not None else [0]
    counter[0] += 1
    if counter[0] > MAX_VALUES:
        raise ArtefactError(f"it holds more than {MAX_VALUES:,} values")
    if depth > MAX_DEPTH:
        raise ArtefactError(f"it is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, str) and len(value) <= MAX_STRING:
        return
    if isinstance(value, str):
        raise ArtefactError(f"a string is {len(value):,} characters long (at most {MAX_STRING})")
    if isinstance(value, bool):
        raise ArtefactError("it holds true or false; only numbers, strings, lists, objects and null are read")
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArtefactError("it holds a number too large for a float")
        return
    if isinstance(value, list):
        for item in value:
            _check(item, depth + 1, counter)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1, counter)
            _check(item, depth + 1, counter)
        return
    raise ArtefactError(f"it holds a {type(value).__name__}")   # json.loads makes nothing else; kept for safety


def read_json(path: Path):
    """The JSON value in ``path``, if it is a plain file of capped size holding only numbers, strings,
    lists, objects and null; else ArtefactError saying why."""
    if path.is_symlink():
        raise ArtefactError("it is a symbolic link, not a file")
    if not path.is_file():
        raise ArtefactError("it was not handed in" if not path.exists() else "it is not a plain file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ArtefactError(f"it is {size:,} bytes, more than the {MAX_BYTES:,} read")
    with open(path, "rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ArtefactError(f"it is more than the {MAX_BYTES:,} bytes read")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ArtefactError(f"it is not UTF-8 text (byte {err.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_pairs)
    except ArtefactError:
        raise
    except RecursionError:
        raise ArtefactError("it is nested too deeply") from None
    except ValueError as err:     # JSONDecodeError, and Python's limit on the digits of an int
        raise ArtefactError(f"it is not valid JSON ({sanitize.one_line(err, 120)})") from None
    _check(value)
    return value


# -- checking a value's shape ---------------------------------------------------------------------------
def _get(obj, key: str, kind, where: str, optional: bool = False):
    if not isinstance(obj, dict):
        raise ArtefactError(f"{where} should be an object")
    if key not in obj:
        if optional:
            return None
        raise ArtefactError(f"{where} has no {key!r}")
    value = obj[key]
    if optional and value is None:
        return None
    if kind == "number":
        if value is not None and not isinstance(value, (int, float)):
            raise ArtefactError(f"{where}[{key!r}] should be a number or null, not {_kind(value)}")
    elif kind == "int":
        if not isinstance(value, int):
            raise ArtefactError(f"{where}[{key!r}] should be a whole number, not {_kind(value)}")
    elif not isinstance(value, kind):
        raise ArtefactError(f"{where}[{key!r}] should be {_kind_name(kind)}, not {_kind(value)}")
    return value


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _kind_name(kind) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(kind, str(kind))


def _numbers(values, where: str, limit: int) -> list:
    if not isinstance(values, list):
        raise ArtefactError(f"{where} should be a list, not {_kind(values)}")
    if len(values) > limit:
        raise ArtefactError(f"{where} has {len(values):,} entries (at most {limit:,})")
    for v in values:
        if v is not None and not isinstance(v, (int, float)):
            raise ArtefactError(f"{where} should hold numbers (or null), not {_kind(v)}")
    return values


def _format_version(value, expected: str) -> None:
    if not isinstance(value, dict):
        raise ArtefactError(f"it holds {_kind(value)}, not an object")
    if value.get("format") != expected:
        raise ArtefactError(f"its 'format' is not {expected!r}: not the file this notebook writes")


# -- rendering -------------------------------------------------------------------------------------
def _num(value, digits: int = 4) -> str:
    if value is None:
        return "not finite"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def _text(value) -> str:
    """A string from the file, as escaped HTML on one line."""
    return html.escape(sanitize.one_line(value, 120), quote=False)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; every cell is escaped text."""
    head = "".join(f"<th>{html.escape(h, quote=False)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows[:MAX_ROWS])
    more = f"<p>({len(rows) - MAX_ROWS} more rows not shown)</p>" if len(rows) > MAX_ROWS else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [" | ".join(header)] + [" | ".join(html.unescape(c) for c in row) for row in rows[:MAX_ROWS]]
    return "\n".join(lines)


def _png(figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _finite(xs, ys):
    pairs = [(x, y) for x, y in zip(xs, ys) if isinstance(x, (int, float)) and isinstance(y, (int, float))
             and math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@dataclass
class Rendered:
    html: str
    text: str
    png: str | None = None


def render_exp1(value) -> Rendered:
    """exp1_results.json: each sweep run's setting, steps run, held-out MSE and last loss; plot of both sweeps."""
    _format_version(value, "dlcourse exp1 results")
    runs = _get(value, "runs", list, "the file")
    if not runs or len(runs) > 50:
        raise ArtefactError(f"'runs' has {len(runs)} entries (expected 1 to 50)")
    max_steps = _get(value, "max_sweep_steps", "int", "the file", optional=True)
    rows, parsed = [], []
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        sweep = _get(run, "sweep", str, where)
        if sweep not in ("steps", "lr"):
            raise ArtefactError(f"{where}['sweep'] should be 'steps' or 'lr'")
        epochs = _get(run, "num_epochs", "int", where)
        lr = _get(run, "lr", "number", where)
        steps = _get(run, "steps_run", "int", where)
        mse = _get(run, "heldout_mse", "number", where)
        last = _get(run, "final_loss", "number", where)
        curve_steps = _numbers(_get(run, "curve_steps", list, where), f"{where}['curve_steps']", 2000)
        curve_loss = _numbers(_get(run, "curve_loss", list, where), f"{where}['curve_loss']", 2000)
        if len(curve_steps) != len(curve_loss):
            raise ArtefactError(f"{where}: 'curve_steps' and 'curve_loss' differ in length")
        setting = f"NUM_TRAIN_EPOCHS = {epochs:,}" if sweep == "steps" else f"LEARNING_RATE = {_num(lr)}"
        rows.append([f"{1 if sweep == 'steps' else 2}", html.escape(setting, quote=False), _num(steps), _num(mse),
                     _num(last)])
        parsed.append((sweep, epochs, lr, mse, setting, curve_steps, curve_loss))
    cut = (f"every run was cut to {max_steps} steps (fast mode or grading), so these are not the full sweeps"
           if max_steps is not None else "full budgets (no run was cut)")
    header = ["sweep", "setting", "steps run", "held-out MSE", "last training loss"]
    note = f"<p>{html.escape(cut, quote=False)}.</p>"

    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 3.4))
    axes = figure.subplots(1, 3)
    for ax, sweep, key, xlabel in ((axes[0], "steps", 1, "NUM_TRAIN_EPOCHS"), (axes[1], "lr", 2, "LEARNING_RATE")):
        xs, ys = _finite([p[key] for p in parsed if p[0] == sweep], [p[3] for p in parsed if p[0] == sweep])
        if xs:
            ax.plot(xs, ys, "o-")
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="held-out MSE",
               title=f"sweep {1 if sweep == 'steps' else 2}")
    for k, (sweep, _, _, _, setting, cs, cl) in enumerate(parsed):
        xs, ys = _finite(cs, cl)
        if xs:
            axes[2].plot(xs, ys, label=setting, linestyle="-" if sweep == "steps" else "--", color=f"C{k % 10}")
    axes[2].set(xscale="log", yscale="log", xlabel="step", ylabel="training loss", title="learning curves")
    if any(axes[2].get_lines()):
        axes[2].legend(fontsize=6)
    figure.tight_layout()
    return Rendered(_table(header, rows) + note, _plain_table(header, rows) + "\n" + cut, _png(figure))


HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_acc")


def render_exp2(value) -> Rendered:
    """exp2_history.json: the per-epoch history of the run (resumed runs included), a table and the curves."""
    _format_version(value, "dlcourse exp2 history")
    history = _get(value, "history", dict, "the file")
    columns = {k: _numbers(_get(history, k, list, "'history'"), f"history[{k!r}]", 1000) for k in HISTORY_KEYS}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or not next(iter(lengths)):
        raise ArtefactError("the lists of 'history' are empty or differ in length")
    about = []
    for key, label in (("data", "data"), ("device", "device"), ("resumed_from", "resumed from")):
        item = _get(value, key, str, "the file", optional=True)
        if item is not None:
            about.append(f"{label}: {_text(item)}")
    start = _get(value, "start_epoch", "int", "the file", optional=True)
    if start is not None:
        about.append(f"this run trained epochs {start}–{_num(columns['epoch'][-1])}"
                     + (" (the earlier ones come from the checkpoint it resumed)" if start else ""))
    seconds = _get(value, "seconds", "number", "the file", optional=True)
    if seconds is not None:
        about.append(f"{_num(seconds, 3)} s of training")
    header = ["epoch", "lr", "train loss", "train acc", "test acc"]
    rows = [[_num(columns[k][i]) for k in HISTORY_KEYS] for i in range(len(columns["epoch"]))]

    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 3.4))
    acc, loss = figure.subplots(1, 2)
    for key, style, label in (("test_acc", "o-", "test"), ("train_acc", "s--", "train (augmented, during the epoch)")):
        pairs = [(e, a) for e, a in zip(columns["epoch"], columns[key]) if isinstance(e, (int, float))
                 and isinstance(a, (int, float)) and math.isfinite(e) and math.isfinite(a)]
        if pairs:
            acc.plot([p[0] for p in pairs], [p[1] for p in pairs], style, label=label)
    acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="accuracy per epoch")
    acc.axvline(4.5, color="grey", linestyle=":")
    if acc.get_lines():
        acc.legend(fontsize=7)
    pairs = [(e, v) for e, v in zip(columns["epoch"], columns["train_loss"]) if isinstance(e, (int, float))
             and isinstance(v, (int, float)) and math.isfinite(e) and math.isfinite(v)]
    if pairs:
        loss.plot([p[0] for p in pairs], [p[1] for p in pairs], "o-")
    loss.set(xlabel="epoch", ylabel="mean training loss", title="training loss per epoch")
    figure.tight_layout()
    intro = "<p>" + "; ".join(about) + ".</p>" if about else ""
    return Rendered(intro + _table(header, rows), "; ".join(html.unescape(a) for a in about) + "\n"
                    + _plain_table(header, rows), _png(figure))


@dataclass(frozen=True)
class Artefacts:
    results: str                      # the JSON file shown to the grader
    kept: tuple[str, ...]             # every file of the submission that grading must leave as handed in
    before: str                       # grade_id of the first written answer that discusses the results
    render: Callable[[object], Rendered]


#: assignment -> its handed-in results (paths relative to the submission folder)
ARTEFACTS = {
    "08_exp1_fitting": Artefacts("exp1_results.json", ("exp1_results.json", "model.pth"), "written_epochs",
                                 render_exp1),
    "09_exp2_cifar10": Artefacts("exp2_history.json", ("exp2_history.json", "checkpoints/final.pth"),
                                 "written_train_vs_test", render_exp2),
}


def exclude_overwriting() -> dict[str, list[str]]:
    """For ``Autograde.exclude_overwriting``: files nbgrader must not copy from the source folder over the
    submission's (running a solution notebook in place leaves its own model.pth and results there)."""
    return {assignment: list(spec.kept) for assignment, spec in ARTEFACTS.items()}


def _describe_file(path: Path, name: str) -> str:
    if path.is_symlink():
        return f"{name}: a symbolic link (not kept)"
    if not path.is_file():
        return f"{name}: not handed in"
    h = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            h.update(block)
    return f"{name}: {path.stat().st_size:,} bytes, sha256 {h.hexdigest()[:16]}…"


def results_cell(folder: Path, spec: Artefacts):
    """The cell shown to the grader: the handed-in results rendered, or a note on why they cannot be."""
    kept = "Kept as handed in: " + "; ".join(_describe_file(folder / name, name) for name in spec.kept) + "."
    outputs = []
    try:
        rendered = spec.render(read_json(folder / spec.results))
    except ArtefactError as err:
        note = f"could not read {spec.results}: {sanitize.one_line(err, 240)}"
        rendered = None
    except Exception as err:  # noqa: BLE001 - a file we cannot draw is a note, never a failed grading
        note = f"could not read {spec.results}: {sanitize.one_line(f'{type(err).__name__}: {err}', 240)}"
        rendered = None
    title = f"<p><strong>{html.escape(LABEL, quote=False)}</strong>: {html.escape(spec.results, quote=False)}, " \
            "read by the grader; no code of the submission ran for it. The outputs above come from the grader's own short re-run.</p>"
    if rendered is None:
        outputs.append(nbformat.v4.new_output("display_data", data={
            "text/html": f"{title}<p>{html.escape(note, quote=False)}</p><p>{html.escape(kept, quote=False)}</p>",
            "text/plain": f"{LABEL}\n{note}\n{kept}"}))
    else:
        outputs.append(nbformat.v4.new_output("display_data", data={
            "text/html": f"{title}{rendered.html}<p>{html.escape(kept, quote=False)}</p>",
            "text/plain": f"{LABEL}: {spec.results}\n{rendered.text}\n{kept}"}))
        if rendered.png:
            outputs.append(nbformat.v4.new_output("display_data", data={
                "image/png": rendered.png, "text/plain": f"[plot of {spec.results}]"}))
    cell = nbformat.v4.new_code_cell(f"# {LABEL}: {spec.results}\n"
                                     "# (shown by the grader from the file; nothing here was run)")
    cell.outputs = outputs
    return cell


def insert_results(nb, folder: Path, spec: Artefacts) -> int:
    """Put the results cell right before the question of the written answer ``spec.before``; returns its index."""
    from autograder.preprocessors import _grade_id

    at = next((i for i, c in enumerate(nb.cells) if _grade_id(c) == spec.before), None)
    if at is None:                     # another notebook of the assignment
        return -1
    if at > 0 and nb.cells[at - 1].cell_type == "markdown" and not _grade_id(nb.cells[at - 1]):
        at -= 1                        # before the question the answer replies to
    nb.cells.insert(at, results_cell(folder, spec))
    return at


class ShowHandedInResults(NbGraderPreprocessor):
    """The handed-in results of ARTEFACTS' assignments, rendered by the grader before the written answers."""

    def preprocess(self, nb, resources):
        from autograder.preprocessors import _notebook_path

        spec = ARTEFACTS.get(resources["nbgrader"]["assignment"])
        if spec is None:
            return nb, resources
        folder = _notebook_path(self, resources, "submitted_directory", resources["nbgrader"]["student"]).parent
        insert_results(nb, folder, spec)
        return nb, resources


__all__ = ["ARTEFACTS", "ArtefactError", "ShowHandedInResults", "exclude_overwriting", "insert_results",
           "read_json", "results_cell"]
