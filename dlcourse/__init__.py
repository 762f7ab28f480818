"""Shared code for the course notebooks: test helpers, progress bars, fast mode, devices.

Notebooks import this package instead of copying helpers between them; the autograder
imports it too, so a student's kernel and the grader agree on what "close" means.
"""
from dlcourse.runtime import (FAST, demo_budget, describe_runtime, fast_or, grading, on_colab, progress,
                              seed_everything, training_device)

__all__ = ["FAST", "demo_budget", "describe_runtime", "fast_or", "grading", "on_colab", "progress", "seed_everything",
           "training_device"]
__version__ = "0.1.0"
