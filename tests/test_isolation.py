"""Student code is graded in a sandbox: the tests play the attacker.

One honest student, a victim graded earlier, and one attacker per attack are graded together
with 2 workers and the real Autograder. Each attacker is a copy of the solution with an extra
cell that tries one kind of harm and prints what happened (``ATTACK <what>: ...``). The attacks
are scaled so that even a failed sandbox cannot hurt the machine: a 2 GB memory cap and an attempt
at 4 GB, a cap of 64 processes and a loop that stops itself at 500, a 1 GB file cap and an
attempt at 2 GB. The course root lives inside the repository (``build/``), as an instructor's does,
so hiding it, not just the private ``/tmp``, is what is tested.
"""
from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import socket
import sqlite3
import textwrap
import threading

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder.collect import collect
from autograder.course import Course
from autograder.grade import Autograder
from autograder.release import release
from autograder.reports import cell_scores
from autograder.sandbox import Limits, cgroup_parents, check
from conftest import REPO, read

ASSIGNMENT = "01_backprop"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
NOTEBOOK = SOLUTION.name
LIMITS = Limits(memory_mb=2048, processes=64, file_mb=1024)
MB = 2 ** 20

PRELUDE = '''
import hashlib, os
def _try(label, action):
    try:
        print(f"ATTACK {label}: SUCCEEDED {action()}")
    except Exception as err:
        print(f"ATTACK {label}: blocked ({type(err).__name__})")
def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
'''

READ_SOLUTION = '''
import socket
_try("read the solution", lambda: _sha({solution!r}))
_try("read the solution by a relative path", lambda: _sha({solution_rel!r}))
_try("list solutions/", lambda: os.listdir({solutions!r}))
_try("read the mutants", lambda: _sha({mutants!r}))
_try("read another student's submission", lambda: _sha({victim_submitted!r}))
_try("read the gradebook", lambda: _sha({gradebook!r}))
for _pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    _try(f"read the solution through /proc/{{_pid}}/root", lambda p=_pid: _sha(f"/proc/{{p}}/root{solution}"))
_try("send to a local port", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"leak"))
print("PROCESSES VISIBLE", len([p for p in os.listdir("/proc") if p.isdigit()]))
'''

OVERWRITE_GRADEBOOK = '''
import sqlite3
def _overwrite(path):
    with open(path, "r+b") as f:
        f.write(b"\\0" * 4096)
    return "overwritten"
def _delete_grades(path):
    db = sqlite3.connect(f"file:{{path}}?mode=rw", uri=True)
    db.execute("DELETE FROM grade")
    db.commit()
    return "grades deleted"
_try("overwrite gradebook.db", lambda: _overwrite({gradebook!r}))
_try("overwrite gradebook.db by a relative path", lambda: _overwrite({gradebook_rel!r}))
_try("delete every grade with sqlite", lambda: _delete_grades({gradebook!r}))
_try("remove gradebook.db", lambda: os.remove({gradebook!r}))
'''

EDIT_OTHERS = '''
def _edit(path):
    with open(path, "a") as f:
        f.write("ATTACKED")
    return "edited"
_try("edit another student's autograded notebook", lambda: _edit({victim_autograded!r}))
_try("edit it by a relative path", lambda: _edit({victim_autograded_rel!r}))
_try("edit a concurrently graded notebook", lambda: _edit({honest_autograded!r}))
_try("edit another student's submission", lambda: _edit({victim_submitted!r}))
_try("drop a file among another student's results",
     lambda: open(os.path.join(os.path.dirname({victim_autograded!r}), "evil.txt"), "w").write("x"))
'''

FORK = '''
import os
_r, _w = os.pipe()
_kids, _stop = [], "nothing"
try:
    while len(_kids) < 500:          # stops itself, even if nothing else does
        _pid = os.fork()
        if _pid == 0:
            os.close(_w)
            try:
                os.read(_r, 1)           # wait until the parent lets go
            finally:
                os._exit(0)
        _kids.append(_pid)
except OSError as err:
    _stop = type(err).__name__
os.close(_w)
os.close(_r)
for _pid in _kids:
    os.waitpid(_pid, 0)
print(f"ATTACK processes: spawned {len(_kids)}, stopped by {_stop}")
'''

MEMORY = '''
import numpy as np
_chunks = []
try:
    while len(_chunks) < 64:         # 64 x 64 MB = 4 GB, then stop
        _chunks.append(np.ones(64 * 2**20 // 8))
    print(f"ATTACK memory: allocated {len(_chunks) * 64} MB")
except MemoryError:
    print(f"ATTACK memory: MemoryError after {len(_chunks) * 64} MB")
del _chunks
'''

BIG_FILE = '''
import os
_written, _stop, _block = 0, "nothing", b"\\0" * (16 * 2**20)
try:
    with open("big.bin", "wb") as f:
        while _written < 2 * 2**30:      # 2 GB, then stop
            f.write(_block)
            f.flush()
            _written += len(_block)
except OSError as err:
    _stop = os.strerror(err.errno) if err.errno else type(err).__name__
finally:
    if os.path.exists("big.bin"):
        os.remove("big.bin")
print(f"ATTACK file: wrote {_written // 2**20} MB, stopped by {_stop}")
'''

HONEST = '''
import os
import torch
print("FILES", sorted(os.listdir(".")))
with open("notes.txt") as f:
    print("NOTES", f.read())
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
X, y = torch.randn(64, 4), torch.randn(64, 1)
for _ in range(20):
    loss = torch.nn.functional.mse_loss(model(X), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
torch.save(model.state_dict(), "model.pth")       # beside the notebook, as an experiment does
again = torch.nn.Linear(4, 1)
again.load_state_dict(torch.load("model.pth"))
assert torch.equal(again.weight, model.weight)
print("TRAINED AND RELOADED", os.path.getsize("model.pth") > 0)
'''

ATTACKS = {"reads-solution": READ_SOLUTION, "overwrites-gradebook": OVERWRITE_GRADEBOOK,
           "edits-others": EDIT_OTHERS, "fork-bomb": FORK, "memory-hog": MEMORY, "big-file": BIG_FILE}
#: attacks that name the paths they go after (templates for str.format, with PRELUDE's helpers)
TARGETED = {"reads-solution", "overwrites-gradebook", "edits-others"}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_cell(source: str, at_end: bool = False):
    nb = read(SOLUTION)
    nb.cells.insert(len(nb.cells) if at_end else 0, new_code_cell(source))
    return nb


def _total(course, student):
    s = cell_scores(course, ASSIGNMENT, student)
    return sum(v[0] for v in s.values()), sum(v[1] for v in s.values())


def _outputs(course, student) -> str:
    path = course.autograded(student, ASSIGNMENT) / NOTEBOOK
    if not path.exists():
        return ""
    nb = read(path)
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")


def _attack_lines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ATTACK (.+?): (.*)$", text, re.M))


class _Listener:
    """A TCP server on 127.0.0.1 recording whatever reaches it."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                self.received.append(conn.recv(100) or b"(connected)")

    def close(self):
        self.stopped.set()
        self.sock.close()


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    probe, why = check()
    if probe is None:
        pytest.skip(f"grading isolation is unavailable here: {why}")
    root = REPO / "build" / f"isolation-test-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    course = Course.open(root=root, repo=REPO, db_url=f"sqlite:///{root / 'gradebook.db'}")
    release(course, [ASSIGNMENT])
    grader = lambda: Autograder(course, workers=2, cell_timeout=120, show_progress=False,  # noqa: E731
                                isolation=True, limits=LIMITS)
    # the victim is graded first, so its results exist when the attackers run
    inbox = tmp_path_factory.mktemp("inbox-victim")
    (inbox / "victim" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(SOLUTION, inbox / "victim" / ASSIGNMENT / NOTEBOOK)
    collect(course, inbox)
    first = grader().run()
    victim_nb = course.autograded("victim", ASSIGNMENT) / NOTEBOOK
    before = {"victim_sha": _sha(victim_nb), "victim_score": _total(course, "victim"),
              "solution_sha": _sha(SOLUTION), "first": first}

    listener = _Listener()
    kernel_cwd = course.autograded("ATTACKER", ASSIGNMENT)   # where nbgrader starts each kernel
    paths = {
        "solution": str(SOLUTION), "solutions": str(SOLUTION.parent.parent),
        "solution_rel": os.path.relpath(SOLUTION, kernel_cwd),
        "mutants": str(SOLUTION.parent / "mutants.py"),
        "gradebook": str(root / "gradebook.db"),
        "gradebook_rel": os.path.relpath(root / "gradebook.db", kernel_cwd),
        "victim_submitted": str(course.submitted("victim", ASSIGNMENT) / NOTEBOOK),
        "victim_autograded": str(victim_nb),
        "victim_autograded_rel": os.path.relpath(victim_nb, kernel_cwd),
        "honest_autograded": str(course.autograded("honest", ASSIGNMENT) / NOTEBOOK),
        "port": listener.port,
    }
    inbox = tmp_path_factory.mktemp("inbox")
    for student, attack in ATTACKS.items():
        folder = inbox / student / ASSIGNMENT
        folder.mkdir(parents=True)
        source = PRELUDE + attack.format(**paths) if student in TARGETED else attack
        nbformat.write(_with_cell(textwrap.dedent(source)), str(folder / NOTEBOOK))
    folder = inbox / "honest" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(_with_cell(HONEST, at_end=True), str(folder / NOTEBOOK))
    (folder / "notes.txt").write_text("my own notes")
    collect(course, inbox)
    second = grader()
    try:
        results = {r.student: r for r in second.run()}
    finally:
        listener.close()
    yield course, results, second, before, listener
    shutil.rmtree(root, ignore_errors=True)


def test_everyone_is_graded_in_the_sandbox(attacked):
    """Every submission ran isolated, and the mode is in the results and the logs."""
    course, results, grader, before, _ = attacked
    assert set(results) == {*ATTACKS, "honest", "victim"}
    assert grader.isolation_mode.startswith("isolated"), grader.isolation_mode
    assert all(r.isolated for r in results.values() if r.status != "skipped")
    log = (course.root / "logs" / ASSIGNMENT / "honest.log").read_text()
    assert log.startswith("[grading isolated"), log[:200]


def test_honest_student_gets_full_marks(attacked):
    """The honest notebook sees its own files, trains with torch and reloads a saved model in its
    scratch folder, and scores exactly full marks; the victim's score did not move."""
    course, results, _, before, _ = attacked
    assert results["honest"].status == "graded", results["honest"].reason
    got, full = _total(course, "honest")
    assert got == full > 0
    out = _outputs(course, "honest")
    assert "NOTES my own notes" in out and "TRAINED AND RELOADED True" in out, out[-2000:]
    files = ast.literal_eval(re.search(r"^FILES (.*)$", out, re.M).group(1))
    assert set(files) <= {NOTEBOOK, "notes.txt", "timestamp.txt"}, files
    assert _total(course, "victim") == before["victim_score"] and before["victim_score"][0] > 0
    # model.pth stayed in the scratch folder
    assert not (course.autograded("honest", ASSIGNMENT) / "model.pth").exists()


def _assert_all_blocked(course, student, expected: int):
    lines = _attack_lines(_outputs(course, student))
    assert len(lines) >= expected, f"the attack did not run: {lines}"
    leaked = {k: v for k, v in lines.items() if not v.startswith("blocked")}
    assert not leaked, f"{student}: {leaked}"
    return lines


def test_solution_cannot_be_read(attacked):
    """Neither the solution nor the mutants, another submission or the gradebook can be read, by any
    path; no other process is visible; nothing leaves through the network."""
    course, results, _, before, listener = attacked
    _assert_all_blocked(course, "reads-solution", 8)
    out = _outputs(course, "reads-solution")
    assert before["solution_sha"] not in out
    assert int(re.search(r"PROCESSES VISIBLE (\d+)", out).group(1)) <= 2, out
    assert listener.received == []


def test_gradebook_cannot_be_overwritten(attacked):
    """The gradebook survives: every write is refused, SQLite finds no corruption, everyone is in it."""
    course, results, _, _, _ = attacked
    _assert_all_blocked(course, "overwrites-gradebook", 4)
    with sqlite3.connect(course.root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        students = {row[0] for row in db.execute("SELECT id FROM student")}
    assert students == {*ATTACKS, "honest", "victim"}
    assert _total(course, "honest")[0] == _total(course, "honest")[1]


def test_other_students_results_cannot_be_edited(attacked):
    """Another student's autograded notebook, submission and results folder stay byte for byte."""
    course, results, _, before, _ = attacked
    _assert_all_blocked(course, "edits-others", 5)
    assert _sha(course.autograded("victim", ASSIGNMENT) / NOTEBOOK) == before["victim_sha"]
    assert not (course.autograded("victim", ASSIGNMENT) / "evil.txt").exists()
    assert "ATTACKED" not in (course.autograded("honest", ASSIGNMENT) / NOTEBOOK).read_text()
    assert "ATTACKED" not in (course.submitted("victim", ASSIGNMENT) / NOTEBOOK).read_text()


def test_process_cap(attacked):
    """A fork loop is stopped below the cap of 64 (the kernel's own threads count too), is reported,
    and the rest of that notebook is still graded."""
    course, results, _, _, _ = attacked
    line = _attack_lines(_outputs(course, "fork-bomb"))["processes"]
    spawned = int(re.match(r"spawned (\d+), stopped by (\w+)", line).group(1))
    assert spawned < LIMITS.processes and "stopped by nothing" not in line, line
    r = results["fork-bomb"]
    assert r.status == "graded" and _total(course, "fork-bomb")[0] > 0
    if "pids" in cgroup_parents():
        assert any("process limit" in e for e in r.events), r.events


def test_memory_cap(attacked):
    """A 4 GB allocation stops at the 2 GB cap: the student process is killed there (cgroup) or gets a
    MemoryError (RLIMIT_DATA); the instructor is told; nobody else is affected."""
    course, results, _, _, _ = attacked
    r = results["memory-hog"]
    line = _attack_lines(_outputs(course, "memory-hog")).get("memory", "")
    assert "allocated 4096" not in line
    if "memory" in cgroup_parents():
        assert any("memory limit (2048 MB)" in e for e in r.events), r.events
        assert _total(course, "memory-hog")[0] == 0
    else:
        mb = int(re.search(r"MemoryError after (\d+) MB", line).group(1))
        assert mb <= LIMITS.memory_mb


def test_file_size_cap(attacked):
    """A 2 GB file stops at the 1 GB cap with "File too large"; the notebook is still graded."""
    course, results, _, _, _ = attacked
    line = _attack_lines(_outputs(course, "big-file"))["file"]
    written = int(re.match(r"wrote (\d+) MB", line).group(1))
    assert written <= LIMITS.file_mb and "File too large" in line, line
    assert results["big-file"].status == "graded"


def test_nothing_is_left_behind(attacked):
    """The run's cgroups and sandbox folder are gone once grading is over."""
    course, results, grader, _, _ = attacked
    token = grader.sandbox_dir.name.rsplit("-", 1)[-1]
    assert not grader.sandbox_dir.exists()
    for _, parent in cgroup_parents().values():
        if os.path.isdir(parent):
            assert not [n for n in os.listdir(parent) if n.startswith(f"{token}-")]
