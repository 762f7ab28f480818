"""Assertions for test cells: they say what is wrong (shape, first wrong value, NaN) without
printing the reference solution's code.

Every failure raises ``AssertionError`` with a one-line message a student can act on.
"""
from __future__ import annotations

import numpy as np


def _as_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    if x is None:
        raise AssertionError(f"{name} is None: did you forget to return it?")
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"{name} should be an array of numbers, got {type(x).__name__}") from err


def check_shape(actual, shape: tuple, name: str = "result") -> None:
    """Fail unless ``actual`` has exactly ``shape``."""
    got = tuple(np.shape(actual) if not hasattr(actual, "shape") else actual.shape)
    if got != tuple(shape):
        raise AssertionError(f"{name} has shape {got}, expected {tuple(shape)}")


def check_finite(actual, name: str = "result", given: str = "") -> None:
    """Fail if ``actual`` holds a NaN or an infinity; ``given`` names the input that caused it."""
    a = _as_numpy(actual, name)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f" at index {idx}" if a.ndim else ""
        cause = f" for {given}" if given else ""
        raise AssertionError(f"{name} is {a[idx] if a.ndim else a}{where}{cause}: "
                             "look for an exp or log that overflows")


def check_close(actual, expected, name: str = "result", rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Fail unless ``actual`` matches ``expected`` in shape and value (like ``np.allclose``).

    The message names the first wrong element, its value and the expected value.
    """
    a = _as_numpy(actual, name)
    e = _as_numpy(expected, "expected")
    if a.shape != e.shape:
        raise AssertionError(f"{name} has shape {a.shape}, expected {e.shape}")
    check_finite(a, name)
    wrong = ~np.isclose(a, e, rtol=rtol, atol=atol)
    if wrong.any():
        idx = tuple(int(i) for i in np.argwhere(wrong)[0])
        n = int(wrong.sum())
        where = f"[{', '.join(map(str, idx))}]" if a.ndim else ""
        raise AssertionError(
            f"{name}{where} = {a[idx]:.6g}, expected {e[idx]:.6g} "
            f"({n} of {a.size} elements differ)")


def rel_error(x, y) -> float:
    """Max relative error ``|x - y| / max(|x| + |y|, 1e-12)``, the measure used in gradient checks."""
    x, y = _as_numpy(x, "x"), _as_numpy(y, "y")
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(x) + np.abs(y), 1e-12)))


def reference_numerical_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred differences ``(f(x + h) - f(x - h)) / 2h``, one coordinate at a time.

    The graders' own copy: tests check students' gradients with this, never with the
    student's ``numerical_gradient``.
    """
    x = np.asarray(x, dtype=float)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def check_gradient(analytic, numeric, name: str = "gradient", tol: float = 1e-6) -> None:
    """Fail unless the analytic gradient matches finite differences to relative error ``tol``."""
    a = _as_numpy(analytic, name)
    n = _as_numpy(numeric, "numerical gradient")
    if a.shape != n.shape:
        raise AssertionError(f"{name} has shape {a.shape}, expected {n.shape} (the parameter's shape)")
    check_finite(a, name)
    err = rel_error(a, n)
    if err > tol:
        idx = tuple(int(i) for i in np.unravel_index(
            np.argmax(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-12)), a.shape))
        raise AssertionError(
            f"{name} disagrees with finite differences: relative error {err:.2e} > {tol:.0e}; "
            f"worst at index {list(idx)}: got {a[idx]:.6g}, finite differences give {n[idx]:.6g}")
