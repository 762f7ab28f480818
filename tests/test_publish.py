"""The student edition (python -m autograder publish DIR): what students need, and nothing private."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from autograder.course import Course
from autograder.publish import PublishError, edition_leaks, private_texts, publish
from conftest import REPO


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    dest = tmp_path_factory.mktemp("edition") / "course-edition"
    # the drift check is `release --check` (tests/test_harness.py::test_release_matches_solutions)
    files = publish(Course.open(), dest, check_drift=False)
    return dest, files


def test_edition_holds_every_lecture_assignment_and_the_student_package(edition):
    """Lectures, released assignments, dlcourse, README with a Colab link per notebook, licence, and no grader."""
    dest, files = edition
    for path in [*(REPO / "lectures").glob("*.ipynb"), *(REPO / "assignments").glob("*/*.ipynb")]:
        rel = path.relative_to(REPO).as_posix()
        assert rel in files, rel
        assert rel in (dest / "README.md").read_text(), f"the README links no Colab copy of {rel}"
    assert {"LICENSE", "README.md", "pyproject.toml", "lectures/SYLLABUS.md", "lectures/GLOSSARY.md",
            "dlcourse/selfcheck.py"} <= set(files)
    project = tomllib.loads((dest / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"])
    assert not any(name in deps for name in ("nbgrader", "jupyterlab", "psycopg", "nh3", "=="))
    assert all(">=" in d for d in project["dependencies"])


def test_student_and_grader_dependencies_come_from_one_pyproject(edition):
    """The repository's dependencies are the student package's lower bounds (the edition's, word for word); the
    grader extra keeps the exact pins and what only instructors need; the Makefile installs both."""
    dest, _ = edition
    ours = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    theirs = tomllib.loads((dest / "pyproject.toml").read_text())["project"]
    assert theirs["dependencies"] == ours["dependencies"]
    grader = " ".join(ours["optional-dependencies"]["grader"])
    for pin in ("torch==", "torchvision==", "nbgrader==", "jupyterlab", "psycopg", "nh3"):
        assert pin in grader, f"the grader extra lacks {pin}"
    assert "'.[grader,dev]'" in (REPO / "Makefile").read_text()


def test_edition_package_builds_with_only_dlcourse(edition, tmp_path):
    """The edition's pyproject builds a wheel of dlcourse alone (what Colab's setup cell installs)."""
    dest, _ = edition
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(dest)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("dlcourse-*.whl")
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"dlcourse"}


def test_edition_holds_no_solution_hidden_test_or_mutant(edition):
    """Scanning the edition for every solution region, model answer, hidden test and mutant finds none."""
    dest, _ = edition
    texts = private_texts(REPO)
    kinds = {where.split("(")[-1].rstrip(")") for where, _ in texts if "(" in where}
    assert {"solution", "hidden test", "model answer"} <= kinds and any("mutant" in w for w, _ in texts)
    assert edition_leaks(dest, REPO) == []


def test_the_scan_finds_planted_leaks(edition, tmp_path):
    """A solution notebook, a hidden test pasted into a note, and a mutants file are each reported."""
    dest, _ = edition
    copy = tmp_path / "copy"
    shutil.copytree(dest, copy)
    shutil.copy(REPO / "solutions" / "01_backprop" / "01_backprop.ipynb", copy / "assignments" / "01_backprop" / "key.ipynb")
    hidden = next(t for where, t in private_texts(REPO) if where.startswith("03_losses/") and "hidden test" in where)
    (copy / "lectures" / "notes.md").write_text("my notes\n\n" + hidden.replace("\n", "\n    ") + "\n")
    shutil.copy(REPO / "solutions" / "02_activations" / "mutants.py", copy / "dlcourse" / "mutants.py")
    problems = "\n".join(edition_leaks(copy, REPO))
    assert "key.ipynb: holds '### BEGIN SOLUTION'" in problems and "key.ipynb: holds 01_backprop/" in problems
    assert "notes.md: holds 03_losses/" in problems and "(hidden test)" in problems
    assert "dlcourse/mutants.py: a private file" in problems


def test_publish_refuses_a_non_empty_folder_and_the_repository(tmp_path):
    """Publishing never overwrites a folder silently and never writes into the source."""
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("mine")
    with pytest.raises(PublishError, match="not empty"):
        publish(Course.open(), tmp_path / "busy")
    assert (tmp_path / "busy" / "thesis.tex").read_text() == "mine"
    with pytest.raises(PublishError, match="inside the source"):
        publish(Course.open(), REPO / "build" / "edition")
