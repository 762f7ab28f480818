"""Every committed notebook: valid, without outputs, unique grade ids; every lecture runs."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from queue import Empty
from time import monotonic

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.util import ensure_async

from autograder.release import lint_notebook
from conftest import REPO

class SlicedPollClient(NotebookClient):
    """Waits for each shell reply in 1 s slices.

    On a loaded machine nbclient can miss the reply to a cell that displays widgets and then waits
    out the whole cell timeout; polling in slices notices the reply within a second.
    """

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        wait = kc.shell_channel.get_msg

        async def get_msg(timeout=None):
            deadline = None if timeout is None else monotonic() + timeout
            while True:
                left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - monotonic()))
                try:
                    return await ensure_async(wait(timeout=left))
                except Empty:
                    if deadline is not None and monotonic() >= deadline:
                        raise

        kc.shell_channel.get_msg = get_msg
        return kc


NOTEBOOKS = sorted(p for d in ("lectures", "solutions", "assignments") for p in (REPO / d).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
LECTURES = sorted((REPO / "lectures").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_is_clean(path):
    """Valid notebook format, no committed outputs, grade ids present and unique."""
    problems = lint_notebook(path, source=path.is_relative_to(REPO / "solutions"))
    assert not problems, "\n".join(problems)


def test_notebooks_are_tracked_without_outputs():
    """git holds the notebooks, so the check above covers what CI clones."""
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=REPO, capture_output=True, text=True).stdout
    if not tracked:  # running outside a git checkout (e.g. from an sdist)
        pytest.skip("not a git checkout")
    assert set(tracked.split()) >= {str(p.relative_to(REPO)) for p in NOTEBOOKS}


def test_there_are_lectures():
    """At least one lecture exists, so the lecture check below is not vacuous."""
    assert LECTURES


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_runs_top_to_bottom(path, tmp_path):
    """The lecture executes without an error in fast mode (COURSE_FAST=1 cuts data, not logic)."""
    nb = nbformat.read(str(path), as_version=4)
    os.environ["COURSE_FAST"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    client = SlicedPollClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    problems = lecture_problems(nb)
    assert not problems, "\n".join(problems)


def lecture_problems(nb) -> list[str]:
    """What is wrong with an executed lecture (also used on Colab's versions, tests/test_colab.py)."""
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    problems = [] if all(c.get("execution_count") for c in code_cells) else ["some code cells did not run"]
    problems += [f"{o.ename}: {o.evalue}" for c in code_cells for o in c.get("outputs", []) if o.output_type == "error"]
    if not any(o.output_type in ("display_data", "execute_result") for c in code_cells for o in c.get("outputs", [])):
        problems.append("the lecture displayed nothing: did it silently do nothing?")
    return problems
