"""A simulated Colab run of every released assignment.

For each one: the notebook alone in an empty folder, a fresh virtual environment with only the course
package installed from this checkout (none of the repository on the path), the solution cells filled
in from ``solutions/``, then the self-check runs it top to bottom and must report every visible test
passing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, released_notebooks

NOTEBOOKS = released_notebooks()
PARALLEL = 2   # the CI machine's cores


def fill_in_solutions(released: Path, out: Path) -> int:
    """Write ``released`` with each answer cell replaced by the solution's; return how many were filled."""
    nb = nbformat.read(str(released), as_version=4)
    source = nbformat.read(str(REPO / "solutions" / released.parent.name / released.name), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    filled = 0
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in answers:
            cell.source, filled = answers[gid], filled + 1
    nbformat.write(nb, str(out))
    return filled


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new virtual environment holding the course package (built from the checkout) and its dependencies."""
    venv = tmp_path_factory.mktemp("colab") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           str(REPO)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def colab_runs(fresh_venv, tmp_path_factory) -> dict[str, dict]:
    """Every released assignment run alone with its solutions, two at a time: name -> run record."""
    def run(released: Path) -> dict:
        folder = tmp_path_factory.mktemp(released.parent.name)
        notebook = folder / released.name
        filled = fill_in_solutions(released, notebook)
        env = {"PATH": f"{fresh_venv.parent}:/usr/bin:/bin", "HOME": str(folder / "home"), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "COURSE_FAST": os.environ.get("COURSE_FAST", "1"),
               "COURSE_DATA_DIR": str(folder / "data")}
        proc = subprocess.run([str(fresh_venv), "-m", "dlcourse.selfcheck", notebook.name, "--json"], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=1800)
        return {"filled": filled, "returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                "folder": sorted(p.name for p in folder.iterdir())}

    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(zip((p.parent.name for p in NOTEBOOKS), pool.map(run, NOTEBOOKS)))


def test_fresh_venv_does_not_see_the_checkout(fresh_venv):
    """The course package in the fresh environment is an installed copy, not this repository."""
    proc = subprocess.run([str(fresh_venv), "-c", "import dlcourse; print(dlcourse.__file__)"], cwd="/",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not Path(proc.stdout.strip()).resolve().is_relative_to(REPO)


@pytest.mark.parametrize("name", [p.parent.name for p in NOTEBOOKS])
def test_notebook_alone_passes_its_visible_tests(colab_runs, name):
    """Alone in an empty folder, with the solutions filled in, the self-check reports every visible test passing."""
    run = colab_runs[name]
    assert run["filled"] > 0, "no answer cells were filled in"
    assert run["returncode"] in (0, 1), f"self-check crashed: {run['stderr'][-2000:]}"
    report = json.loads(run["stdout"])
    visible = [r for r in report["results"] if r["status"] != "hidden"]
    assert visible, "the self-check found no visible tests: it silently did nothing"
    failed = [f"{r['test']}: {r['message']}" for r in visible if r["status"] != "passed"]
    assert not failed and report["passed"], f"visible tests failed on Colab-like run: {failed}"
