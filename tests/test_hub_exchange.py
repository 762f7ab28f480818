"""The hub path for real: nbgrader's exchange on this machine, two student accounts, one grading run.

As root (the instructor) the test releases 01_backprop into a temporary exchange with
``nbgrader release_assignment``. Two throwaway Unix users, in one shared group (``users``, as on many
hubs), fetch it and submit with nbgrader as the README configures every user server
(``c.ExchangeFactory.submit = "autograder.exchange.PrivateSubmit"``): ann the solution, ben first the
solution with nbgrader's stock submit, then the blank release with ours. Neither can list the inbound
folder, nor read or write the other's entry, even knowing its name; a grader in the inbound folder's
group (a third user) can. Ben's stock entry shows why the setting is needed: ann reads it. Then
``collect`` takes each student's latest entry, timed by the exchange, refuses the entry ann made in
ben's name, and one autograde run gives ann full marks and ben zero.

Needs root, useradd, runuser and this interpreter reachable by other users (``.ci/run`` makes it so);
skipped otherwise, and with CI set (as ``.ci/run`` sets it) a missing piece fails instead.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path

import pytest

from autograder import duedates
from autograder.collect import collect
from autograder.course import Course
from autograder.grade import Autograder
from autograder.release import release
from autograder.reports import cell_scores
from conftest import REPO

ASSIGNMENT = "01_backprop"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
SOLUTION = REPO / "solutions" / ASSIGNMENT / NOTEBOOK
COURSE_ID = "dl-course"
ANN, BEN, TUTOR = "dlc_ann", "dlc_ben", "dlc_tutor"
GRADERS = "dlc_graders"
STOCK_SUBMIT = "nbgrader.exchange.default.submit.ExchangeSubmit"
PRIVATE_SUBMIT = 'c.ExchangeFactory.submit = "autograder.exchange.PrivateSubmit"'   # as README.md says


def unavailable(reason: str):
    """Skip on a developer machine, fail under CI (.ci/run runs as root and makes the interpreter reachable)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


def _env(home: Path, config: Path) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
            "JUPYTER_CONFIG_DIR": str(config), "PYTHONWARNINGS": "ignore"}


def _as(user: str, *args, home: Path, config: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *args], cwd=str(home), env=_env(home, config),
                          capture_output=True, text=True, errors="replace", timeout=timeout)


def _nbgrader(user: str, *args, home: Path, config: Path) -> subprocess.CompletedProcess:
    proc = _as(user, sys.executable, "-m", "nbgrader", *args, home=home, config=config)
    assert proc.returncode == 0, f"{user}: nbgrader {' '.join(args)}:\n{proc.stdout[-1500:]}{proc.stderr[-3000:]}"
    return proc


def _drop_accounts() -> None:
    for user in (ANN, BEN, TUTOR):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        subprocess.run(["userdel", user], capture_output=True)
    subprocess.run(["groupdel", GRADERS], capture_output=True)


def _entries(inbox: Path, student: str) -> list[Path]:
    """A student's inbound entries, oldest first (by their name's time, which nbgrader wrote)."""
    return sorted(p for p in inbox.iterdir() if p.name.startswith(f"{student}+{ASSIGNMENT}+"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root, to make throwaway student accounts (.ci/run runs as root)")
    missing = [t for t in ("useradd", "userdel", "groupadd", "groupdel", "runuser") if not shutil.which(t)]
    if missing:
        unavailable(f"needs {', '.join(missing)} (Debian's passwd and util-linux) to act as students")
    _drop_accounts()   # left over from an interrupted run
    base = Path(tempfile.mkdtemp(prefix="hub-exchange-", dir="/tmp"))   # pytest's own tmp is root's only
    try:
        subprocess.run(["groupadd", GRADERS], check=True)
        for user, group in ((ANN, "users"), (BEN, "users"), (TUTOR, GRADERS)):
            subprocess.run(["useradd", "--no-create-home", "--no-user-group", "--gid", group,
                            "--home-dir", str(base / "home" / user), "--shell", "/bin/sh", user], check=True)
        base.chmod(0o711)
        config = base / "jupyter-config"          # every user server's /etc/jupyter/nbgrader_config.py
        config.mkdir(mode=0o755)
        exchange = base / "exchange"
        exchange.mkdir()
        exchange.chmod(0o777)                   # as README.md: mkdir -p /srv/nbgrader/exchange && chmod 777
        (config / "nbgrader_config.py").write_text(
            f'c = get_config()\nc.CourseDirectory.course_id = "{COURSE_ID}"\n'
            f'c.Exchange.root = "{exchange}"\n{PRIVATE_SUBMIT}\n')
        homes = {}
        for user in (ANN, BEN, TUTOR):
            homes[user] = base / "home" / user
            homes[user].mkdir(parents=True, mode=0o700)
            shutil.chown(homes[user], user)
        probe = _as(ANN, sys.executable, "-c", "import autograder.exchange", home=homes[ANN], config=config)
        if probe.returncode != 0:
            unavailable(f"a student account cannot run this Python with the course package "
                        f"({probe.stderr.strip()[-300:]}); .ci/run gives its folders o+x")

        # the instructor (root) releases into the exchange, with the course's nbgrader configuration
        root = tmp_path_factory.mktemp("hub") / "course"
        course = Course.open(root=root, repo=REPO, db_url=f"sqlite:///{root / 'gradebook.db'}")
        release(course, [ASSIGNMENT])
        proc = course.nbgrader("release_assignment", ASSIGNMENT, f"--Exchange.root={exchange}")
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-3000:]
        inbox = exchange / COURSE_ID / "inbound"
        shutil.chown(inbox, group=GRADERS)      # what README.md asks when the instructor's group holds students

        logs = []

        def fetch_and_submit(user: str, notebook: Path, *options: str) -> None:
            home = homes[user]
            if not (home / ASSIGNMENT).exists():
                _nbgrader(user, "fetch_assignment", ASSIGNMENT, home=home, config=config)
                assert (home / ASSIGNMENT / NOTEBOOK).is_file(), list((home / ASSIGNMENT).iterdir())
            shutil.copy(notebook, home / ASSIGNMENT / NOTEBOOK)
            shutil.chown(home / ASSIGNMENT / NOTEBOOK, user)
            proc = _nbgrader(user, "submit", ASSIGNMENT, *options, home=home, config=config)
            logs.append(proc.stdout + proc.stderr)

        blank = course.release_dir / ASSIGNMENT / NOTEBOOK
        start = datetime.now(timezone.utc)
        fetch_and_submit(BEN, SOLUTION, f"--ExchangeFactory.submit={STOCK_SUBMIT}")   # nbgrader's own modes
        fetch_and_submit(ANN, SOLUTION)
        fetch_and_submit(BEN, blank)
        end = datetime.now(timezone.utc)
        stock_entry, ben_entry = _entries(inbox, BEN)
        (ann_entry,) = _entries(inbox, ANN)
        # ann hands in under ben's name: a folder named as nbgrader names ben's entries, made by ann
        forged = inbox / f"{BEN}+{ASSIGNMENT}+2099-01-01 00:00:00.000000 UTC+forged"
        made = _as(ANN, "sh", "-c", f'mkdir "{forged}" && cp "{homes[ANN] / ASSIGNMENT / NOTEBOOK}" "{forged}/"',
                   home=homes[ANN], config=config)
        assert made.returncode == 0, made.stderr

        out = StringIO()
        with redirect_stdout(out):
            collected = collect(course, inbox)
        results = Autograder(course, workers=2, cell_timeout=120, show_progress=False, budgets=False).run()
        yield dict(course=course, inbox=inbox, homes=homes, config=config, collected=collected,
                   printed=out.getvalue(), submit_logs=logs, results={r.student: r for r in results}, window=(start, end),
                   entries={ANN: ann_entry, BEN: ben_entry, "stock": stock_entry, "forged": forged})
    finally:
        _drop_accounts()
        shutil.rmtree(base, ignore_errors=True)


def _try(hub, user: str, command: str) -> subprocess.CompletedProcess:
    return _as(user, "sh", "-c", command, home=hub["homes"][user], config=hub["config"])


@pytest.mark.parametrize("me, other", [(ANN, BEN), (BEN, ANN)])
def test_a_student_cannot_list_read_or_change_another_submission(hub, me, other):
    """Listing the inbound folder fails; reading or writing into the other's entry fails, even knowing its name."""
    listing = _try(hub, me, f'ls "{hub["inbox"]}"')
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing
    entry = hub["entries"][other]
    for command in (f'cat "{entry / NOTEBOOK}"', f'ls "{entry}"', f'echo x > "{entry}/extra.txt"',
                    f'rm -f "{entry / NOTEBOOK}"'):
        proc = _try(hub, me, command)
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, (command, proc)
    assert (entry / NOTEBOOK).is_file() and not (entry / "extra.txt").exists()
    assert (hub["inbox"].stat().st_mode & 0o7777) == 0o2733     # nbgrader's inbound: write, enter, no listing
    assert (entry.stat().st_mode & 0o777) == 0o770 and entry.stat().st_gid == hub["inbox"].stat().st_gid
    stock_log, *private_logs = hub["submit_logs"]
    assert all(f"readable by you and group {GRADERS} only" in log and "which you are in" not in log
               for log in private_logs), private_logs


def test_a_grader_in_the_inbound_group_reads_them(hub):
    """The entries stay readable for a grader who is not root: a member of the inbound folder's group."""
    for student in (ANN, BEN):
        proc = _try(hub, TUTOR, f'cat "{hub["entries"][student] / NOTEBOOK}" >/dev/null')
        assert proc.returncode == 0, proc.stderr


def test_nbgrader_stock_submit_is_readable_by_name(hub):
    """Why the README sets PrivateSubmit: nbgrader's own entry (mode 0777, files 0644) is open to whoever
    knows its name, to read and to write. If this fails, nbgrader changed its modes: revisit
    autograder/exchange.py. (Run after collect: what ann writes there changes nothing graded.)"""
    stock = hub["entries"]["stock"]
    assert (stock.stat().st_mode & 0o777) == 0o777
    assert PRIVATE_SUBMIT in (REPO / "README.md").read_text(), "README.md must tell hub admins to set it"
    for command in (f'cat "{stock / NOTEBOOK}" >/dev/null', f'echo x > "{stock}/extra.txt"'):
        proc = _try(hub, ANN, command)
        assert proc.returncode == 0, (command, proc.stderr)


def test_collect_takes_each_latest_entry_timed_by_the_exchange(hub):
    """Both are collected from their latest entry, with the exchange's time; ann's entry in ben's name is refused."""
    course, printed = hub["course"], hub["printed"]
    assert sorted(hub["collected"]) == [(ANN, ASSIGNMENT), (BEN, ASSIGNMENT)], printed
    forged = hub["entries"]["forged"].name
    assert f"skipped exchange entry {forged!r}: it names {BEN!r} but {ANN!r} owns it" in printed, printed
    assert f"{BEN}/{ASSIGNMENT}: 1 earlier hand-in(s) in the exchange not taken" in printed, printed
    start, end = hub["window"]
    for student in (ANN, BEN):
        entry = hub["entries"][student].name
        assert re.search(rf"^{student}/{ASSIGNMENT}: submitted .*, exchange entry {re.escape(repr(entry))}, "
                         "its last change on disk", printed, re.M), printed
        when = duedates.recorded_time(course, student, ASSIGNMENT)
        assert when is not None and start <= when <= end, (student, when, start, end)


def test_both_are_graded_ann_full_marks_ben_zero(hub):
    """One autograde run: ann's solution gets every point, ben's blank release (his latest) none."""
    results, course = hub["results"], hub["course"]
    assert {s: r.status for s, r in results.items()} == {ANN: "graded", BEN: "graded"}, \
        {s: r.reason for s, r in results.items()}
    ann, ben = cell_scores(course, ASSIGNMENT, ANN), cell_scores(course, ASSIGNMENT, BEN)
    assert ann and all(got == full for got, full in ann.values()), ann
    assert ben.keys() == ann.keys() and all(got == 0 for got, _ in ben.values()), ben
