"""``make bench``: speed figures, measured, never asserted (tests must not be timed).

Prints and writes ``build/bench/bench.json``:
  * per-notebook overhead of one ``nbgrader autograde`` (process, fresh kernel, imports), from
    grading each blank release (its cells fail fast, so what remains is overhead);
  * the time to autograde each solution (the per-assignment budget is 30-60 s on 2 cores);
  * the demo class graded with ``--workers 1`` and ``--workers 2``, and the speed-up;
  * experiment 2 (ResNet20 on CIFAR-10), with the solution's own ``train``/``evaluate``: seconds per
    epoch and images per second on the device at hand. On a CPU, one epoch of a few hundred
    generated images (and the 50,000-image epoch extrapolated from it); on a GPU, the full 10-epoch
    schedule with per-epoch test evaluation in a warm process with the data already on the GPU,
    on the real CIFAR-10 when it is in the data folder, else on synthetic CIFAR-shaped data.

``python -m autograder.bench --only exp2`` runs just the last part (merged into bench.json).
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


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m autograder.bench")
    parser.add_argument("--only", choices=["exp2"], help="run one part only (merged into bench.json)")
    args = parser.parse_args(argv)
    repo = Course.open().repo
    out = repo / "build" / "bench"
    if args.only == "exp2":
        path = out / "bench.json"
        figures = json.loads(path.read_text()) if path.is_file() else {"hardware": hardware()}
        figures["exp2"] = exp2_resnet20()
        _print_exp2(figures["exp2"])
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=1))
        print(f"wrote {path}")
        return 0
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
    figures["exp2"] = exp2_resnet20()
    _print_exp2(figures["exp2"])
    (out / "bench.json").write_text(json.dumps(figures, indent=1))
    print(f"wrote {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
