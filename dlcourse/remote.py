"""Where test code runs: the two names a notebook's locked cells use to say so.

While an instructor grades, a submission's answer cells run in a sandboxed *student process* and
its tests run in the *grader*, a trusted process outside the sandbox; only data crosses between
them (``dlcourse.wire``). In a student's own notebook, and in the self-check, there is one
process and both names below do nothing special.

``@student_side``
    on a function of a locked cell: while grading, calling it runs the student process's copy of
    the function (the locked cell ran there too), with the arguments and the result crossing as
    data. Use it for what must happen next to the student's code: autograd through it, training a
    model in place, reading a file it wrote, a forward hook, forbidding a built-in while it runs.
    ``fn.local(...)`` runs the grader's own copy.

``student.NAME``
    the value the student process holds under ``NAME``: data as a copy, anything else (a model, an
    optimizer, a class) as a handle whose attributes, calls, items and ``with`` blocks act on the
    object in the student process.

What comes back from the student process is whatever the student's code made it: the tests
compare it with values they compute themselves.
"""
from __future__ import annotations

import functools
import sys

#: the grader's connection to the student process, set only inside the grader while a test runs
_session = None


def grading_session():
    """The active grading session (in the grader's own process), or None."""
    return _session


def student_side(fn):
    """Run ``fn`` in the student process while grading (see the module docstring)."""
    name = fn.__name__

    @functools.wraps(fn)
    def run(*args, **kwargs):
        session = _session
        if session is None:
            return fn(*args, **kwargs)
        return session.call_global(name, args, kwargs)

    run.local = fn
    run.__dlcourse_student_side__ = name
    return run


def _user_namespace() -> dict:
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    if shell is not None:
        return shell.user_ns
    return vars(sys.modules["__main__"])


class _Student:
    """``student.NAME``: the student process's global ``NAME`` (here: this notebook's own)."""

    __slots__ = ()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        session = _session
        if session is not None:
            return session.global_value(name)
        try:
            return _user_namespace()[name]
        except KeyError:
            raise AttributeError(f"the notebook defines no {name!r}") from None

    def __repr__(self):
        return "<the student's notebook>"


student = _Student()

__all__ = ["student", "student_side", "grading_session"]
