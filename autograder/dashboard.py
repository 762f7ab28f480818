"""The class dashboard (``reports/dashboard.html``, written by ``python -m autograder report``).

The page an instructor opens after grading, one self-contained HTML file: per assignment a histogram
of autograded scores, per test a pass-rate bar (grouped by assignment), a student × assignment
heatmap, the submissions that failed or were refused (with their reasons) and the written answers
still to grade by hand. Figures are matplotlib PNGs embedded as data URIs; every name and reason
from the gradebook or a submission is escaped.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math

from autograder.course import Course


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str, kind: str) -> str:
    return f'<img class="figure" data-figure="{kind}" alt="{html.escape(alt)}" src="{uri}">'


def _histograms(by_assignment: dict[str, list[float]]) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = sorted(by_assignment)
    cols = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        ax.hist([100 * f for f in by_assignment[name]], bins=10, range=(0, 100), color="#4c72b0")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("autograded score (%)", fontsize=8)
        ax.set_ylabel("submissions", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def _pass_rates(items) -> str:
    import matplotlib.pyplot as plt

    labels = [f"{r.assignment} · {r.test}" for r in items]
    rates = [100 * r.rate for r in items]
    colours = [f"C{sorted({r.assignment for r in items}).index(r.assignment) % 10}" for r in items]
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.17 * len(items) + 0.8)))
    ax.barh(range(len(items)), rates, color=colours)
    ax.set_yticks(range(len(items)), labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("submissions with full points on the test (%)")
    return _png(fig)


def _heatmap(students: list[str], assignments: list[str], fraction: dict[tuple[str, str], float]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.full((len(students), len(assignments)), np.nan)
    for i, s in enumerate(students):
        for j, a in enumerate(assignments):
            if (a, s) in fraction:
                grid[i, j] = 100 * fraction[(a, s)]
    height = min(30.0, max(2.0, 0.16 * len(students) + 1.0))
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(assignments), height))
    im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=0, vmax=100, interpolation="nearest")
    ax.set_xticks(range(len(assignments)), assignments, rotation=45, ha="right", fontsize=7)
    if len(students) <= 120:
        ax.set_yticks(range(len(students)), students, fontsize=max(3, min(8, 600 // max(1, len(students)))))
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(students)} students")
    fig.colorbar(im, ax=ax, label="autograded score (%)", shrink=0.6)
    return _png(fig)


def write_dashboard(course: Course, items=None):
    """Write ``reports/dashboard.html``; returns its path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from autograder.reports import item_analysis, pending_manual, scores
    from autograder.sanitize import one_line

    items = item_analysis(course) if items is None else items
    table = scores(course)
    pending = pending_manual(course)
    fraction = {k: (auto / auto_max if auto_max else 0.0) for k, (auto, auto_max, _) in table.items()}
    assignments = sorted({a for a, _ in table})
    students = sorted({s for _, s in table})
    by_assignment = {a: [f for (x, _), f in fraction.items() if x == a] for a in assignments}
    state_file = course.reports_dir / "autograde.json"
    try:
        state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    except ValueError:
        state = {}
    trouble = sorted((v.get("assignment", ""), v.get("student", ""), v.get("status", ""), v.get("reason", ""))
                     for v in state.values() if isinstance(v, dict) and v.get("status") in ("failed", "refused"))

    esc = lambda text: html.escape(one_line(str(text), 300))   # noqa: E731
    parts = ["<!doctype html><meta charset=utf-8><title>Class dashboard</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:3px 10px;"
             "border-bottom:1px solid #ddd;text-align:left}img.figure{max-width:100%;display:block;margin:8px 0}</style>",
             "<h1>Class dashboard</h1>",
             f"<p>{len(students)} students, {len(assignments)} assignments, {len(table)} submissions; "
             f"{len(trouble)} failed or refused; {sum(pending.values()):g} written points still to grade.</p>"]
    if table:
        parts += ["<h2>Scores per assignment</h2>", _img(_histograms(by_assignment), "score histograms", "histogram"),
                  "<h2>Students × assignments</h2>",
                  _img(_heatmap(students, assignments, fraction), "student by assignment heatmap", "heatmap")]
    if items:
        parts += ["<h2>Pass rate per test</h2>", _img(_pass_rates(items), "pass rate per test", "pass-rates")]
    parts.append("<h2>Failed or refused submissions</h2>")
    if trouble:
        parts.append("<table><tr><th>assignment</th><th>student</th><th>status</th><th>reason</th></tr>" + "".join(
            f"<tr><td>{esc(a)}</td><td>{esc(s)}</td><td>{esc(st)}</td><td>{esc(r)}</td></tr>" for a, s, st, r in trouble)
            + "</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Written answers to grade</h2>")
    todo = sorted((a, s, p) for (a, s), p in pending.items() if p)
    if todo:
        parts.append("<p>In the formgrader (<code>make lab</code> → Formgrader → Manual Grading).</p>"
                     "<table><tr><th>assignment</th><th>student</th><th>points pending</th></tr>" + "".join(
                         f"<tr><td>{esc(a)}</td><td>{esc(s)}</td><td>{p:g}</td></tr>" for a, s, p in todo) + "</table>")
    else:
        parts.append("<p>None pending.</p>")
    course.reports_dir.mkdir(parents=True, exist_ok=True)
    path = course.reports_dir / "dashboard.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
