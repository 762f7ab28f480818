"""Mutants: plausible wrong answers kept beside each assignment (``solutions/<a>/mutants.py``).

Each mutant replaces one top-level function or class in the solution notebook's answer cells.
The harness grades every mutant as a student and requires it to lose points, which proves the
tests can fail on mistakes students really make.
"""
from __future__ import annotations

import ast
import copy
import importlib.util
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import is_answer_code_cell


@dataclass(frozen=True)
class Mutant:
    name: str      # short id, e.g. "softmax_without_max_shift"
    target: str    # the function or class it replaces
    code: str      # the wrong definition, complete
    why: str = ""  # the student mistake it models


def load_mutants(assignment_dir: Path) -> list[Mutant]:
    """The ``MUTANTS`` list from ``assignment_dir/mutants.py`` (empty when there is none)."""
    path = assignment_dir / "mutants.py"
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location(f"mutants_{assignment_dir.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mutants = list(module.MUTANTS)
    names = [m.name for m in mutants]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: mutant names must be unique")
    return mutants


def _top_level_defs(source: str) -> dict[str, tuple[int, int]]:
    """Name -> (first line, last line), 1-based, of each top-level def/class (decorators included)."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return {}
    spans = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans[node.name] = (first, node.end_lineno)
    return spans


def _strip_magics(source: str) -> str:
    """IPython magics are not Python: blank them out so ``ast`` can parse the rest."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def graded_functions(nb) -> list[str]:
    """Public functions and classes defined in the notebook's answer cells, in order."""
    names = []
    for cell in nb.cells:
        if is_answer_code_cell(cell):
            names += [n for n in _top_level_defs(cell.source) if not n.startswith("_")]
    return names


def apply_mutant(nb, mutant: Mutant):
    """A copy of ``nb`` with ``mutant.target``'s definition replaced by ``mutant.code``."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if not is_answer_code_cell(cell):
            continue
        spans = _top_level_defs(cell.source)
        if mutant.target in spans:
            first, last = spans[mutant.target]
            lines = cell.source.splitlines()
            new = textwrap.dedent(mutant.code).strip("\n").splitlines()
            cell.source = "\n".join(lines[: first - 1] + new + lines[last:])
            return nb
    raise ValueError(f"mutant {mutant.name!r}: no answer cell defines {mutant.target!r}")


def write_mutant_submission(solution: Path, mutant: Mutant, dest: Path) -> None:
    nb = nbformat.read(str(solution), as_version=4)
    nbformat.write(apply_mutant(nb, mutant), str(dest))
