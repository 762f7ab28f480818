"""Run-time switches shared by every notebook: fast mode, grading mode, seeding, progress."""
from __future__ import annotations

import os
import random
import sys

import numpy as np

#: ``COURSE_FAST=1`` cuts data and epochs so every notebook runs in CI; the logic is unchanged.
FAST: bool = os.environ.get("COURSE_FAST", "0") not in ("", "0", "false", "False")


def fast_or(full, fast):
    """Return ``fast`` in fast mode and ``full`` otherwise (e.g. ``num_epochs = fast_or(50, 2)``)."""
    return fast if FAST else full


def demo_budget(full, cut):
    """``cut`` in fast mode or while grading, else ``full``: for cells that only show the student a run.

    Tests train their own models with their own budgets, so a grader never pays for the demos.
    """
    return cut if FAST or grading() else full


def grading() -> bool:
    """True while nbgrader validates or autogrades this notebook."""
    return "NBGRADER_EXECUTION" in os.environ


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and (when imported) torch, so a run repeats exactly.

    While grading, a test's call also seeds the student's process (where the student's code draws
    its random numbers), so a seeded test means the same in both processes.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")   # unit 01 is numpy-only and must not pay for a torch import
    if torch is not None:
        torch.manual_seed(seed)
    from dlcourse import remote

    if remote._session is not None:
        remote._session.call_import("dlcourse.runtime", "seed_everything", (seed,), {})


def training_device():
    """``torch.device("cuda")`` when a GPU is available, else the CPU.

    The CPU thread count is left to torch, which reads ``OMP_NUM_THREADS``: the autograder
    sets it to each grading kernel's share of the cores, so parallel kernels never fight. With
    several kernels on one GPU it sets ``COURSE_GPU_SHARE``, and this caps the kernel's GPU
    memory at that fraction (an out-of-memory error then stays inside that submission).
    """
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    share = os.environ.get("COURSE_GPU_SHARE")      # set by the autograder: 1 / (kernels sharing this GPU)
    if share:
        torch.cuda.set_per_process_memory_fraction(float(share))
    return torch.device("cuda")


def on_colab() -> bool:
    return "google.colab" in sys.modules


def describe_runtime() -> None:
    """One line on where this notebook runs; on Colab without a GPU, how to get one.

    Locally it does not import torch (unit 01 never needs it), so it costs nothing.
    """
    from dlcourse import __version__

    where = "Colab" if on_colab() else "local"
    line = f"dlcourse {__version__} · Python {sys.version.split()[0]} · {where}"
    if on_colab() or "torch" in sys.modules:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        line += f" · torch {torch.__version__} · " + (f"GPU: {gpu}" if gpu else "no GPU: training runs on the CPU")
        if on_colab() and not gpu:
            line += "\n  for a GPU: Runtime > Change runtime type > T4 GPU, then run the notebook again"
    print(line)


def progress(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm progress bar (a widget in Jupyter, text in a terminal).

    Off while grading: a test cell that writes to stderr scores 0 in nbgrader, and text
    bars write to stderr.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled or grading(), **kwargs)
