"""Parallel, fault-tolerant autograding over nbgrader's own ``autograde`` app.

``--workers N`` warm workers (``autograder/worker.py``) each run nbgrader's Autograde in-process,
one submission at a time, with the pipeline of ``nbgrader_config.py``: the tests run in a trusted
fork of the worker, the submission's code in a sandboxed student process (``autograder/verdict.py``,
``autograder/sandbox.py``). Before grading, each submission is copied to a staging folder and its
cells are normalised (``autograder.preprocessors.normalize``); unreadable notebooks are left out of
that copy, which nbgrader then scores as missing (zero, with the reason logged). Whatever goes wrong
with one submission ends as that submission's "failed, with reason". Results, with a content hash
of each submission, go to ``<root>/reports/autograde.json``: a later run skips submissions whose
hash and grade are unchanged (``--force`` regrades). Each assignment's solution is graded first to
set the time budgets (``autograder/budgets.py``).

The sandbox is used when it can be (root, or bubblewrap for an ordinary user); ``isolation=False`` /
``COURSE_ISOLATION=0`` turns it off; ``COURSE_ISOLATION=1`` makes a missing sandbox an error.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from autograder.course import Course, read_notebook
from autograder.pool import Worker, WorkerGone
from autograder.preprocessors import EVENT_PREFIX, normalize
from autograder.sanitize import clean_text, one_line
from autograder.sandbox import Limits, open_sandbox

JOB_TIMEOUT_S = 3600  # one submission's whole grading, all cells together


@dataclass
class GradeResult:
    student: str
    assignment: str
    status: str = "pending"          # graded | failed | skipped | refused (the solution fails here)
    reason: str = ""                 # why it failed, in one line
    events: list[str] = field(default_factory=list)  # tampering restored, cells timed out, ...
    seconds: float = 0.0
    seconds_graded: float = 0.0      # of which grading the notebooks (trusted grader and student process)
    content_hash: str = ""
    isolated: bool | None = None     # whether its student process ran in the sandbox

    @property
    def key(self) -> str:
        return f"{self.assignment}/{self.student}"


def usable_cpus() -> int:
    """The CPUs this process may run on (a Slurm or Kubernetes allocation), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def submission_hash(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


# nbgrader log lines that an instructor should hear about, and how we say them (the grader's own events
# come as EVENT_PREFIX lines)
_EVENT_PATTERNS = [
    (re.compile(r"No submitted file: (\S+)"), "notebook {0} missing: scored zero"),
]


def _events_from_log(log: str) -> list[str]:
    events = [line.split(EVENT_PREFIX, 1)[1].strip() for line in log.splitlines() if EVENT_PREFIX in line]
    for pattern, text in _EVENT_PATTERNS:
        for m in pattern.finditer(log):
            event = text.format(*(g for g in m.groups() if g))
            if event not in events:
                events.append(event)
    return events


def _failure_reason(log: str, returncode: int) -> str:
    """One line on why nbgrader's autograde (or the worker running it) failed."""
    errors = [line for line in log.splitlines() if "| ERROR]" in line or line.startswith(("[ERROR]", "nbgrader.",
                                                                                            "Traceback"))]
    detail = [line for line in log.splitlines() if re.match(r"\s*\w+(\.\w+)*(Error|Exception|Gone): ", line)]
    if detail:
        return detail[-1].strip()[:300]
    return (errors[-1].split("]", 1)[-1].strip() if errors else f"grading ended with code {returncode}")[:300]


def _original(folder: Path, assignment: str, notebook: str):
    path = folder / assignment / notebook
    return read_notebook(path) if path.is_file() else None


def _stage(course: Course, result: GradeResult, staging: Path, times: dict | None = None,
           due: bool = False) -> tuple[list[str], int]:
    """Copy the submission to ``staging/<student>/<assignment>``, repairing what nbgrader trips
    on and leaving out unreadable notebooks. Its ``timestamp.txt`` (nbgrader's submission time) is
    the time ``collect`` recorded for these files (``times``, see ``autograder/duedates.py``), or
    none; ``due``: the assignment has a due date, so a missing time is reported.

    Returns the events to report and how many notebooks can be graded.
    """
    from autograder import duedates

    src = course.submitted(result.student, result.assignment)
    dest = staging / result.student / result.assignment
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    events, readable = [], 0
    when = duedates.recorded_time(course, result.student, result.assignment, times)
    if when is not None:
        (dest / "timestamp.txt").write_text(duedates.stamp(when))
    elif due:
        events.append("no submission time recorded by collect for these files (a timestamp.txt it holds is not "
                      "trusted): not checked for lateness; collect it with `python -m autograder collect`")
    for path in sorted(src.rglob("*")):
        if path.is_symlink():
            events.append(f"{path.relative_to(src)} is a symbolic link: ignored")
            continue
        if not path.is_file() or path == src / "timestamp.txt":
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".ipynb":
            try:
                nb = read_notebook(path)
            except ValueError as err:
                events.append(f"{err}: scored zero")
                continue
            source = _original(course.source_dir, result.assignment, path.name)
            if source is not None:   # the same repair NormalizeSubmission makes, so nbgrader can read it
                events += normalize(nb, source, _original(course.release_dir, result.assignment, path.name))
            nbformat.write(nb, str(target))
            readable += 1
        else:
            shutil.copy2(path, target)
    return events, readable


def _zero_failed(course: Course, result: GradeResult) -> None:
    """Give every autograded test of a submission that could not be graded an explicit zero, and show
    its written answers in the formgrader (``autograder/failed_submission.py``)."""
    import warnings

    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(course.sqlite_url()) as gb:
        warnings.simplefilter("ignore")
        gb.update_or_create_student(result.student)
        submission = gb.update_or_create_submission(result.assignment, result.student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.auto_score is None and grade.cell.cell_type == "code":
                    grade.auto_score = 0
                    grade.needs_manual_grade = False
        gb.db.commit()
    # its written answers still reach a grader: the formgrader shows them, with the reason
    from autograder.failed_submission import show_for_manual_grading

    show_for_manual_grading(course, result.student, result.assignment, result.reason)


def _as_completed_interruptibly(futures, poll_s: float = 0.2):
    """Yield futures as they finish, waking every ``poll_s`` so that Ctrl+C is acted on at once.

    The kernel may deliver a process's SIGINT to a worker thread; Python then only flags it, and a
    main thread asleep in ``as_completed`` would raise KeyboardInterrupt only when the next grading
    finishes, after a free worker had already started a queued submission.
    """
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
        yield from finished


class Autograder:
    """Grades many submissions with ``workers`` concurrent nbgrader processes."""

    def __init__(self, course: Course, workers: int = 1, cell_timeout: int | None = None,
                 job_timeout: int = JOB_TIMEOUT_S, force: bool = False, show_progress: bool = True,
                 isolation: bool | None = None, limits: Limits | None = None, budgets: bool = True):
        """``isolation``: True requires the sandbox, False turns it off, None (default) uses it
        when available (root on Linux) unless ``COURSE_ISOLATION=0``; ``limits`` defaults to
        ``Limits.from_env()`` (``COURSE_SANDBOX_MEMORY_MB``, ``_PROCESSES``, ``_FILE_MB``)."""
        self.course = course
        self.workers = max(1, workers)
        self.cell_timeout = cell_timeout
        self.job_timeout = job_timeout
        self.force = force
        self.show_progress = show_progress
        self.state_file = course.reports_dir / "autograde.json"
        self.log_dir = course.root / "logs"
        self._lock = threading.Lock()
        self.isolation = isolation
        self.limits = limits
        self.isolation_mode = ""   # what the last run used, in words (for the summary and logs)
        self.sandbox_dir: Path | None = None   # the last run's sandbox folder (removed after the run)
        self._sandbox = None
        self._local = threading.local()        # each grading thread's warm worker
        self._all_workers: list[Worker] = []
        self.budgets = budgets                 # measure each assignment's solution for its time budgets
        self._budget_file: Path | None = None
        self._times: dict | None = None        # the submission times collect recorded (None: read them)
        self._due: set[str] = set()            # the assignments with a due date

    # -- isolation -------------------------------------------------------------------------
    def _isolation_wanted(self) -> bool | None:
        if self.isolation is not None:
            return self.isolation
        value = os.environ.get("COURSE_ISOLATION", "").strip().lower()
        if value in ("0", "false", "no", "off"):
            return False
        return True if value in ("1", "true", "yes", "on") else None

    def _hidden_paths(self) -> list[Path]:
        """What a student process must not see: the course, the sources, everyone's files, the gradebook."""
        c = self.course
        paths = [c.root, c.repo, c.source_dir, c.release_dir, c.submitted(), c.autograded(),
                 c.feedback_dir(), c.reports_dir, self.log_dir, c.root / "staging"]
        if c.db_url.startswith("sqlite:///"):
            paths.append(Path(c.db_url[len("sqlite:///"):].split("?", 1)[0]).resolve().parent)
        return paths

    def _open_sandbox(self) -> None:
        wanted = self._isolation_wanted()
        if wanted is False:
            self.isolation_mode = "not isolated: turned off (--no-isolation or COURSE_ISOLATION=0)"
            return
        self._sandbox, text = open_sandbox(self._hidden_paths(), self.limits)
        if self._sandbox is None:
            if wanted:
                raise RuntimeError(f"grading isolation was required but is unavailable: {text}")
            self.isolation_mode = f"NOT isolated: {text}"
            print(f"warning: student code runs unisolated ({text}); it can read and write whatever "
                  f"this user can", file=sys.stderr)
        else:
            self.isolation_mode = text
            self.sandbox_dir = self._sandbox.dir

    # -- bookkeeping ---------------------------------------------------------------------
    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict, result: GradeResult) -> None:
        with self._lock:
            state[result.key] = asdict(result)
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            # Other processes may grade in this course root too (one job per student on a cluster):
            # under a file lock, this result joins what is on disk, through a temporary file of our own.
            with open(self.state_file.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                merged = {**state, **self._load_state(), result.key: state[result.key]}
                tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(merged, indent=1, sort_keys=True))
                tmp.replace(self.state_file)  # atomic: an interrupted run never leaves half a file

    def _env(self) -> dict:
        threads = str(max(1, usable_cpus() // self.workers))
        # Each of the N student processes may use 1/N of the (one) GPU's memory (dlcourse.training_device()).
        gpu_share = f"{0.95 / self.workers:.3f}"
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
                "COURSE_GPU_SHARE": gpu_share, "TQDM_DISABLE": "1",
                "OMP_WAIT_POLICY": "PASSIVE",   # idle OpenMP threads sleep instead of spinning on shared cores
                "MPLBACKEND": "Agg"}

    # -- budgets -----------------------------------------------------------------------------
    def _measure_budgets(self, todo: list, results: list) -> list:
        """Measure each assignment's solution (once per source and machine); an assignment whose
        solution fails here is not graded: its submissions are reported as refused, with the reason."""
        if not self.budgets:
            return todo
        from autograder import budgets

        keep, refused = [], {}
        for assignment in dict.fromkeys(r.assignment for r in todo):
            try:
                self._budget_file = budgets.budgets_for(
                    self.course, assignment, self._env(), self._sandbox.spec() if self._sandbox else None,
                    max(self.cell_timeout or 0, 600), self.job_timeout,
                    log=print if self.show_progress else (lambda *a: None))
            except budgets.ReferenceFails as err:
                refused[assignment] = str(err)
        for r in todo:
            if r.assignment in refused:
                r.status, r.reason = "refused", refused[r.assignment]
                results.append(r)
            else:
                keep.append(r)
        return keep

    # -- warm workers ----------------------------------------------------------------------
    def _worker(self) -> Worker:
        worker = getattr(self._local, "worker", None)
        if worker is None:
            env = {**os.environ, "PYTHONWARNINGS": "ignore", **self._env(),
                   "COURSE_ISOLATION": "0" if self._sandbox is None else os.environ.get("COURSE_ISOLATION", "")}
            if self._sandbox is not None:
                env["COURSE_SANDBOX_SPEC"] = self._sandbox.spec()
            password = self.course._url_and_password()[1]
            if password is not None:
                env["PGPASSWORD"] = password
            worker = Worker(self.course.repo, env, self.log_dir / f"worker-{threading.get_ident()}.log", self.course.root)
            self._local.worker = worker
            with self._lock:
                self._all_workers.append(worker)
        return worker

    def _in_worker(self, result: "GradeResult", args: list[str], env: dict) -> tuple[str, int]:
        """Grade in this thread's warm worker: nbgrader's Autograde in-process, the same pipeline."""
        job = {"repo": str(self.course.repo), "assignment": result.assignment, "student": result.student,
               "args": args[1:] + self.course.nbgrader_args(self.course.root / "staging"), "env": env}
        timeout = self.job_timeout
        if self._budget_file is not None:   # the budgets measured on the solution, all notebooks together
            from autograder import budgets

            limits = [budgets.limits(str(self._budget_file), result.assignment, nb.stem)[1]
                      for nb in self.course.source_notebooks(result.assignment)]
            if limits and all(limits):
                timeout = min(timeout, sum(limits))
        try:
            reply = self._worker().run(job, timeout=timeout + 120)
        except WorkerGone as err:
            return f"[ERROR] {err}", -signal.SIGKILL
        for v in reply.get("verdicts", []):
            result.seconds_graded = round(result.seconds_graded + float(v.get("wall_seconds") or 0), 3)
        log = reply.get("log", "") + ("\n" + reply["error"] if reply.get("error") else "")
        return log, 0 if reply.get("ok") else 1

    def _close_workers(self) -> None:
        for worker in self._all_workers:
            worker.close()
        self._all_workers.clear()
        self._local = threading.local()

    # -- one submission --------------------------------------------------------------------
    def grade_one(self, result: GradeResult) -> GradeResult:
        """Grade one submission; whatever goes wrong ends as its own "failed, with reason"."""
        start = time.monotonic()
        try:
            result = self._grade_one(result)
        except Exception as err:  # noqa: BLE001 - one submission must never stop the class
            result.status, result.reason = "failed", one_line(f"grading crashed: {type(err).__name__}: {err}")
            try:
                _zero_failed(self.course, result)
            except Exception as zero_err:  # noqa: BLE001
                result.events.append(one_line(f"could not record its zero: {zero_err}"))
            shutil.rmtree(self.course.root / "staging" / result.student / result.assignment, ignore_errors=True)
        result.reason = one_line(result.reason)
        result.events = [one_line(e) for e in result.events]
        result.seconds = round(time.monotonic() - start, 2)
        return result

    def _grade_one(self, result: GradeResult) -> GradeResult:
        start = time.monotonic()
        staging = self.course.root / "staging"
        result.events, readable = _stage(self.course, result, staging, self._times,
                                         result.assignment in self._due)
        if readable == 0:
            unreadable = [e.removesuffix(": scored zero") for e in result.events if e.endswith(": scored zero")]
            result.status = "failed"
            result.reason = "no readable notebook in the submission" + (f" ({'; '.join(unreadable)})" if unreadable else "")
            _zero_failed(self.course, result)
            result.seconds = round(time.monotonic() - start, 2)
            return result
        args = [result.assignment, "--student", result.student, "--force",
                f"--TrustedExecute.job_timeout={self.job_timeout}"]
        if self.cell_timeout:
            args += [f"--Execute.timeout={self.cell_timeout}", f"--TrustedExecute.timeout={self.cell_timeout}"]
        log_path = self.log_dir / result.assignment / f"{result.student}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env, limit_events = self._env(), []
        result.isolated = self._sandbox is not None
        if self._budget_file is not None:
            env["COURSE_BUDGETS"] = str(self._budget_file)
        if self._sandbox is not None:
            env["COURSE_SANDBOX_SPEC"] = self._sandbox.spec()
        else:
            env["COURSE_ISOLATION"] = "0"   # this run decided already (and warned) when it opened no sandbox
        log, rc = self._in_worker(result, args, env)
        log = log if isinstance(log, str) else log.decode(errors="replace")
        log_path.write_text(f"[grading {self.isolation_mode}]\n{clean_text(log)}")
        result.events = list(dict.fromkeys(result.events + _events_from_log(log) + limit_events))
        if rc == 0:
            result.status, result.reason = "graded", ""
        else:
            result.status = "failed"
            memory = [e for e in limit_events if "memory limit" in e]
            result.reason = memory[0] if memory else _failure_reason(log, rc)
            _zero_failed(self.course, result)
        shutil.rmtree(staging / result.student / result.assignment, ignore_errors=True)
        result.seconds = round(time.monotonic() - start, 2)
        return result

    # -- a whole class -----------------------------------------------------------------------
    def run(self, assignments: list[str] | None = None, students: list[str] | None = None) -> list[GradeResult]:
        from tqdm import tqdm

        state = self._load_state()
        todo, done = [], []
        for assignment in assignments or self.course.assignments():
            for student in self.course.students(assignment):
                if students and student not in students:
                    continue
                r = GradeResult(student, assignment,
                                content_hash=submission_hash(self.course.submitted(student, assignment)))
                previous = state.get(r.key, {})
                if (not self.force and previous.get("content_hash") == r.content_hash
                        and previous.get("status") in ("graded", "failed")
                        and self.course.autograded(student, assignment).exists() == (previous["status"] == "graded")):
                    done.append(GradeResult(**{**previous, "status": "skipped"}))
                    continue
                todo.append(r)

        from autograder import duedates

        # due dates from schedule.toml into the gradebook, penalties of what is not regraded recomputed
        for note in duedates.apply_schedule(self.course, assignments, students):
            if self.show_progress:
                print(note)
        self._times = duedates.load_times(self.course)
        self._due = set(duedates.course_schedule(self.course).due)
        results = list(done)
        if not todo:
            return sorted(results, key=lambda r: (r.assignment, r.student))
        self._open_sandbox()
        todo = self._measure_budgets(todo, results)
        bar = tqdm(total=len(todo), desc="autograde", unit="sub", disable=not self.show_progress,
                   dynamic_ncols=True)
        if self.show_progress:
            bar.write(f"grading {self.isolation_mode}")
        failures, recorded = 0, set()

        def record(fut) -> None:
            nonlocal failures
            r = fut.result()
            self._save(state, r)
            results.append(r)
            recorded.add(fut)
            if r.status == "failed":
                failures += 1
                bar.write(f"FAILED {r.key}: {r.reason}")
            bar.set_postfix(failed=failures)
            bar.update()

        pool = ThreadPoolExecutor(self.workers)
        try:
            futures = [pool.submit(self.grade_one, r) for r in todo]
            try:
                for fut in _as_completed_interruptibly(futures):
                    record(fut)
            except KeyboardInterrupt:
                # Ctrl+C reaches this process only (each nbgrader runs in a session of its own): start
                # nothing more, record the submissions being graded, then stop. Without this, the pool
                # would grade every queued submission before exiting and record none of them.
                pool.shutdown(wait=False, cancel_futures=True)
                left = [f for f in futures if f not in recorded and not f.cancelled()]
                bar.write(f"interrupted: recording the {len(left)} submission(s) being graded, then stopping; "
                          f"{sum(f.cancelled() for f in futures)} not started are left for the next run")
                for fut in _as_completed_interruptibly(left):
                    record(fut)
                raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._close_workers()
            bar.close()
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None
        return sorted(results, key=lambda r: (r.assignment, r.student))
