"""The students' self-check (dlcourse.selfcheck) and the generated Colab/setup/self-check cells."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

from autograder.colab import README_END, README_START, Repository, stamp_repository, targets
from autograder.mutants import load_mutants, write_mutant_submission
from conftest import REPO, released_notebooks
from dlcourse import selfcheck


def nbgrader_validate_failures(path: Path) -> set[str]:
    """grade_ids of the test cells that `nbgrader validate` reports as failed."""
    from nbgrader.validator import Validator

    nb = nbformat.read(str(path), as_version=4)
    by_source = {c.source.strip(): c.metadata["nbgrader"]["grade_id"] for c in selfcheck.visible_tests(nb)}
    result = Validator(config=Config({"Execute": {"timeout": 300}})).validate(str(path))
    assert "changed" not in result and "type_changed" not in result, result
    return {by_source[f["source"]] for f in result.get("failed", []) if f["source"] in by_source}


def self_check_failures(path: Path) -> set[str]:
    report = selfcheck.check_notebook(nbformat.read(str(path), as_version=4), path.name, show_progress=False)
    return {r.test for r in report.results if r.status == "failed"}


@pytest.mark.parametrize("path", released_notebooks(), ids=lambda p: p.parent.name)
def test_self_check_agrees_with_nbgrader_validate_on_the_release(path, tmp_path):
    """On each blank release, the self-check fails exactly the visible tests nbgrader validate fails."""
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    expected = nbgrader_validate_failures(copy)
    assert expected, "nbgrader validate passes the blank release: its visible tests cannot fail"
    assert self_check_failures(copy) == expected


def _submissions_of_unit_01(tmp_path: Path) -> list[Path]:
    solution = REPO / "solutions" / "01_backprop" / "01_backprop.ipynb"
    out = [tmp_path / "perfect.ipynb"]
    shutil.copy(solution, out[0])
    for mutant in load_mutants(solution.parent)[:3]:
        out.append(tmp_path / f"{mutant.name}.ipynb")
        write_mutant_submission(solution, mutant, out[-1])
    return out


def test_self_check_agrees_with_nbgrader_validate_on_answers(tmp_path):
    """On the solution and on wrong answers (mutants), the self-check and nbgrader validate agree."""
    for path in _submissions_of_unit_01(tmp_path):
        assert self_check_failures(path) == nbgrader_validate_failures(path), path.stem


def test_cli_exit_status_and_table(tmp_path):
    """`python -m dlcourse.selfcheck` prints the table, exits 1 on failures, and --json is machine-readable."""
    copy = tmp_path / "01_backprop.ipynb"
    shutil.copy(REPO / "assignments" / "01_backprop" / "01_backprop.ipynb", copy)
    run = lambda *extra: subprocess.run([sys.executable, "-m", "dlcourse.selfcheck", str(copy), *extra],
                                        capture_output=True, text=True, timeout=600)
    text = run()
    assert text.returncode == 1, text.stderr
    assert "FAILED" in text.stdout and "visible tests pass" in text.stdout and "may still fail" in text.stdout
    report = json.loads(run("--json").stdout)
    assert report["passed"] is False
    assert {r["status"] for r in report["results"]} == {"failed", "hidden"}


@pytest.mark.parametrize("content,why", [(None, "No such file"), ("{not json", "self-check"),
                                         ('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
                                          "no test cells")])
def test_cli_bad_input_says_why(tmp_path, content, why):
    """A missing file, a broken notebook or a notebook without tests: exit 2 and one clear line."""
    path = tmp_path / "mine.ipynb"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "dlcourse.selfcheck", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert why in proc.stderr and "Traceback" not in proc.stderr


def test_self_check_does_nothing_while_grading(monkeypatch, capsys):
    """Inside a grader's (or the self-check's own) run, the self-check cell is a no-op: no recursion."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert selfcheck.self_check("does-not-exist.ipynb") is None
    assert "skipped" in capsys.readouterr().out


def test_html_table_marks_each_test():
    """The notebook view is a table with one row per test, marked passed, failed or hidden."""
    report = selfcheck.Report("x.ipynb", [selfcheck.TestResult("test_a", 2, "passed"),
                                          selfcheck.TestResult("test_b", 1, "failed", "AssertionError: <b>"),
                                          selfcheck.TestResult("test_c", 1, "hidden", selfcheck.HIDDEN_ONLY)])
    page = report._repr_html_()
    assert 'class="dlcourse-self-check"' in page
    for test, status in (("test_a", "passed"), ("test_b", "failed"), ("test_c", "hidden")):
        assert f'data-test="{test}" data-status="{status}"' in page
    assert "&lt;b&gt;" in page and "<b>" not in page.split("</p>", 1)[1]
    assert not report.passed and "1 of 2 visible tests pass (2/3 points)" in report.summary()


def test_every_notebook_has_badge_setup_and_self_check():
    """Badge first, setup as the first code cell, and (assignments) the self-check cell last."""
    repository = Repository.from_pyproject(REPO)
    notebooks = [(t.path, t.colab_path, t.self_check) for t in targets(REPO)]
    notebooks += [(p, p.relative_to(REPO).as_posix(), True) for p in released_notebooks()]
    assert len(notebooks) >= 25
    for path, colab_path, has_self_check in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        assert nb.cells[0].source == f"[![Open In Colab]({'https://colab.research.google.com/assets/colab-badge.svg'})]" \
                                     f"({repository.colab_url(colab_path)})", path
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert first_code.metadata.get("dlcourse", {}).get("role") == "setup", path
        assert ("self_check()" in nb.cells[-1].source) == has_self_check, path


def test_generated_cells_match_what_release_writes():
    """Badges, setup and self-check cells and the README links are exactly what `make release` writes."""
    assert stamp_repository(REPO, check=True) == []


def test_repository_url_is_set_in_one_place(tmp_path):
    """Changing pyproject.toml's repository and re-stamping rewrites every badge, setup cell and README link."""
    for part in ("lectures", "solutions"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    old = Repository.from_pyproject(REPO)
    text = (REPO / "pyproject.toml").read_text().replace(old.url, "https://github.com/some-school/dl-fork")
    (tmp_path / "pyproject.toml").write_text(text)
    changed = stamp_repository(tmp_path)
    assert len(changed) == len(targets(REPO)) + 1   # every notebook and the README
    assert stamp_repository(tmp_path, check=True) == []
    for path in [*tmp_path.rglob("*.ipynb"), tmp_path / "README.md"]:
        content = path.read_text()
        assert old.url.removeprefix("https://") not in content, path
        assert "some-school/dl-fork" in content, path


def test_readme_links_every_lecture_and_assignment():
    """The README's Colab table has a link for every lecture and every released assignment."""
    repository = Repository.from_pyproject(REPO)
    block = (REPO / "README.md").read_text().split(README_START)[1].split(README_END)[0]
    for path in [*sorted((REPO / "lectures").glob("*.ipynb")), *released_notebooks()]:
        assert repository.colab_url(path.relative_to(REPO).as_posix()) in block, path


def test_describe_runtime_is_cheap_locally(tmp_path):
    """Locally the setup cell does not import torch (unit 01 never needs it)."""
    code = "import sys; from dlcourse import describe_runtime; describe_runtime(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("False"), proc.stdout + proc.stderr
    assert "local" in proc.stdout


def test_checksum_is_nbgraders():
    """The self-check's checksum of every graded or locked cell equals nbgrader's (it runs without nbgrader)."""
    from nbgrader.utils import compute_checksum

    cells = [c for p in [*released_notebooks(), *sorted((REPO / "solutions").glob("*/*.ipynb"))]
             for c in nbformat.read(str(p), as_version=4).cells if "grade_id" in c.metadata.get("nbgrader", {})]
    assert cells and all(selfcheck.checksum(c) == compute_checksum(c) for c in cells)


def test_an_edited_test_cell_does_not_count_and_colab_line_lists_are_read(tmp_path):
    """A perfect 01 handed in as Colab sends it (sources as lists of lines) passes; with one test cell edited
    that test is reported as edited, not passed, as nbgrader validate warns."""
    solution = nbformat.read(str(REPO / "solutions" / "01_backprop" / "01_backprop.ipynb"), as_version=4)
    answers = {c.metadata.nbgrader.grade_id: c.source for c in solution.cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    nb = nbformat.read(str(REPO / "assignments" / "01_backprop" / "01_backprop.ipynb"), as_version=4)
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    as_colab = json.loads(nbformat.writes(nb))       # what Colab's get_ipynb answers: lists of lines
    assert any(isinstance(c["source"], list) for c in as_colab["cells"])
    report = selfcheck.check_notebook(as_colab, "perfect", show_progress=False)
    assert report.passed, str(report)

    target = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_linear_forward_values")
    target.source = '"""linear_forward computes X W + b."""\nassert True'
    report = selfcheck.check_notebook(nb, "edited", show_progress=False)
    by_test = {r.test: r for r in report.results}
    assert by_test["test_linear_forward_values"].status == "failed"
    assert by_test["test_linear_forward_values"].message == selfcheck.EDITED
    assert not report.passed and all(r.passed for t, r in by_test.items()
                                     if t != "test_linear_forward_values" and r.status != "hidden")



def test_colab_reply_is_read_and_an_edited_test_cell_is_found(monkeypatch, tmp_path):
    """On Colab the notebook comes from get_ipynb (the stub of tests/test_colab.py: lists of lines, nbformat
    4.0, Colab's metadata, stale outputs): it reads back cell for cell, and the one edited test cell is found."""
    import types

    from test_colab import COLAB_STUB

    message = types.ModuleType("google.colab._message")
    exec(COLAB_STUB["google/colab/_message.py"], message.__dict__)
    colab = types.ModuleType("google.colab")
    colab._message = message
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab._message", message)
    released = REPO / "assignments" / "01_backprop" / "01_backprop.ipynb"
    nb = nbformat.read(str(released), as_version=4)
    target = next(c for c in selfcheck.visible_tests(nb) if c.metadata.nbgrader.grade_id == "test_linear_forward_values")
    target.source += "\nassert True"
    browser = tmp_path / released.name
    nbformat.write(nb, str(browser))
    monkeypatch.setenv("COLAB_STUB_IPYNB", str(browser))
    reply = message.blocking_request("get_ipynb", request="", timeout_sec=60)["ipynb"]
    assert all(isinstance(c["source"], list) for c in reply["cells"]) and reply["nbformat_minor"] == 0
    got, name = selfcheck._this_notebook()
    assert name == "this Colab notebook"
    assert [c.source for c in got.cells] == [c.source for c in nb.cells]
    assert [c.metadata.nbgrader.grade_id for c in selfcheck.visible_tests(got) if selfcheck.edited(c)] == \
        ["test_linear_forward_values"]
