"""The grading run's side of warm workers (``autograder/worker.py``): start, feed, time out, restart.

Each of the Autograder's threads owns one worker process and sends it one job at a time. A worker
that goes past a job's time limit, or dies, is killed (its whole process group, so the trusted
grader and the student process it started go too); the job is reported as failed with the reason,
and the next job starts a fresh worker.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path


class WorkerGone(RuntimeError):
    """The worker died or ran past the job's time limit."""


class Worker:
    def __init__(self, repo: Path, env: dict, log_path: Path, course_root: Path | None = None):
        self.repo, self.env, self.log_path, self.course_root = repo, env, log_path, course_root
        self.proc: subprocess.Popen | None = None
        self.results = None

    def start(self, timeout: float = 300) -> None:
        read_fd, write_fd = os.pipe()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            command = [sys.executable, "-m", "autograder.worker", "--results", str(write_fd)]
            if self.course_root is not None:
                command += ["--course", str(self.course_root)]
            self.proc = subprocess.Popen(command,
                                         cwd=self.repo, env=self.env, stdin=subprocess.PIPE, stdout=log,
                                         stderr=log, pass_fds=(write_fd,), start_new_session=True)
        finally:
            os.close(write_fd)
            log.close()
        self.results = os.fdopen(read_fd, "rb")
        ready = self._read_line(timeout)
        if not ready.get("ready"):
            raise WorkerGone("the grading worker did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _read_line(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = self.results.fileno()
        while not buffer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerGone(f"the submission's time limit of {timeout:.0f} s was reached")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                if not self.alive():
                    raise WorkerGone(f"the grading worker ended (exit status {self.proc.returncode})")
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                self.kill()
                raise WorkerGone(f"the grading worker ended (exit status {self.proc.poll()})")
            buffer += chunk
        return json.loads(buffer)

    def run(self, job: dict, timeout: float) -> dict:
        if not self.alive():
            self.start()
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as err:
            self.kill()
            raise WorkerGone(f"the grading worker is gone ({err})") from None
        return self._read_line(timeout)

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self.kill()
        with contextlib.suppress(Exception):
            self.results.close()
