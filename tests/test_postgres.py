"""The gradebook on a real PostgreSQL server: the same commands as with SQLite, many graders at once.

A throwaway server is started for this module (initdb + pg_ctl in a temporary folder, listening on
127.0.0.1 only, on a free port, password required) and stopped at the end. PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` system user (``nobody`` without one).
The tests are skipped, with the reason, only when the PostgreSQL server programs are not installed
(``.ci/run`` installs Debian's ``postgresql`` package).
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograder.cli import main as cli
from autograder.collect import collect
from autograder.course import Course, is_test_cell
from autograder.grade import Autograder
from autograder.mutants import load_mutants, write_mutant_submission
from autograder.release import release
from autograder.reports import cell_scores, export_grades, scores
from conftest import REPO, mutant_student

ASSIGNMENT = "01_backprop"  # the cheapest to grade
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def _pg_bindir() -> Path | None:
    """Where initdb and pg_ctl are: $COURSE_PG_BIN, Debian's /usr/lib/postgresql/<newest>/bin, or PATH."""
    candidates = [Path(os.environ["COURSE_PG_BIN"])] if os.environ.get("COURSE_PG_BIN") else []
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(debian, key=lambda p: int(p.parent.name), reverse=True)
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


PG_BIN = _pg_bindir()
NO_POSTGRES = "PostgreSQL server programs (initdb, pg_ctl) are not installed: apt-get install postgresql"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in a temporary folder, run as an unprivileged user."""

    user = "grader"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="course-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.password = secrets.token_hex(16)
        self.port = 0
        self.run_as: dict = {}
        if os.geteuid() == 0:  # postgres will not run as root
            account = next(pwd.getpwnam(name) for name in ("postgres", "nobody")
                           if name in {p.pw_name for p in pwd.getpwall()})
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.dir)}
        proc = subprocess.run([str(self.bindir / program), *args], cwd=self.dir, env=env, capture_output=True,
                              text=True, timeout=120, **self.run_as)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{program} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> None:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password)
        if self.run_as:
            os.chown(pwfile, self.run_as["user"], self.run_as["group"])
        try:
            self._pg("initdb", "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
                     f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync")
        finally:
            pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:  # loopback only, private socket, no fsync
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n")
        for _attempt in range(3):  # another process may take the free port before the server does
            self.port = _free_port()
            proc = self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                            "-o", f"-p {self.port}", "start", check=False)
            if proc.returncode == 0:
                return
        log = self.log.read_text()[-3000:] if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start:\n{proc.stdout}{proc.stderr}\n{log}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                if self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False).returncode:
                    self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def sql(self, database: str, query: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                             dbname=database, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def postgres():
    if PG_BIN is None:
        pytest.skip(NO_POSTGRES)
    server = PostgresServer(PG_BIN)
    try:
        server.start()
        server.sql("postgres", "CREATE DATABASE course")
        yield server
    finally:
        server.stop()


def _expected_scores(notebook: Path) -> dict[str, float]:
    """grade_id -> points for each test cell of a graded notebook: full unless it shows an error."""
    nb = nbformat.read(str(notebook), as_version=4)
    return {c.metadata.nbgrader["grade_id"]: 0.0 if any(o.get("output_type") == "error" for o in c.outputs)
            else float(c.metadata.nbgrader["points"]) for c in nb.cells if is_test_cell(c)}


def _submit(inbox: Path, student: str, notebook) -> None:
    folder = inbox / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, folder / SOLUTION.name)
    else:
        write_mutant_submission(SOLUTION, notebook, folder / SOLUTION.name)


@pytest.fixture(scope="module")
def pg_class(postgres, tmp_path_factory):
    """A course whose gradebook is on the server: perfect, blank and two mutants, graded by 2 workers."""
    tmp = tmp_path_factory.mktemp("pg-course")
    course = Course.open(root=tmp, repo=REPO, db_url=postgres.url("course"))
    release(course, [ASSIGNMENT])
    mutants, targets = [], set()
    for mutant in load_mutants(SOLUTION.parent):  # two wrong answers to different functions
        if mutant.target not in targets and len(mutants) < 2:
            mutants.append(mutant)
            targets.add(mutant.target)
    inbox = tmp / "inbox"
    _submit(inbox, "perfect", SOLUTION)
    _submit(inbox, "blank", course.release_dir / ASSIGNMENT / SOLUTION.name)
    for mutant in mutants:
        _submit(inbox, mutant_student(mutant), mutant)
    collect(course, inbox)
    start = time.monotonic()
    results = Autograder(course, workers=2, cell_timeout=300, show_progress=False).run([ASSIGNMENT])
    print(f"graded {len(results)} submissions on PostgreSQL with 2 workers in {time.monotonic() - start:.0f}s")
    return course, {r.student: r for r in results}, [mutant_student(m) for m in mutants]


def test_urls_sqlite_default_and_postgres_driver(tmp_path, monkeypatch):
    """SQLite stays the default; a PostgreSQL URL gets psycopg and keeps its password off command lines."""
    monkeypatch.delenv("COURSE_DB_URL", raising=False)
    course = Course.open(root=tmp_path, repo=REPO)
    assert course.is_sqlite and course.db_url == f"sqlite:///{tmp_path / 'gradebook.db'}"
    assert course.gradebook_url() == course.sqlite_url() == course.db_url + "?timeout=120"
    course.check_gradebook()  # nothing to reach for SQLite
    assert f"--CourseDirectory.db_url={course.db_url}?timeout=120" in course.nbgrader_args()

    monkeypatch.setenv("COURSE_DB_URL", "postgresql://grader:s3cret@db.example.edu:5433/course")
    course = Course.open(root=tmp_path, repo=REPO)
    assert not course.is_sqlite
    assert course.gradebook_url() == "postgresql+psycopg://grader:s3cret@db.example.edu:5433/course"
    assert "s3cret" not in " ".join(course.nbgrader_args()) and "s3cret" not in course.display_url()
    assert "--CourseDirectory.db_url=postgresql+psycopg://grader@db.example.edu:5433/course" in course.nbgrader_args()
    assert Course.open(root=tmp_path, repo=REPO, db_url="postgresql+psycopg2://g@h/c").gradebook_url() \
        == "postgresql+psycopg2://g@h/c"

    down = f"postgresql://grader:s3cret@127.0.0.1:{_free_port()}/course"  # nothing listens there
    with pytest.raises(SystemExit, match="cannot reach the gradebook postgresql://grader:\\*\\*\\*@127.0.0.1"):
        cli(["--course", str(tmp_path), "--db-url", down, "export"])


def test_graded_record_is_merged_across_processes(tmp_path):
    """Jobs sharing a course root each keep their own results in reports/autograde.json."""
    from autograder.grade import GradeResult

    course = Course.open(root=tmp_path, repo=REPO, db_url=f"sqlite:///{tmp_path / 'gradebook.db'}")
    first, second = Autograder(course, show_progress=False), Autograder(course, show_progress=False)
    seen_by_first, seen_by_second = first._load_state(), second._load_state()  # both start before either saves
    first._save(seen_by_first, GradeResult("ann", ASSIGNMENT, status="graded"))
    second._save(seen_by_second, GradeResult("bob", ASSIGNMENT, status="failed"))
    state = json.loads(first.state_file.read_text())
    assert {k: v["status"] for k, v in state.items()} == {f"{ASSIGNMENT}/ann": "graded", f"{ASSIGNMENT}/bob": "failed"}
    assert not list(course.reports_dir.glob("*.tmp"))


def test_parallel_autograde_on_postgres(pg_class, postgres):
    """Every submission is graded into PostgreSQL, each test cell scored as its graded notebook shows."""
    course, results, mutants = pg_class
    assert {r.status for r in results.values()} == {"graded"}, {s: r.reason for s, r in results.items()}
    assert not (course.root / "gradebook.db").exists(), "the SQLite default was used instead of the server"
    table = scores(course)
    auto, maximum, _ = table[(ASSIGNMENT, "perfect")]
    assert maximum > 0 and auto == maximum
    assert table[(ASSIGNMENT, "blank")][0] == 0
    for student in mutants:
        assert table[(ASSIGNMENT, student)][0] < maximum, f"{student} lost no points"
    for student in results:
        expected = _expected_scores(course.autograded(student, ASSIGNMENT) / SOLUTION.name)
        stored = {gid: score for gid, (score, _) in cell_scores(course, ASSIGNMENT, student).items()}
        assert stored == expected, student
    rows = postgres.sql("course", "SELECT s.student_id, count(*) FROM submitted_assignment s "
                                  "JOIN assignment a ON a.id = s.assignment_id WHERE a.name = %s "
                                  "GROUP BY s.student_id", ASSIGNMENT)
    assert dict(rows) == {student: 1 for student in results}


def test_export_from_postgres(pg_class, tmp_path):
    """nbgrader export reads the server: one row per student, perfect at full marks, blank at zero."""
    import csv

    course, results, _ = pg_class
    rows = {r["student_id"]: r for r in csv.DictReader(export_grades(course, tmp_path / "grades.csv").open())}
    assert set(results) <= set(rows)
    autograded_max = scores(course)[(ASSIGNMENT, "perfect")][1]  # max_score also counts manual points
    assert float(rows["perfect"]["score"]) == autograded_max > 0
    assert float(rows["blank"]["score"]) == 0
    assert float(rows["perfect"]["max_score"]) == float(rows["blank"]["max_score"]) >= autograded_max


def test_fan_out_one_process_per_student(pg_class, postgres):
    """Two ``autograde --student`` processes at once, as two cluster jobs would run, each grading
    only its student into the shared gradebook and the shared record of what was graded."""
    course, _, _ = pg_class
    inbox = course.root / "late"
    _submit(inbox, "late-perfect", SOLUTION)
    _submit(inbox, "late-blank", course.release_dir / ASSIGNMENT / SOLUTION.name)
    collect(course, inbox)
    # the password reaches the jobs as PGPASSWORD, the URL as COURSE_DB_URL, as on a cluster
    env = {**os.environ, "COURSE_DB_URL": postgres.url("course", password=False), "PGPASSWORD": postgres.password}
    jobs = {student: subprocess.Popen([sys.executable, "-m", "autograder", "--course", str(course.root), "autograde",
                                       ASSIGNMENT, "--student", student, "--cell-timeout", "300"],
                                      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for student in ("late-perfect", "late-blank")}
    for student, job in jobs.items():
        out, _ = job.communicate(timeout=600)
        assert job.returncode == 0, out[-3000:]
        assert "1 graded, 0 failed" in out, out[-3000:]  # its own student, no other
    table = scores(course)
    assert table[(ASSIGNMENT, "late-perfect")][0] == table[(ASSIGNMENT, "perfect")][1]
    assert table[(ASSIGNMENT, "late-blank")][0] == 0
    state = json.loads((course.reports_dir / "autograde.json").read_text())
    for student in jobs:  # neither job's record overwrote the other's
        assert state[f"{ASSIGNMENT}/{student}"]["status"] == "graded", student


def test_second_run_skips_everything(pg_class):
    """Nothing changed since: a second run with 2 workers regrades nothing."""
    course, results, _ = pg_class
    again = Autograder(course, workers=2, show_progress=False).run([ASSIGNMENT])
    assert set(results) <= {r.student for r in again}
    assert again and all(r.status == "skipped" for r in again), [(r.student, r.status) for r in again]
