"""``make bench``: speed figures, measured, never asserted (tests must not be timed).

Prints and writes ``build/bench/bench.json``:
  * per-notebook overhead of one ``nbgrader autograde`` (process, fresh kernel, imports), from
    grading each blank release (its cells fail fast, so what remains is overhead);
  * the time to autograde each solution (the per-assignment budget is 30-60 s on 2 cores);
  * the demo class graded with ``--workers 1`` and ``--workers 2``, and the speed-up.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

from autograder.collect import collect
from autograder.course import Course
from autograder.demo import build_class
from autograder.grade import Autograder
from autograder.release import release


def hardware() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {gpu}"


def kernel_overhead() -> dict[str, float]:
    """Seconds for a fresh kernel to start and run one cell: empty, and with each unit's imports."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    out = {}
    for label, src in [("empty kernel", "1"),
                       ("numpy + sklearn + matplotlib + dlcourse", "import numpy, sklearn.datasets, matplotlib.pyplot, dlcourse.checks"),
                       ("torch", "import torch")]:
        times = []
        for _ in range(3):
            t = time.monotonic()
            NotebookClient(new_notebook(cells=[new_code_cell(src)]), kernel_name="python3").execute()
            times.append(time.monotonic() - t)
        out[label] = round(min(times), 2)
    return out


def _course(root: Path, repo: Path) -> Course:
    if root.exists():
        shutil.rmtree(root)
    course = Course.open(root=root, repo=repo, db_url=f"sqlite:///{root / 'gradebook.db'}")
    release(course)
    return course


def _time_class(course: Course, workers: int, cell_timeout: int) -> tuple[float, list]:
    t = time.monotonic()
    results = Autograder(course, workers=workers, cell_timeout=cell_timeout, force=True,
                         show_progress=False).run()
    return time.monotonic() - t, results


def main() -> int:
    repo = Course.open().repo
    out = repo / "build" / "bench"
    figures: dict = {"hardware": hardware(), "assignments": {}}
    print(f"hardware: {figures['hardware']}")
    figures["kernel_start_s"] = kernel_overhead()
    for label, seconds in figures["kernel_start_s"].items():
        print(f"fresh kernel, {label:<42} {seconds:5.2f} s (best of 3)")

    course = _course(out / "single", repo)
    inbox = out / "single-inbox"
    build_class(course, inbox)
    collect(course, inbox)
    results = Autograder(course, workers=1, cell_timeout=60, force=True, show_progress=False)
    for assignment in course.assignments():
        row = {}
        for student in ("blank", "perfect"):
            r = results.run([assignment], [student])[0]
            row[f"{student}_s"] = r.seconds
        figures["assignments"][assignment] = row
        print(f"{assignment:<18} nbgrader autograde of the blank release {row['blank_s']:6.1f} s   "
              f"solution {row['perfect_s']:6.1f} s   (one worker)")

    timings = {}
    for workers in (1, 2):
        cls = _course(out / f"class-w{workers}", repo)
        build_class(cls, out / f"class-w{workers}-inbox")
        n = len(collect(cls, out / f"class-w{workers}-inbox"))
        seconds, _ = _time_class(cls, workers, cell_timeout=20)
        timings[workers] = seconds
        print(f"demo class ({n} submissions) with --workers {workers}: {seconds:6.1f} s")
    figures["demo_class"] = {"submissions": n, "workers_1_s": round(timings[1], 1),
                             "workers_2_s": round(timings[2], 1),
                             "speedup": round(timings[1] / timings[2], 2)}
    print(f"speed-up of --workers 2 over --workers 1: {timings[1] / timings[2]:.2f}x")
    (out / "bench.json").write_text(json.dumps(figures, indent=1))
    print(f"wrote {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
