"""Every released assignment and every lecture, run on Colab's versions the way a student runs them there.

Colab preinstalls torch, numpy, IPython, ipykernel, ipywidgets, matplotlib, ...; the setup cell installs
the course package on top with ``--no-deps`` (so Colab's torch is kept), which also hides whether those
versions meet what the package declares. Here, once per session:

* a fresh virtual environment with Colab's versions (``COLAB_VERSIONS``, from Colab's published pip
  freeze), then the student package of a freshly published edition (``autograder.publish``) installed with
  ``pip install --no-deps``, as the setup cell does; its declared dependencies must be met by Colab's
  versions, and the grader's packages (nbgrader, JupyterLab, psycopg) must be absent;
* a ``google.colab`` stub in that environment only (``COLAB_STUB``): a Colab-like kernel imports it at
  start (as Colab's kernel does), so the setup cell takes its Colab branch, and
  ``google.colab._message.blocking_request("get_ipynb")`` answers as Colab's front end does: the notebook
  in the browser, with sources as lists of lines, nbformat 4.0 without cell ids, Colab's metadata (cell
  ``id``/``outputId``/``colab`` keys, the widget state without its ``state`` key) and stale outputs;
* each released assignment, its solution cells filled in, runs top to bottom in that kernel from an
  empty working folder (on Colab the notebook is not on disk), and its last cell, ``self_check()``, must
  report every visible test passing, with nothing on stderr;
* each lecture of the edition runs top to bottom there in fast mode;
* a test cell edited in the browser, sent through the stub, is reported as edited (``nbgrader validate``
  warns about it too).

Deviations from Colab: Python 3.11 (the only Python on the CI machine; Colab has 3.13), and torch
2.11.0 / torchvision 0.26.0 come from PyPI (the CUDA builds; Colab's CPU runtime has the ``+cpu`` wheels of
the same versions from download.pytorch.org, which CI cannot reach; here they run on the CPU).
Building the environment downloads about 5 GB (torch's CUDA libraries) and takes minutes; while authoring,
``COURSE_COLAB_VENV=<dir>`` reuses one built before (the versions are still checked).
What this cannot show: the real front end (whether Colab keeps nbgrader's cell metadata and the sources
byte for byte), the real ``google.colab`` kernel, and pip installing from GitHub.
"""
from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from packaging.requirements import Requirement

from autograder.colab import Repository
from autograder.course import Course
from autograder.publish import publish
from conftest import REPO, released_notebooks
from test_notebooks import SlicedPollClient, lecture_problems

NOTEBOOKS = released_notebooks()
LECTURES = sorted((REPO / "lectures").glob("*.ipynb"))
PARALLEL = 2   # the CI machine's cores

#: googlecolab/backend-info, pip-freeze.txt at a72407924822ea377410b69f0a290150bcb5c9c2 (2026-08-19,
#: "Upgrade to Python 3.13"): what the notebooks and the self-check touch, and what pins them together.
COLAB_FREEZE = "googlecolab/backend-info@a72407924822ea377410b69f0a290150bcb5c9c2 pip-freeze.txt (2026-08-19)"
COLAB_VERSIONS = {
    "torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.1.3", "scipy": "1.16.3", "scikit-learn": "1.6.1",
    "matplotlib": "3.10.0", "matplotlib-inline": "0.2.2", "pillow": "11.3.0", "tqdm": "4.67.3",
    "ipython": "7.34.0", "ipykernel": "6.17.1", "ipywidgets": "7.7.1", "widgetsnbextension": "3.6.10",
    "jupyterlab_widgets": "3.0.16", "traitlets": "5.7.1", "jupyter_client": "7.4.9", "jupyter_core": "5.9.1",
    "pyzmq": "26.2.1", "tornado": "6.5.7", "debugpy": "1.8.15", "prompt_toolkit": "3.0.53",
    "decorator": "4.4.2", "pickleshare": "0.7.5", "backcall": "0.2.0", "Pygments": "2.21.0",
    "nest-asyncio": "1.6.0", "psutil": "5.9.5", "nbformat": "5.11.1", "nbclient": "0.10.4",
    "jsonschema": "4.26.0", "fastjsonschema": "2.22.2",
    # widgetsnbextension 3.6 needs the classic notebook: without this pin pip takes notebook 7 and JupyterLab
    "notebook": "6.5.7", "nbclassic": "1.3.3", "jupyter_server": "2.20.0", "nbconvert": "7.17.1",
}
GRADER_ONLY = ("nbgrader", "jupyterlab", "psycopg", "psycopg-binary", "nh3")   # (Colab has jupyterlab-widgets)

#: google.colab as far as the course uses it; written into the Colab environment's site-packages only.
COLAB_STUB = {
    "google/colab/__init__.py": '"""A stand-in for Colab\'s google.colab (tests/test_colab.py)."""\n'
                                "from google.colab import _message  # noqa: F401\n",
    "google/colab/_message.py": '''"""Colab's channel to the browser: get_ipynb answers with the notebook as the front end holds it."""
import json
import os
import uuid


def _colab_cell(cell, n):
    cell = dict(cell)
    cell.pop("id", None)                                   # nbformat 4.0: no cell ids, ...
    meta = dict(cell.get("metadata", {}), id=uuid.uuid4().hex[:12])   # ... Colab keeps its own in metadata
    src = cell.get("source", "")
    cell["source"] = src.splitlines(keepends=True) if isinstance(src, str) else src
    if cell["cell_type"] == "code":                        # run before, in the browser: stale outputs stay
        meta.update(colab={"base_uri": "https://localhost:8080/"}, outputId=str(uuid.uuid4()))
        cell["execution_count"] = n
        cell["outputs"] = [{"output_type": "stream", "name": "stderr", "text": ["an old run's warning\\n"]},
                           {"output_type": "error", "ename": "AssertionError", "evalue": "an old failure",
                            "traceback": []}]
    cell["metadata"] = meta
    return cell


def colab_form(nb):
    model = uuid.uuid4().hex
    return {"nbformat": 4, "nbformat_minor": 0,
            "metadata": {"colab": {"provenance": [], "name": os.environ.get("COLAB_STUB_NAME", "notebook.ipynb")},
                         "kernelspec": {"name": "python3", "display_name": "Python 3"},
                         "language_info": {"name": "python"}, "accelerator": "GPU",
                         # Colab's widget state: the models straight under the mime type, no "state" key
                         "widgets": {"application/vnd.jupyter.widget-state+json": {model: {
                             "model_module": "@jupyter-widgets/controls", "model_name": "HBoxModel",
                             "model_module_version": "1.5.0", "state": {"children": []}}}}},
            "cells": [_colab_cell(c, i + 1) for i, c in enumerate(nb["cells"])]}


def blocking_request(request_type, request="", timeout_sec=5, parent=None):
    if request_type != "get_ipynb":
        raise NotImplementedError(f"the google.colab stub answers only get_ipynb, not {request_type!r}")
    with open(os.environ["COLAB_STUB_IPYNB"], encoding="utf-8") as f:
        return {"ipynb": colab_form(json.load(f))}
''',
    # Colab's kernels run `python -m colab_kernel_launcher`, which imports google.colab first
    "colab_kernel_launcher.py": "import google.colab  # noqa: F401\n"
                                "from ipykernel import kernelapp\n"
                                "kernelapp.launch_new_instance()\n",
}


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


class Colab:
    """The Colab-like environment: its Python, the wheel the setup cell installs, and its kernel spec."""

    def __init__(self, root: Path, edition: Path):
        self.root, self.edition = root, edition
        self.venv = root / "venv"
        self.python = self.venv / "bin" / "python"
        self.kernels = root / "kernels"

    def build(self) -> None:
        if os.environ.get("COURSE_COLAB_VENV"):   # while authoring: reuse one built before (its versions are checked)
            self.venv = Path(os.environ["COURSE_COLAB_VENV"])
            self.python = self.venv / "bin" / "python"
        else:
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, timeout=300)
            self.pip("install", *[f"{name}=={version}" for name, version in COLAB_VERSIONS.items()], timeout=3000)
        dist = self.root / "dist"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(dist), str(self.edition)], check=True, capture_output=True, timeout=600)
        (wheel,) = dist.glob("dlcourse-*.whl")
        self.spec = f"dlcourse @ {wheel.as_uri()}"   # the setup cell installs this instead of GitHub's copy
        self.pip("install", "--no-deps", "--force-reinstall", self.spec)
        purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        for rel, text in COLAB_STUB.items():
            (Path(purelib) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(purelib) / rel).write_text(text)
        spec = self.kernels / "colab"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(self.python), "-m", "colab_kernel_launcher", "-f", "{connection_file}"],
            "display_name": "Colab (stub)", "language": "python"}))

    def pip(self, *args: str, timeout: int = 600) -> None:
        proc = subprocess.run([str(self.python), "-m", "pip", *args, "-q", "--disable-pip-version-check"],
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def installed(self) -> dict[str, str]:
        code = ("import importlib.metadata as m, json; "
                "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))")
        return json.loads(subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                                         check=True, cwd="/").stdout)

    def as_on_colab(self, nb) -> None:
        """Point the setup cell's ``%pip install`` at the edition's wheel (on Colab: the edition on GitHub)."""
        github = Repository.from_pyproject(REPO).pip_spec()
        setup = [c for c in nb.cells if c.get("metadata", {}).get("dlcourse", {}).get("role") == "setup"]
        assert len(setup) == 1 and github in setup[0].source
        setup[0].source = setup[0].source.replace(github, self.spec)

    def run(self, nb, folder: Path, *, stub_ipynb: Path | None = None):
        """Execute ``nb`` in a Colab kernel whose working folder is an empty ``folder/content``; return it."""
        content = folder / "content"
        content.mkdir(parents=True)
        (folder / "home").mkdir()
        env = {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(folder / "home"), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "COURSE_FAST": "1", "COURSE_DATA_DIR": str(folder / "data"),
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}     # as on Colab
        if stub_ipynb is not None:
            env |= {"COLAB_STUB_IPYNB": str(stub_ipynb), "COLAB_STUB_NAME": stub_ipynb.name}
        km = AsyncKernelManager(kernel_name="colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(self.kernels)]))
        client = SlicedPollClient(nb, km=km, timeout=1800, allow_errors=True,
                                  resources={"metadata": {"path": str(content)}})
        client.execute(env=env, cleanup_kc=True)   # given a kernel manager, nbclient would leave the kernel running
        return nb


def self_check_report(nb) -> dict:
    """The self-check cell's table (its HTML display): test -> status, the summary, and its stderr."""
    cell = nb.cells[-1]
    assert "self_check()" in cell.source, "the last cell is not the self-check"
    page = "".join(o.get("data", {}).get("text/html", "") for o in cell.get("outputs", []))
    found = re.findall(r'<tr data-test="([^"]*)" data-status="(\w+)">.*?</td><td>[^<]*</td><td[^>]*>[^<]*</td>'
                       r'<td>([^<]*)</td></tr>', page)
    rows = {html.unescape(t): s for t, s, _ in found}
    messages = {html.unescape(t): html.unescape(m) for t, _, m in found}
    stderr = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stderr")
    errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
    return {"rows": rows, "messages": messages, "stderr": stderr, "errors": errors,
            "summary": re.sub(r"<[^>]+>", "", page.split("</p>", 1)[0])}


def errors_before_the_self_check(nb) -> list[str]:
    return [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells[:-1]) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


@pytest.fixture(scope="module")
def colab(tmp_path_factory) -> Colab:
    root = tmp_path_factory.mktemp("colab")
    edition = root / "edition"
    # the drift check is `release --check` (tests/test_harness.py::test_release_matches_solutions)
    publish(Course.open(), edition, check_drift=False)
    env = Colab(root, edition)
    env.build()
    return env


@pytest.fixture(scope="module")
def colab_runs(colab, tmp_path_factory) -> dict[str, dict]:
    """Every assignment (solutions filled in) and lecture of the edition, and an edited 01, two at a time."""
    def assignment(released: Path) -> dict:
        folder = tmp_path_factory.mktemp(released.parent.name)
        drive = folder / "drive"                              # the browser's copy, which only the stub reads
        drive.mkdir()
        filled = fill_in_solutions(colab.edition / released.relative_to(REPO), drive / released.name)
        nb = nbformat.read(str(drive / released.name), as_version=4)
        colab.as_on_colab(nb)
        nbformat.write(nb, str(drive / released.name))
        nb = colab.run(nb, folder, stub_ipynb=drive / released.name)
        setup = next(c for c in nb.cells if c.get("metadata", {}).get("dlcourse", {}).get("role") == "setup")
        return {"filled": filled, "errors": errors_before_the_self_check(nb), "report": self_check_report(nb),
                "setup": "".join(o.get("text", "") for o in setup.outputs if o.output_type == "stream")}

    def lecture(path: Path) -> dict:
        folder = tmp_path_factory.mktemp(path.stem)
        nb = nbformat.read(str(colab.edition / path.relative_to(REPO)), as_version=4)
        colab.as_on_colab(nb)
        return {"problems": lecture_problems(colab.run(nb, folder))}

    def edited() -> dict:
        """01 with its solutions, one test cell edited in the browser; the student runs setup, then the self-check."""
        released = REPO / "assignments" / "01_backprop" / "01_backprop.ipynb"
        folder = tmp_path_factory.mktemp("edited")
        (folder / "drive").mkdir()
        browser = folder / "drive" / released.name
        fill_in_solutions(colab.edition / released.relative_to(REPO), browser)
        nb = nbformat.read(str(browser), as_version=4)
        target = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == EDITED_TEST)
        target.source = '"""linear_forward computes X W + b."""\nassert True'
        nbformat.write(nb, str(browser))
        ran = nbformat.v4.new_notebook(cells=[c for c in nb.cells if c.metadata.get("dlcourse", {}).get("role")
                                              in ("setup", "self-check")])
        colab.as_on_colab(ran)
        ran = colab.run(ran, folder, stub_ipynb=browser)
        return {"errors": errors_before_the_self_check(ran), "report": self_check_report(ran)}

    jobs = {**{f"assignment {p.parent.name}": (assignment, p) for p in reversed(NOTEBOOKS)},
            **{f"lecture {p.stem}": (lecture, p) for p in LECTURES}, "edited": (edited,)}
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {name: pool.submit(fn, *args) for name, (fn, *args) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


EDITED_TEST = "test_linear_forward_values"


def test_colab_versions_meet_the_packages_declared_dependencies(colab):
    """Colab's versions satisfy every dependency the student package declares (the setup cell's --no-deps
    would hide a miss), and the grader's packages are not there."""
    installed = colab.installed()
    for name, version in COLAB_VERSIONS.items():
        assert installed.get(name.lower().replace("_", "-")) == version, (name, installed.get(name.lower()))
    code = "import importlib.metadata as m, json; print(json.dumps(m.requires('dlcourse')))"
    requires = json.loads(subprocess.run([str(colab.python), "-c", code], capture_output=True, text=True,
                                         check=True, cwd="/").stdout)
    assert requires, "the student package declares no dependencies"
    unmet = []
    for req in map(Requirement, requires):
        have = installed.get(req.name.lower().replace("_", "-"))
        if have is None or not req.specifier.contains(have, prereleases=True):
            unmet.append(f"{req} (Colab has {have})")
    assert not unmet, f"Colab's versions do not meet the student package's dependencies: {unmet}"
    assert not [n for n in GRADER_ONLY if n in installed], "the grader's packages are in the Colab environment"


def test_colab_venv_does_not_see_the_checkout(colab):
    """The course package in the Colab environment is the edition's wheel, not this repository."""
    proc = subprocess.run([str(colab.python), "-c", "import dlcourse; print(dlcourse.__file__)"], cwd="/",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not Path(proc.stdout.strip()).resolve().is_relative_to(REPO)


@pytest.mark.parametrize("name", [p.parent.name for p in NOTEBOOKS])
def test_assignment_on_colab_passes_its_visible_tests(colab_runs, name):
    """Solutions filled in, run top to bottom in a Colab kernel, the self-check (reading the notebook from
    Colab's front end) reports every visible test passing, and writes nothing to stderr."""
    run = colab_runs[f"assignment {name}"]
    assert run["filled"] > 0, "no answer cells were filled in"
    assert "Colab" in run["setup"], f"the setup cell did not take its Colab branch: {run['setup']!r}"
    assert not run["errors"], f"cells failed on Colab's versions: {run['errors'][:3]}"
    report = run["report"]
    assert not report["errors"] and not report["stderr"].strip(), report["errors"] or report["stderr"][-2000:]
    visible = {t: s for t, s in report["rows"].items() if s != "hidden"}
    assert visible, f"the self-check showed no visible tests: {report['summary']!r}"
    failed = {t: report["messages"][t] for t, s in report["rows"].items() if s == "failed"}
    assert not failed, f"visible tests failed on Colab: {failed}"


@pytest.mark.parametrize("name", [p.stem for p in LECTURES])
def test_lecture_runs_on_colab(colab_runs, name):
    """The edition's lecture runs top to bottom in fast mode in a Colab kernel on Colab's versions."""
    problems = colab_runs[f"lecture {name}"]["problems"]
    assert not problems, "\n".join(problems)


def test_an_edited_test_cell_on_colab_is_reported(colab_runs):
    """A test cell edited in the browser (read through get_ipynb) is reported as edited, not passed, as
    nbgrader validate warns; the others still pass."""
    from dlcourse.selfcheck import EDITED

    run = colab_runs["edited"]
    assert not run["errors"]
    report = run["report"]
    assert not report["errors"] and not report["stderr"].strip(), report["errors"] or report["stderr"][-2000:]
    assert report["rows"][EDITED_TEST] == "failed" and report["messages"][EDITED_TEST] == EDITED
    assert all(s in ("passed", "hidden") for t, s in report["rows"].items() if t != EDITED_TEST), report["rows"]
