"""The syllabus (lectures/SYLLABUS.md) agrees with the course: every assignment and lecture, in order,
with the points and written points its notebook gives, and weights that add up to 100 %."""
from __future__ import annotations

import re

import nbformat

from conftest import REPO

SYLLABUS = REPO / "lectures" / "SYLLABUS.md"


def _points(assignment: str) -> tuple[float, float]:
    nb = nbformat.read(str(REPO / "solutions" / assignment / f"{assignment}.ipynb"), as_version=4)
    total = written = 0.0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        points = float(meta.get("points") or 0)
        total += points
        if meta.get("task") or (cell.cell_type == "markdown" and meta.get("solution")):
            written += points
    return total, written


def _rows(header: str) -> list[list[str]]:
    text = SYLLABUS.read_text(encoding="utf-8")
    table = text[text.index(header):].split("\n\n")[0]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()[2:]]


def test_units_are_the_course_in_order():
    """The unit table lists every assignment and lecture, in course order."""
    rows = _rows("| # | Unit |")
    assignments = sorted(p.name for p in (REPO / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())
    lectures = sorted(p.stem for p in (REPO / "lectures").glob("[0-9][0-9]_*.ipynb"))
    assert [r[3].strip("`") for r in rows] == assignments
    assert [r[2].strip("`") for r in rows if r[2] != "—"] == lectures


def test_points_match_the_notebooks():
    """Each assignment's points and written points are the notebook's; the weights add up to 100 %."""
    rows = _rows("| Assignment | Points |")
    *body, total = rows
    seen, weights = [], 0.0
    for name, points, written, weight in body:
        assignment = name.strip("`")
        assert (float(points), float(written)) == _points(assignment), f"{assignment}: fix its row"
        seen.append(assignment)
        weights += float(re.sub(r"[^\d.]", "", weight))
    assert seen == sorted(p.name for p in (REPO / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())
    numbers = [float(re.sub(r"[^\d.]", "", c)) for c in total[1:]]
    assert numbers == [sum(_points(a)[0] for a in seen), sum(_points(a)[1] for a in seen), 100.0]
    assert abs(weights - 100.0) < 1e-9
