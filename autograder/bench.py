"""``make bench``: speed figures, measured, never asserted (tests must not be timed).

Prints progress as it goes and writes ``build/bench/bench.json`` (``--out`` for another folder);
each part's figures are merged into what the file already holds. Parts (``--only class,resume,exp2``,
all by default):

``class``: a class of ``--submissions`` (default 40) submissions over every released assignment
(``--assignments a,b`` for fewer), autograded in this process with ``--workers 1`` and then
``--workers 2`` (``--force``, cell time limit ``--cell-timeout`` s, default 20), each on a fresh copy
of the same course. Reported: wall time, seconds per submission, the speed-up (goal: 1.7x on 2
cores), and per-submission overhead: for each assignment, the time to grade its blank release
(its cells fail fast, so what remains is one ``nbgrader autograde``'s process, fresh kernel and
imports) and its solution, both taken from the ``--workers 1`` run (no extra grading), and the
Autograder's own cost around nbgrader (wall time minus the sum of per-submission times, per
submission). Also the time for a fresh kernel to run one cell (empty, with each unit's imports),
and whether both runs gave the same scores.

  Which 40: ``build_class`` writes 6 students per assignment (perfect, buggy, blank, deleted cells,
  runaway loop, invalid JSON). Students are taken rank by rank in the order of ``CLASS_ORDER``,
  each rank over every assignment in course order, until there are N: with 9 assignments, 40 =
  perfect, buggy, blank and deleted cells for all 9 (36), plus the runaway loop for the first 4.
  Every assignment is represented once N >= the number of assignments, and the choice is
  deterministic; a smaller class keeps its mix (``--assignments 01_backprop --submissions 4``:
  perfect, buggy, blank, deleted cells).

``resume``: a real interruption. On a fresh copy of the same course, the real CLI
(``python -m autograder --course DIR autograde --workers 2 --cell-timeout 20``) runs in its own
process group; when ``DIR/reports/autograde.json`` (written atomically after each submission)
records ``--interrupt-after`` results (default: half the class; 0: as soon as both workers are
grading, before any result, which makes what is done before the interruption exact: the two being
graded), the group gets SIGINT, as Ctrl+C would send; after ``--grace`` s still running, SIGTERM, then SIGKILL (which one was needed is
reported). Then the same command, without ``--force``, is timed to completion, and once more (a
rerun with nothing left to do: the fixed cost of any resume). Reported: seconds to the
interruption, results recorded before it, seconds for the resumed run, how many it regraded
(should be the remainder), resumed / full (full: the ``--workers 2`` class run; the CLI's start-up
is in the resumed figure only), and checks, reported rather than hidden: every submission has a
result, the gradebook's score of each equals the uninterrupted ``--workers 2`` run's, no grading
process of the course outlived the interrupted command. Without a ``class`` part in the same
invocation, the reference is ``<out>/class-w2`` when it graded the same class, else it is graded now.

``plain``: side by side with plain ``nbgrader autograde`` (its own default pipeline and config, in
a course folder of its own) on the same submissions: every assignment's blank release (CPU per
submission, and our overhead over the notebook's own cost) and one perfect student over the whole
course (wall time; goal: 90 s on 2 cores). See ``plain_bench``.

``exp2``: experiment 2 (ResNet20 on CIFAR-10), with the solution's own ``train``/``evaluate``:
seconds per epoch and images per second on the device at hand. On a CPU, one epoch of a few
hundred generated images (and the 50,000-image epoch extrapolated from it); on a GPU, the full
10-epoch schedule with per-epoch test evaluation in a warm process with the data already on the
GPU, on the real CIFAR-10 when it is in the data folder, else on synthetic CIFAR-shaped data.

Every timing prints the load average at its start and end (the machine may be shared), and
``COURSE_FAST`` is recorded: it shortens the notebooks' training, so it changes the figures.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from autograder.collect import collect
from autograder.course import Course
from autograder.demo import build_class
from autograder.grade import Autograder
from autograder.release import release

#: the order in which ``build_class``'s students join a benchmark class (see the module docstring)
CLASS_ORDER = ("perfect", "buggy", "blank", "broken-deleted-cells", "broken-infinite-loop", "broken-json")
SPEEDUP_GOAL = 1.7


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


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _say(text: str) -> None:
    print(text, flush=True)


def _load_text(load: list[float]) -> str:
    return "load average " + (" ".join(f"{x:.2f}" for x in load) if load else "unknown")


def kernel_overhead(repeats: int = 3) -> dict[str, float]:
    """Seconds for a fresh kernel to start and run one cell: empty, and with each unit's imports."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    out = {}
    for label, src in [("empty kernel", "1"),
                       ("numpy + sklearn + matplotlib + dlcourse", "import numpy, sklearn.datasets, matplotlib.pyplot, dlcourse.checks"),
                       ("torch", "import torch")]:
        times = []
        for _ in range(repeats):
            t = time.monotonic()
            NotebookClient(new_notebook(cells=[new_code_cell(src)]), kernel_name="python3").execute()
            times.append(time.monotonic() - t)
        out[label] = round(min(times), 2)
    return out


# -- the class ------------------------------------------------------------------------------
def pick_class(assignments: list[str], n: int) -> list[tuple[str, str]]:
    """The first ``n`` (student, assignment) pairs, rank by rank of ``CLASS_ORDER`` over the assignments."""
    pairs = [(student, a) for student in CLASS_ORDER for a in assignments]
    if not 1 <= n <= len(pairs):
        raise SystemExit(f"--submissions must be between 1 and {len(pairs)} for {len(assignments)} assignment(s)")
    return pairs[:n]


def _open(root: Path, repo: Path) -> Course:
    return Course.open(root=root, repo=repo, db_url=f"sqlite:///{root / 'gradebook.db'}")


def prepare_class(out: Path, repo: Path, assignments: list[str], n: int) -> tuple[Path, list[tuple[str, str]]]:
    """A released course holding the chosen class in ``submitted/``: the template every timing copies."""
    template = out / "class-template"
    if template.exists():
        shutil.rmtree(template)
    course = _open(template, repo)
    release(course, assignments)
    chosen = pick_class(assignments, n)
    view = copy.copy(course)
    view.assignments = lambda: list(assignments)  # build_class writes every assignment of its course
    inbox = out / "class-inbox"
    if inbox.exists():
        shutil.rmtree(inbox)
    build_class(view, inbox)
    keep = set(chosen)
    for folder in [f for s in inbox.iterdir() if s.is_dir() for f in s.iterdir() if f.is_dir()]:
        if (folder.parent.name, folder.name) not in keep:
            shutil.rmtree(folder)
    collected = collect(course, inbox)
    shutil.rmtree(inbox)
    if sorted(collected) != sorted(chosen):
        raise RuntimeError(f"collected {sorted(collected)}, expected {sorted(chosen)}")
    return template, chosen


def fresh_copy(template: Path, root: Path, repo: Path) -> Course:
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(template, root, symlinks=True)
    return _open(root, repo)


def gradebook_scores(course: Course, chosen) -> dict[str, list[float]]:
    """``assignment/student`` -> [autograded score, max] from the gradebook, for the chosen class."""
    from autograder.reports import scores

    table = scores(course)
    return {f"{a}/{s}": list(table[(a, s)][:2]) for s, a in chosen if (a, s) in table}


def score_mismatches(got: dict, want: dict) -> list[str]:
    return [f"{key}: {got.get(key, 'missing')} instead of {want.get(key, 'missing')}"
            for key in sorted(set(got) | set(want)) if got.get(key) != want.get(key)]


def time_class(course: Course, workers: int, cell_timeout: int) -> tuple[dict, list]:
    n = sum(len(course.students(a)) for a in course.assignments())
    start_load = loadavg()
    _say(f"  --workers {workers}: grading {n} submissions ({_load_text(start_load)})")
    grader = Autograder(course, workers=workers, cell_timeout=cell_timeout, force=True,
                        show_progress=sys.stderr.isatty())
    t = time.monotonic()
    results = grader.run()
    wall = time.monotonic() - t
    end_load = loadavg()
    busy = sum(r.seconds for r in results)
    row = {"wall_s": round(wall, 1), "mean_s_per_submission": round(wall / len(results), 2),
           "sum_of_submission_s": round(busy, 1),
           # with one worker: hashing, bookkeeping, the thread pool, i.e. wall time spent in no submission's grading
           "autograder_overhead_s_per_submission": round((wall - busy) / len(results), 3) if workers == 1 else None,
           "failed": sum(r.status == "failed" for r in results),
           "load_start": start_load, "load_end": end_load, "isolation": grader.isolation_mode}
    _say(f"  --workers {workers}: {wall:6.1f} s, {wall / len(results):.2f} s per submission "
         f"({row['failed']} failed; {_load_text(end_load)})")
    return row, results


def class_bench(out: Path, repo: Path, assignments: list[str], n: int, cell_timeout: int,
                kernel_repeats: int) -> tuple[dict, dict, Path, list]:
    """The class timed with 1 and 2 workers; returns its figures, the ``--workers 2`` scores, the template and the class."""
    kernels = {}
    if kernel_repeats > 0:
        _say(f"class: fresh kernels ({_load_text(loadavg())})")
        kernels = kernel_overhead(kernel_repeats)
    for label, seconds in kernels.items():
        _say(f"  fresh kernel, {label:<42} {seconds:5.2f} s (best of {kernel_repeats})")
    _say(f"class: releasing {len(assignments)} assignment(s) and building {n} submissions")
    template, chosen = prepare_class(out, repo, assignments, n)
    per_assignment = {a: [s for s, b in chosen if b == a] for a in assignments}
    for a, students in per_assignment.items():
        _say(f"  {a:<18} {len(students)}: {', '.join(students)}")
    rows, scores = {}, {}
    for workers in (1, 2):
        course = fresh_copy(template, out / f"class-w{workers}", repo)
        rows[workers], results = time_class(course, workers, cell_timeout)
        scores[workers] = gradebook_scores(course, chosen)
        if workers == 1:
            seconds = {(r.assignment, r.student): r.seconds for r in results}
    per_nb = {a: {f"{s}_s": seconds[(a, s)] for s in ("blank", "perfect") if (a, s) in seconds}
              for a in assignments}
    speedup = rows[1]["wall_s"] / rows[2]["wall_s"]
    figures = {
        "submissions": n, "assignments": assignments, "class": per_assignment,
        "cell_timeout_s": cell_timeout, "course_fast": os.environ.get("COURSE_FAST", "0"),
        "kernel_start_s": kernels,
        "workers_1": rows[1], "workers_2": rows[2],
        "speedup": round(speedup, 2), "speedup_goal": SPEEDUP_GOAL, "meets_goal": speedup >= SPEEDUP_GOAL,
        "per_assignment_s": per_nb,
        "autograder_overhead_s_per_submission": rows[1]["autograder_overhead_s_per_submission"],
        "score_mismatches_w1_w2": score_mismatches(scores[1], scores[2]),
    }
    for a, row in per_nb.items():
        parts = [f"blank release {row['blank_s']:6.1f} s" if "blank_s" in row else "",
                 f"solution {row['perfect_s']:6.1f} s" if "perfect_s" in row else ""]
        if any(parts):
            _say(f"  {a:<18} nbgrader autograde of the {'   '.join(p for p in parts if p)}   (one worker)")
    _say(f"  Autograder's own overhead around nbgrader: {rows[1]['autograder_overhead_s_per_submission']:.3f} s "
         f"per submission (one worker)")
    _say(f"class of {n}: --workers 1 {rows[1]['wall_s']:.1f} s, --workers 2 {rows[2]['wall_s']:.1f} s, "
         f"speed-up {speedup:.2f}x (goal {SPEEDUP_GOAL}x: {'met' if speedup >= SPEEDUP_GOAL else 'NOT met'})")
    if figures["score_mismatches_w1_w2"]:
        _say("  SCORES DIFFER between --workers 1 and 2: " + "; ".join(figures["score_mismatches_w1_w2"]))
    return figures, scores[2], template, chosen


# -- resume after an interruption ----------------------------------------------------------------
def _recorded(state_file: Path) -> dict:
    """The results file's entries that are final (graded or failed); {} while it is absent."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in state.items() if v.get("status") in ("graded", "failed")}


def _course_cmdlines(root: Path) -> dict[int, list[str]]:
    """pid -> arguments of the grading processes working in this course root: nbgrader given
    ``--CourseDirectory.root=ROOT``, or a warm worker given ``--course ROOT`` (and its forks; the CLI
    itself is not counted). Linux only: empty elsewhere."""
    marker = f"--CourseDirectory.root={root}"
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            args = entry.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        worker = "autograder.worker" in args and "--course" in args and \
            args[args.index("--course") + 1:args.index("--course") + 2] == [str(root)]
        if marker in args or worker:
            found[int(entry.name)] = args
    return found


def course_processes(root: Path) -> list[int]:
    return sorted(_course_cmdlines(root))


def grading_now(root: Path) -> set[str]:
    """``assignment/student`` of each submission being graded in this course root: its staging copy
    exists exactly while it is graded (or an ``nbgrader autograde`` process names it)."""
    now = {f"{a.name}/{s.name}" for s in (root / "staging").glob("*") if s.is_dir() for a in s.iterdir() if a.is_dir()} \
        if (root / "staging").is_dir() else set()
    for args in _course_cmdlines(root).values():
        if "autograde" in args and "--student" in args:
            i, j = args.index("autograde"), args.index("--student")
            if i + 1 < len(args) and j + 1 < len(args):
                now.add(f"{args[i + 1]}/{args[j + 1]}")
    return now


def _log_times(root: Path) -> dict[str, int]:
    """``assignment/student`` -> when its grading log was last written (each grading rewrites it)."""
    return {f"{p.parent.name}/{p.stem}": p.stat().st_mtime_ns for p in (root / "logs").glob("*/*.log")}


def _autograde(root: Path, repo: Path, cell_timeout: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "autograder", "--course", str(root), "autograde",
           "--workers", "2", "--cell-timeout", str(cell_timeout)]
    with log.open("w") as f:
        # its own process group and session, as a command typed in a terminal: Ctrl+C there signals this group.
        # A terminal's command takes Ctrl+C even when this bench was started in the background (a shell's `&`
        # makes its children ignore SIGINT, and Python then installs no KeyboardInterrupt for it).
        return subprocess.Popen(cmd, cwd=repo, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _timed_cli(root: Path, repo: Path, cell_timeout: int, log: Path, label: str) -> tuple[float, int]:
    start_load = loadavg()
    _say(f"  {label}: started ({_load_text(start_load)})")
    t = time.monotonic()
    proc = _autograde(root, repo, cell_timeout, log)
    try:
        rc = proc.wait()
    finally:
        _stop(proc)
    seconds = time.monotonic() - t
    _say(f"  {label}: {seconds:.1f} s, exit code {rc} ({_load_text(loadavg())})")
    return seconds, rc


def resume_bench(out: Path, repo: Path, template: Path, chosen: list, cell_timeout: int,
                 interrupt_after: int, grace: float, reference: dict, full_s: float | None) -> dict:
    n = len(chosen)
    course = fresh_copy(template, out / "resume", repo)
    root, state_file = course.root, course.reports_dir / "autograde.json"
    load0 = loadavg()
    busy = min(2, n)   # --interrupt-after 0: as soon as both workers are grading, before any result
    when = f"once {interrupt_after} of {n} results are recorded" if interrupt_after else \
        f"as soon as {busy} submissions are being graded, before any result"
    _say(f"resume: python -m autograder --course {root} autograde --workers 2 --cell-timeout {cell_timeout}; "
         f"Ctrl+C {when} ({_load_text(load0)})")

    def due() -> bool:
        if interrupt_after:
            return len(_recorded(state_file)) >= interrupt_after
        return len(grading_now(root)) >= busy or bool(_recorded(state_file))

    t0 = time.monotonic()
    proc = _autograde(root, repo, cell_timeout, out / "resume-interrupted.log")
    signal_used, rc = None, None
    try:
        while not (finished := proc.poll() is not None) and not due():
            time.sleep(0.05)
        to_interrupt = time.monotonic() - t0
        at_signal = len(_recorded(state_file))
        if not finished:
            for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 15.0), (signal.SIGKILL, None)):
                os.killpg(proc.pid, sig)
                signal_used = sig.name
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    _say(f"  still running {wait:.0f} s after {sig.name}")
        rc = proc.wait()
    finally:
        _stop(proc)
    to_exit = time.monotonic() - t0 - to_interrupt
    orphans = course_processes(root)
    if orphans:   # nbgrader runs in its own session: a killed CLI leaves it grading; wait, so it cannot race the resume
        _say(f"  {len(orphans)} grading process(es) of this course outlived the CLI: {orphans}; waiting for them")
        deadline = time.monotonic() + 600
        while course_processes(root) and time.monotonic() < deadline:
            time.sleep(0.5)
    before = _recorded(state_file)
    if signal_used is None:
        _say(f"  the run finished before the interruption point (exit code {rc})")
    else:
        _say(f"  {signal_used} after {to_interrupt:.1f} s with {at_signal} recorded; exited {to_exit:.1f} s later "
             f"(exit code {rc}) with {len(before)} of {n} recorded ({_load_text(loadavg())})")

    logs = _log_times(root)
    resumed_s, resumed_rc = _timed_cli(root, repo, cell_timeout, out / "resume-resumed.log", "resumed run")
    after, logs_after = _recorded(state_file), _log_times(root)
    regraded = sorted(k for k in after if after[k] != before.get(k) or logs_after.get(k) != logs.get(k))
    noop_s, noop_rc = _timed_cli(root, repo, cell_timeout, out / "resume-noop.log", "rerun with nothing left")
    again = _recorded(state_file)
    keys = {f"{a}/{s}" for s, a in chosen}
    got = gradebook_scores(course, chosen)
    figures = {
        "submissions": n, "interrupt_after": interrupt_after, "cell_timeout_s": cell_timeout,
        "seconds_to_interrupt": round(to_interrupt, 1), "recorded_at_signal": at_signal,
        "signal_needed": signal_used, "seconds_signal_to_exit": round(to_exit, 1), "interrupted_exit_code": rc,
        "done_before_interrupt": len(before), "orphan_processes_after_exit": len(orphans),
        "resumed_s": round(resumed_s, 1), "resumed_exit_code": resumed_rc, "regraded": len(regraded),
        "noop_rerun_s": round(noop_s, 1), "noop_rerun_exit_code": noop_rc,
        "noop_rerun_regraded": sum(again[k] != after.get(k) for k in again),
        "full_workers_2_s": full_s,
        "resumed_over_full": round(resumed_s / full_s, 2) if full_s else None,
        "interrupted_plus_resumed_over_full": round((to_interrupt + to_exit + resumed_s) / full_s, 2) if full_s else None,
        "missing_results": sorted(keys - set(after)),
        "unexpected_results": sorted(set(after) - keys),
        "score_mismatches": score_mismatches(got, reference),
        "load_start": load0, "load_end": loadavg(),
    }
    _say(f"resume: {len(before)} of {n} done before the interruption; the resumed run regraded {len(regraded)} "
         f"in {resumed_s:.1f} s" + (f" ({resumed_s / full_s:.2f} of the uninterrupted {full_s:.1f} s)" if full_s else "")
         + f"; a rerun with nothing left took {noop_s:.1f} s and regraded {figures['noop_rerun_regraded']}")
    if len(before) + len(regraded) != n:
        _say(f"  PROBLEM: {len(before)} before + {len(regraded)} regraded != {n} submissions")
    if not regraded and signal_used:
        _say("  note: the interruption came after every submission was started; nothing was left to resume")
    for label in ("missing_results", "unexpected_results", "score_mismatches"):
        if figures[label]:
            _say(f"  PROBLEM, {label.replace('_', ' ')}: " + "; ".join(figures[label]))
    if not any(figures[k] for k in ("missing_results", "unexpected_results", "score_mismatches")):
        _say(f"  every one of the {n} has a result, with the same score as the uninterrupted --workers 2 run")
    return figures


def _synthetic_cifar10(num_train: int, num_test: int, seed: int = 0):
    """CIFAR-shaped generated data in memory (the generator of ``write_fake_cifar10``, without the files)."""
    import torch

    from dlcourse.data import CIFAR10_CLASSES, CIFAR10Data, fake_cifar10_arrays

    X_train, y_train = fake_cifar10_arrays(num_train, seed)
    X_test, y_test = fake_cifar10_arrays(num_test, seed + 1)
    return CIFAR10Data(torch.from_numpy(X_train), torch.from_numpy(y_train), torch.from_numpy(X_test),
                       torch.from_numpy(y_test), CIFAR10_CLASSES)


def exp2_resnet20(cpu_train_images: int = 256, cpu_test_images: int = 128, gpu_epochs: int = 10) -> dict:
    """ResNet20 training speed with the exp2 solution's ``train``/``evaluate`` (batch 128, SGD, the LR schedule).

    Seconds per epoch include the per-epoch test evaluation, as in the notebook; images per second
    count training images only (the evaluation time, measured separately, is taken out).
    """
    import torch

    from autograder.pretrain import solution_namespace
    from dlcourse import seed_everything, training_device
    from dlcourse.data import is_real_cifar10, load_cifar10, make_loaders

    ns = solution_namespace()
    train, evaluate = ns["train"], ns["evaluate"]
    device = training_device()
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def fresh_model():
        return ns["to_training_device"](ns["ResNet20"](), device)

    seed_everything(0)
    if cuda:
        torch.backends.cudnn.benchmark = True
        real = is_real_cifar10()
        data = load_cifar10(download=False) if real else _synthetic_cifar10(50_000, 10_000)
        source = "real CIFAR-10" if real else "synthetic CIFAR-shaped data (generated)"
        name = torch.cuda.get_device_name(0)
    else:
        data = _synthetic_cifar10(cpu_train_images, cpu_test_images)
        source = "generated CIFAR-shaped data"
        name = f"CPU ({hardware().split(', ')[0]}), {torch.get_num_threads()} torch thread(s)"
    train_loader, test_loader = make_loaders(data, batch_size=128, device=device)   # data on the GPU when cuda
    num_train, num_test = len(data.y_train), len(data.y_test)

    # warm-up: cuDNN autotuning, the allocator, lazy initialisation; not timed
    warm = fresh_model()
    warm_data = type(data)(data.X_train[:128 * (20 if cuda else 1)], data.y_train[:128 * (20 if cuda else 1)],
                           data.X_test[:256], data.y_test[:256], data.classes)
    train(warm, *make_loaders(warm_data, batch_size=128, device=device), num_epochs=1, verbose=False)
    sync()

    model = fresh_model()
    epochs = gpu_epochs if cuda else 1
    sync()
    start = time.perf_counter()
    history = train(model, train_loader, test_loader, num_epochs=epochs, verbose=False)
    sync()
    total = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(model, test_loader)
    sync()
    eval_s = time.perf_counter() - start
    epoch_s = total / epochs
    train_ips = num_train / max(epoch_s - eval_s, 1e-9)
    result = {"device": name, "data": source, "train_images": num_train, "test_images": num_test,
              "batch_size": 128, "epochs_timed": epochs, "seconds_per_epoch": round(epoch_s, 3),
              "train_images_per_s": round(train_ips, 1), "eval_images_per_s": round(num_test / eval_s, 1)}
    if cuda:
        result.update(full_schedule_s=round(total, 1), final_test_acc=round(history["test_acc"][-1], 4),
                      test_acc_per_epoch=[round(a, 4) for a in history["test_acc"]])
    else:
        result["seconds_per_50k_epoch_estimated"] = round(50_000 / train_ips + 10_000 / (num_test / eval_s), 1)
    return result


def _print_exp2(row: dict) -> None:
    print(f"exp2 ResNet20 on {row['device']}, {row['data']} ({row['train_images']:,} train / "
          f"{row['test_images']:,} test images): {row['seconds_per_epoch']:.2f} s per epoch with evaluation, "
          f"{row['train_images_per_s']:,.0f} training images/s, {row['eval_images_per_s']:,.0f} test images/s")
    if "full_schedule_s" in row:
        print(f"exp2 full 10-epoch schedule: {row['full_schedule_s']:.1f} s, final test accuracy {row['final_test_acc']:.3f}")
    else:
        print(f"exp2 one 50,000-image epoch (+ 10,000 test images) on this CPU: about "
              f"{row['seconds_per_50k_epoch_estimated'] / 60:.0f} min (extrapolated)")


def _reference(out: Path, repo: Path, chosen: list, cell_timeout: int) -> tuple[dict, float]:
    """The uninterrupted ``--workers 2`` scores and wall time: the last class run's when it graded the same class."""
    path, previous = out / "bench.json", out / "class-w2"
    try:
        figures = json.loads(path.read_text())["class"]
        same = sorted([s, a] for a, students in figures["class"].items() for s in students) == sorted(map(list, chosen))
        if same and figures.get("cell_timeout_s") == cell_timeout and previous.is_dir():
            scores = gradebook_scores(_open(previous, repo), chosen)
            if len(scores) == len(chosen):
                _say(f"resume: reference is the last class run in {previous}")
                return scores, figures["workers_2"]["wall_s"]
    except (OSError, ValueError, KeyError):
        pass
    _say("resume: no class run of this class to compare with: grading it once with --workers 2, uninterrupted")
    course = fresh_copy(out / "class-template", previous, repo)
    row, _ = time_class(course, 2, cell_timeout)
    return gradebook_scores(course, chosen), row["wall_s"]


# -- side by side with plain nbgrader ---------------------------------------------------------------
PLAIN_CONFIG = """c = get_config()  # noqa: F821  (plain nbgrader: its own default pipeline, no course package)
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = {source!r}
c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mutants.py"]
c.Execute.timeout = {timeout}
c.Autograde.create_student = True
"""


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plain_nbgrader(root: Path, repo: Path, submissions: dict[str, list[str]], cell_timeout: int,
                   template: Path) -> dict:
    """Plain nbgrader on ``submissions`` (assignment -> students): its own config, its own pipeline,
    ``nbgrader autograde ASSIGNMENT`` once per assignment (all students in one process), as an
    instructor would run it. Returns wall and CPU seconds (every process it started included)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(PLAIN_CONFIG.format(root=str(root), source=str(repo / "solutions"),
                                                                 timeout=cell_timeout))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_DB")}
    env["PYTHONWARNINGS"] = "ignore"
    nbgrader = [sys.executable, "-m", "nbgrader"]
    for a in submissions:
        subprocess.run([*nbgrader, "generate_assignment", a, "--force"], cwd=root, env=env, capture_output=True)
    for a, students in submissions.items():
        for st in students:
            shutil.copytree(template / "submitted" / st / a, root / "submitted" / st / a)
    cpu0, t0 = _children_cpu(), time.monotonic()
    for a in submissions:
        subprocess.run([*nbgrader, "autograde", a, "--force"], cwd=root, env=env, capture_output=True)
    return {"wall_s": round(time.monotonic() - t0, 1), "cpu_s": round(_children_cpu() - cpu0, 1)}


def ours(course: Course, workers: int, cell_timeout: int) -> dict:
    """This course's grader on the same submissions: wall and CPU seconds (its processes included)."""
    cpu0, t0 = _children_cpu(), time.monotonic()
    # the budgets' one-off measurement of each solution is timed apart (plain nbgrader has no budgets)
    grader = Autograder(course, workers=workers, cell_timeout=cell_timeout, force=True, show_progress=False,
                        budgets=False)
    results = grader.run()
    return {"wall_s": round(time.monotonic() - t0, 1), "cpu_s": round(_children_cpu() - cpu0, 1),
            "failed": sum(r.status == "failed" for r in results), "isolation": grader.isolation_mode}


def notebook_cpu(path: Path) -> float:
    """CPU seconds to run a notebook's code cells once in a plain Python process (the notebook's own cost)."""
    script = ("import sys, nbformat\n"
              "from IPython.core.interactiveshell import InteractiveShell\n"
              "InteractiveShell.enable_gui = lambda self, gui=None: None\n"
              "sh = InteractiveShell.instance()\n"
              "for c in nbformat.read(sys.argv[1], as_version=4).cells:\n"
              "    if c.cell_type == 'code': sh.run_cell(c.source, silent=True)\n")
    cpu0 = _children_cpu()
    with __import__("tempfile").TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", script, str(path)], cwd=tmp, capture_output=True,
                       env={**os.environ, "NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg"})
    return round(_children_cpu() - cpu0, 2)


def plain_bench(out: Path, repo: Path, assignments: list[str], cell_timeout: int, workers: int = 2) -> dict:
    """Three comparisons with plain nbgrader, on the same submissions:

    * **blank** — the blank release of every assignment, graded one at a time (``--workers 1``):
      CPU per submission, ours and plain nbgrader's, and our overhead: our CPU minus the notebook's
      own (its cells run once in a plain process);
    * **course** — one perfect student over every assignment, ``--workers {workers}`` (goal: at most
      90 s on 2 cores); plain nbgrader grades them one after another (it has no parallelism).
    """
    results = {}
    for label, students in (("blank", ["blank"]), ("course", ["perfect"])):
        template, chosen = prepare_class(out, repo, assignments, len(assignments) * len(CLASS_ORDER))
        subset = {a: [s for s, b in chosen if b == a and s in students] for a in assignments}
        course = fresh_copy(template, out / f"plain-ours-{label}", repo)
        for st in [p for p in course.submitted().iterdir() if p.name not in students]:
            shutil.rmtree(st)
        _say(f"plain: {label}: ours ({_load_text(loadavg())})")
        w = 1 if label == "blank" else workers
        mine = ours(course, w, cell_timeout)
        _say(f"plain: {label}: ours {mine['wall_s']} s wall, {mine['cpu_s']} s CPU; plain nbgrader ({_load_text(loadavg())})")
        theirs = plain_nbgrader(out / f"plain-nbgrader-{label}", repo, subset, cell_timeout, template)
        _say(f"plain: {label}: plain nbgrader {theirs['wall_s']} s wall, {theirs['cpu_s']} s CPU")
        row = {"ours": mine, "plain_nbgrader": theirs, "workers": w, "submissions": sum(map(len, subset.values()))}
        if label == "blank":
            own = {a: notebook_cpu(repo / "assignments" / a / f"{a}.ipynb") for a in assignments}
            n = row["submissions"]
            row["notebook_own_cpu_s"] = own
            row["ours_cpu_s_per_submission"] = round(mine["cpu_s"] / n, 2)
            row["plain_cpu_s_per_submission"] = round(theirs["cpu_s"] / n, 2)
            row["overhead_cpu_s_per_submission"] = round((mine["cpu_s"] - sum(own.values())) / n, 2)
            row["overhead_goal_s"] = 2.0
            _say(f"plain: blank: {row['ours_cpu_s_per_submission']} s CPU per submission (plain nbgrader "
                 f"{row['plain_cpu_s_per_submission']}), of which the notebook's own {sum(own.values()) / n:.2f}: "
                 f"overhead {row['overhead_cpu_s_per_submission']} s (goal <= 2)")
        else:
            row["goal_s"] = 90.0
        results[label] = row
    return results


PARTS = ("class", "resume", "exp2", "plain")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m autograder.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), metavar="PARTS",
                        help="comma-separated parts to run, of class, resume, exp2, plain (default: all); "
                             "figures are merged into bench.json")
    parser.add_argument("--submissions", type=int, default=40, help="class size (default 40)")
    parser.add_argument("--assignments", help="comma-separated assignments (default: every released one)")
    parser.add_argument("--cell-timeout", type=int, default=20, help="seconds one cell may run (default 20)")
    parser.add_argument("--interrupt-after", type=int, help="Ctrl+C once this many results are recorded "
                        "(default: half the class; 0: as soon as both workers are grading, before any result)")
    parser.add_argument("--grace", type=float, default=300.0, help="seconds the interrupted command may take "
                        "to finish what it is grading before SIGTERM (default 300)")
    parser.add_argument("--kernel-repeats", type=int, default=3, help="fresh kernels timed per import set "
                        "(best of; 0 skips them)")
    parser.add_argument("--out", type=Path, help="folder for the courses and bench.json (default build/bench)")
    args = parser.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--only takes a comma-separated list of {', '.join(PARTS)}")

    repo = Course.open().repo
    out = (args.out or repo / "build" / "bench").resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError):
        figures = {}
    figures["hardware"] = hardware()
    _say(f"hardware: {figures['hardware']}; {_load_text(loadavg())}; COURSE_FAST={os.environ.get('COURSE_FAST', '0')}")

    def save() -> None:
        path.write_text(json.dumps(figures, indent=1))

    if "class" in parts or "resume" in parts:
        known = Course.open(root=repo, repo=repo).assignments()
        assignments = [a for a in args.assignments.split(",") if a] if args.assignments else known
        unknown = sorted(set(assignments) - set(known))
        if unknown:
            parser.error(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(known)}")
        assignments = [a for a in known if a in assignments]  # course order
        full_s = None
        if "class" in parts:
            figures["class"], reference, template, chosen = class_bench(
                out, repo, assignments, args.submissions, args.cell_timeout, args.kernel_repeats)
            full_s = figures["class"]["workers_2"]["wall_s"]
            save()
        if "resume" in parts:
            if "class" not in parts:
                _say(f"resume: releasing {len(assignments)} assignment(s) and building {args.submissions} submissions")
                template, chosen = prepare_class(out, repo, assignments, args.submissions)
                reference, full_s = _reference(out, repo, chosen, args.cell_timeout)
            interrupt_after = args.interrupt_after if args.interrupt_after is not None else max(1, len(chosen) // 2)
            figures["resume"] = resume_bench(out, repo, template, chosen, args.cell_timeout, interrupt_after,
                                             args.grace, reference, full_s)
            save()
    if "plain" in parts:
        known = Course.open(root=repo, repo=repo).assignments()
        chosen_a = [a for a in args.assignments.split(",") if a] if args.assignments else known
        figures["plain"] = plain_bench(out, repo, [a for a in known if a in chosen_a], args.cell_timeout)
        save()
    if "exp2" in parts:
        _say(f"exp2: timing ResNet20 training ({_load_text(loadavg())})")
        figures["exp2"] = exp2_resnet20()
        _print_exp2(figures["exp2"])
        _say(f"exp2: done ({_load_text(loadavg())})")
        save()
    _say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
