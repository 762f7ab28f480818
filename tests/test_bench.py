"""``make bench`` cannot rot: its class and resume parts run for real on a tiny class.

Correctness only, never timing. The resume part interrupts the real CLI with SIGINT (Ctrl+C) as
soon as both workers are grading (``--interrupt-after 0``), before any result is recorded: the
command must then finish and record exactly those two, start nothing more and exit on Ctrl+C
alone, leaving no grading process behind; the resumed run must grade exactly the third, a rerun
nothing, and every score must equal the uninterrupted run's. Three submissions of the cheapest
assignment, no kernel timings: a few gradings of about 10 s each on 2 cores.
"""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from autograder import bench
from autograder.bench import pick_class
from autograder.grade import _as_completed_interruptibly
from conftest import REPO

SUBMISSIONS = 3


def test_pick_class_is_deterministic_and_covers_every_assignment():
    """40 over 9 assignments: four per assignment, a fifth for the first four; every assignment present."""
    assignments = [f"a{i}" for i in range(9)]
    chosen = pick_class(assignments, 40)
    assert len(chosen) == len(set(chosen)) == 40 and chosen == pick_class(assignments, 40)
    counts = {a: sum(b == a for _, b in chosen) for a in assignments}
    assert counts == {a: 5 if i < 4 else 4 for i, a in enumerate(assignments)}
    assert pick_class(["x"], 4) == [("perfect", "x"), ("buggy", "x"), ("blank", "x"), ("broken-deleted-cells", "x")]


def test_bench_class_and_resume_smoke(tmp_path, monkeypatch):
    """A 3-submission class: both timings, and a resume after a real Ctrl+C that loses and repeats nothing."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "bench"
    assert bench.main(["--only", "class,resume", "--assignments", "01_backprop",
                       "--submissions", str(SUBMISSIONS), "--interrupt-after", "0", "--kernel-repeats", "0",
                       "--grace", "120", "--out", str(out)]) == 0
    figures = json.loads((out / "bench.json").read_text())
    assert figures["hardware"]

    c = figures["class"]
    assert c["submissions"] == SUBMISSIONS and c["assignments"] == ["01_backprop"]
    for workers in ("workers_1", "workers_2"):
        assert c[workers]["wall_s"] > 0 and c[workers]["mean_s_per_submission"] > 0
        assert c[workers]["failed"] == 0 and len(c[workers]["load_start"]) == 3
    assert c["speedup"] > 0 and set(c["per_assignment_s"]["01_backprop"]) == {"blank_s", "perfect_s"}
    assert c["score_mismatches_w1_w2"] == []

    r = figures["resume"]
    assert r["signal_needed"] == "SIGINT", "Ctrl+C alone should stop autograde"
    assert r["orphan_processes_after_exit"] == 0
    assert r["recorded_at_signal"] == 0 and r["done_before_interrupt"] == 2, r   # the two being graded
    assert r["regraded"] == SUBMISSIONS - 2, r                                    # the one never started
    assert r["resumed_exit_code"] == 0 and r["noop_rerun_exit_code"] == 0 and r["noop_rerun_regraded"] == 0
    assert r["missing_results"] == [] and r["unexpected_results"] == []
    assert r["score_mismatches"] == [], r["score_mismatches"]
    assert r["resumed_over_full"] is not None and r["full_workers_2_s"] == c["workers_2"]["wall_s"]


def test_ctrl_c_landing_on_a_worker_thread_stops_before_a_queued_submission_starts():
    """SIGINT taken by a worker thread (Linux may pick any thread) still wakes the main thread at once."""
    # a run started in the background by a shell (`make test &`) inherits SIGINT ignored: Ctrl+C as in a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_from_a_worker_thread()
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_from_a_worker_thread():
    pool = ThreadPoolExecutor(2)
    futures = [pool.submit(subprocess.run, ["sleep", "2"]) for _ in range(3)]
    time.sleep(0.3)
    worker = next(t for t in threading.enumerate() if t is not threading.main_thread() and t.name.startswith("ThreadPool"))
    threading.Timer(0.1, signal.pthread_kill, (worker.ident, signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in _as_completed_interruptibly(futures):
            pass
    waited = time.monotonic() - t0
    pool.shutdown(wait=False, cancel_futures=True)
    assert futures[2].cancelled(), f"the queued submission started: Ctrl+C was acted on only after {waited:.1f} s"
    pool.shutdown(wait=True)
