"""Grading as an ordinary user: the student process is isolated with bubblewrap, not left bare.

Most instructors are not root. This test prepares a course as root, hands its folder to a throwaway
unprivileged user, and runs ``python -m autograder autograde`` as that user: the run must say it is
isolated with bubblewrap, the honest student must get full marks, and the attacker (reading the
solutions, the gradebook and the grader's home; writing outside its folder; the network) must get
nothing. Skipped unless run as root with bubblewrap installed (``.ci/run`` installs it).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder.collect import collect
from autograder.course import Course
from autograder.release import release
from autograder.reports import cell_scores
from conftest import REPO, read

ASSIGNMENT = "01_backprop"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
USER = "course-grader-test"

PROBE = '''
import os, socket
_seen = dict()
for _path in [{solution!r}, {gradebook!r}, os.path.expanduser("~/.ssh/id_rsa"), "/root/.bash_history"]:
    try:
        _seen[_path] = open(_path, "rb").read(64).decode(errors="replace")
    except OSError as err:
        _seen[_path] = type(err).__name__
for _path in ["/usr/pwned", {outside!r}]:
    try:
        open(_path, "w").write("pwned")
        _seen["write " + _path] = "written"
    except OSError as err:
        _seen["write " + _path] = type(err).__name__
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
    _seen["net"] = "connected"
except OSError as err:
    _seen["net"] = type(err).__name__
print("ATTACK", repr(_seen))
'''


def _run_as(user: str, *args, cwd=None, timeout=1800):
    return subprocess.run(["runuser", "-u", user, "--", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": f"/home/{user}",
                                                "COURSE_FAST": os.environ.get("COURSE_FAST", "1"), "LANG": "C.UTF-8"})


@pytest.fixture(scope="module")
def graded_as_user(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("bwrap") or not shutil.which("runuser"):
        pytest.skip("needs root (to make a throwaway user), bubblewrap and runuser")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    probe = _run_as(USER, sys.executable, "-c", "print('ok')")
    if probe.returncode != 0:
        pytest.skip(f"{USER} cannot run this Python ({probe.stderr.strip()[-200:]}); .ci/run makes it reachable")
    base = Path(tempfile.mkdtemp(prefix="course-as-user-", dir="/tmp"))   # pytest's own tmp is root's only
    root = base / "course"
    course = Course.open(root=root, repo=REPO, db_url=f"sqlite:///{root / 'gradebook.db'}")
    release(course, [ASSIGNMENT])
    inbox = base / "inbox"
    outside = base / "outside" / "pwned.txt"
    outside.parent.mkdir(parents=True)
    for student, nb in {"honest": read(SOLUTION), "attacker": read(SOLUTION)}.items():
        if student == "attacker":
            nb.cells.insert(0, new_code_cell(textwrap.dedent(PROBE.format(
                solution=str(SOLUTION.parent / "mutants.py"), gradebook=str(root / "gradebook.db"),
                outside=str(outside)))))
        (inbox / student / ASSIGNMENT).mkdir(parents=True)
        nbformat.write(nb, str(inbox / student / ASSIGNMENT / SOLUTION.name))
    collect(course, inbox)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(base)], check=True)
    proc = _run_as(USER, sys.executable, "-m", "autograder", "--course", str(root), "autograde", ASSIGNMENT,
                   "--workers", "2", cwd=str(REPO))
    yield course, proc, outside
    shutil.rmtree(base, ignore_errors=True)


def test_grading_as_a_user_is_isolated_with_bubblewrap(graded_as_user):
    """The run reports bubblewrap isolation, grades both students, and the honest one gets full marks."""
    course, proc, _ = graded_as_user
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "isolated with bubblewrap" in proc.stdout, proc.stdout[-1500:]
    scores = cell_scores(course, ASSIGNMENT, "honest")
    assert scores and all(got == full for got, full in scores.values()), scores
    state = json.loads((course.reports_dir / "autograde.json").read_text())
    assert {state[f"{ASSIGNMENT}/{s}"]["status"] for s in ("honest", "attacker")} == {"graded"}


def test_the_attacker_reaches_nothing(graded_as_user):
    """The solutions, the gradebook, home folders and the network are out of reach; nothing is written outside."""
    course, _, outside = graded_as_user
    nb = read(course.autograded("attacker", ASSIGNMENT) / SOLUTION.name)
    line = next(o["text"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if "ATTACK" in o.get("text", ""))
    seen = eval(line.split("ATTACK", 1)[1].strip())   # the probe printed a dict of str -> str
    assert all(v in ("FileNotFoundError", "PermissionError", "OSError", "ConnectionRefusedError")
               or v.startswith(("OSError", "ConnectionRefused")) for v in seen.values()), seen
    assert not outside.exists()
    assert not os.path.exists("/usr/pwned")
