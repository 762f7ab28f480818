"""The mutation engine (autograder/mutate.py): its operators, the equivalent-mutant lists, and a small
end-to-end run on the cheapest assignments (a sample of mutants; no kill rate is asserted)."""
from __future__ import annotations

import ast
import csv
import re
import subprocess
import sys

import pytest

from autograder import mutate
from autograder.course import Course
from autograder.mutants import Mutant
from conftest import REPO, all_assignments, read

SMALL = '''
def scaled_total(x, w, b=0.5, n=3, *rest, **options):
    """A function with a bit of everything the operators change."""
    total = 0
    for i in range(n):
        if i < 2 and x is not None:
            total += (x * w + b).sum(dim=1) ** 2
    tail = x[1:n]
    return total.mean(), tail


def _private(x):
    return x + 1
'''

SMALL_CLASS = '''
class Step:
    """A class: each method is mutated; the mutant replaces the whole class."""
    def __init__(self, lr=0.1):
        self.lr = lr

    def __call__(self, p, g):
        return p - self.lr * g.mean(axis=0)
'''

EXPECTED = {   # operator -> a line some mutant of SMALL must contain
    "ignore_param": "    w = 0",
    "constant": "total = 1",
    "compare": "i <= 2",
    "arith": "x / w",
    "mean_sum": "total.sum()",
    "dim": "sum(dim=2)",
    "bounds": "range(n + 1)",
    "delete": "        pass",
    "return_const": "return _mutant_constant((total.mean(), tail))",
}


def _one_change(original: str, code: str) -> bool:
    """code differs from original in one place (a run of changed lines)."""
    import difflib

    ops = [op for op in difflib.SequenceMatcher(None, original.splitlines(), code.splitlines()).get_opcodes()
           if op[0] != "equal"]
    return len(ops) == 1


@pytest.mark.parametrize("operator", mutate.OPERATORS)
def test_operator_makes_mutants(operator):
    """Each operator makes at least one mutant of a small function: it compiles, differs, changes one place."""
    mutants = mutate.generate_from_source(SMALL, [operator])
    assert mutants, f"{operator} made no mutant of {SMALL}"
    original = ast.unparse(ast.parse(SMALL).body[0])
    for m in mutants:
        assert m.operator == operator and m.target == "scaled_total" and m.function == "scaled_total"
        assert re.fullmatch(rf"gen_scaled_total_{operator}_-?\d+_\d+", m.name), m.name
        compile(m.code, m.name, "exec")
        body = m.code.split("\n\n\n", 1)[1] if operator == "return_const" else m.code
        assert body != original, f"{m.name} changes nothing"
        assert _one_change(original, body), f"{m.name} changes more than one place:\n{m.diff}"
        assert m.diff.startswith("---") and "\n+" in m.diff
    assert any(EXPECTED[operator] in m.code for m in mutants), \
        f"no {operator} mutant has {EXPECTED[operator]!r}: {[m.diff for m in mutants]}"


def test_private_names_are_not_mutated_and_names_are_stable():
    """Only public definitions are mutated; names are unique and the same on every run, whatever the operators."""
    first = mutate.generate_from_source(SMALL)
    assert all(m.target == "scaled_total" for m in first)
    names = [m.name for m in first]
    assert len(names) == len(set(names))
    assert names == [m.name for m in mutate.generate_from_source(SMALL)]
    alone = [m.name for m in mutate.generate_from_source(SMALL, ["dim"])]
    assert alone == [n for n in names if "_dim_" in n]


def test_specific_mutations():
    """Operator details: -1 <-> 0 for dims, both bounds of a slice, unread parameters left alone, defaults used."""
    dims = {m.code.strip().splitlines()[-1].strip() for m in mutate.generate_from_source(
        "def f(x):\n    return x.sum(dim=0) + x.mean(axis=-1)\n", ["dim"])}
    assert dims == {"return x.sum(dim=1) + x.mean(axis=-1)", "return x.sum(dim=-1) + x.mean(axis=-1)",
                    "return x.sum(dim=0) + x.mean(axis=0)"}
    bounds = {m.code.strip().splitlines()[-1].strip() for m in mutate.generate_from_source(
        "def f(x, a):\n    return x[a:a + 2]\n", ["bounds"])}
    assert bounds == {"return x[a + 1:a + 2]", "return x[a - 1:a + 2]", "return x[a:a + 3]", "return x[a:a + 1]"}
    ignored = mutate.generate_from_source("def f(x, unused=3, scale=2.0):\n    return x * scale\n", ["ignore_param"])
    assert sorted(m.code.splitlines()[1].strip() for m in ignored) == ["scale = 2.0", "x = 0"]
    constants = {m.code.splitlines()[1].strip() for m in mutate.generate_from_source(
        "def f(x):\n    return x * 3 - 0.5\n", ["constant"])}
    assert constants == {"return x * 4 - 0.5", "return x * 2 - 0.5", "return x * 0 - 0.5", "return x * 3 - 1.0",
                         "return x * 3 - 0.25", "return x * 3 - 0.0"}


def test_methods_of_a_class():
    """Every method of a graded class is mutated; the mutant replaces the class and names the method."""
    mutants = mutate.generate_from_source(SMALL_CLASS)
    functions = {m.function for m in mutants}
    assert functions == {"Step.__init__", "Step.__call__"}
    assert all(m.target == "Step" and m.code.lstrip().startswith(("class Step", "def _mutant_constant"))
               for m in mutants)
    assert any(m.name.startswith("gen_Step.__call___mean_sum_") for m in mutants)
    assert not any(m.operator == "ignore_param" and "self = " in m.code for m in mutants), "self is not a parameter to ignore"


def test_return_constant_helper():
    """_mutant_constant keeps shape and structure: zeros for arrays and tensors, 0 for numbers, same containers."""
    import numpy as np
    import torch

    ns: dict = {}
    exec(mutate.HELPER_SOURCE, ns)
    const = ns[mutate.HELPER]
    t, a = torch.ones(2, 3, dtype=torch.float64), np.ones((4,), dtype=np.int64)
    out = const((t, [a, 2.5, 3], {"k": True, "s": "x"}, None))
    assert isinstance(out, tuple) and isinstance(out[1], list) and isinstance(out[2], dict)
    assert torch.equal(out[0], torch.zeros(2, 3, dtype=torch.float64))
    assert out[1][0].dtype == np.int64 and not out[1][0].any()
    assert out[1][1:] == [0.0, 0] and type(out[1][2]) is int
    assert out[2] == {"k": False, "s": ""} and out[3] is None


@pytest.mark.parametrize("assignment", all_assignments())
def test_every_assignment_generates_mutants(assignment):
    """Each assignment's graded functions give generated mutants, with unique names, each applicable to the solution."""
    from autograder.mutants import apply_mutant

    nb = read(next((REPO / "solutions" / assignment).glob("*.ipynb")))
    mutants = mutate.generate(nb)
    assert mutants, f"no mutants generated for {assignment}"
    for m in mutants[:: max(1, len(mutants) // 20)]:
        apply_mutant(nb, m)     # raises when the target is not an answer cell's definition


@pytest.mark.parametrize("assignment", all_assignments())
def test_equivalent_mutants_are_generated_and_explained(assignment):
    """solutions/<a>/equivalent_mutants.txt names only generated mutants, each with a reason."""
    path = REPO / "solutions" / assignment / mutate.EQUIVALENTS_FILE
    if not path.is_file():
        pytest.skip(f"{assignment} lists no equivalent mutants")
    equivalents, problems = mutate.read_equivalents(path)
    assert not problems, "\n".join(problems)
    assert equivalents, f"{path} is empty: delete it"
    names = {m.name for m in mutate.generate(read(next((REPO / "solutions" / assignment).glob("*.ipynb"))))}
    unknown = sorted(set(equivalents) - names)
    assert not unknown, f"{path.name} names mutants that are not generated (renamed or gone?): {unknown}"
    short = [n for n, why in equivalents.items() if len(why) < 15]
    assert not short, f"say why these are equivalent: {short}"


def test_report_escapes_code(tmp_path):
    """The HTML report escapes everything (names, reasons and diffs hold code); the CSV has one row per operator."""
    evil = "<script>alert(1)</script>"
    result = mutate.AssignmentResult("01_backprop", generated={"arith": 2}, seconds=1.0, mutants=[
        mutate.MutantResult("gen_f_arith_2_0", "f", "arith", 2, "solution", "survived",
                            diff=f"--- a\n+++ b\n-    return x < 1\n+    return {evil}"),
        mutate.MutantResult("gen_f_arith_2_1", "f", "arith", 2, "solution", "killed", killed_by="test_f",
                            reason=evil)])
    csv_path, html_path, _ = mutate.write_report([result], tmp_path)
    text = html_path.read_text()
    assert evil not in text and "&lt;script&gt;" in text and "x &lt; 1" in text
    rows = list(csv.DictReader(csv_path.open()))
    arith = next(r for r in rows if r["operator"] == "arith")
    assert (arith["generated"], arith["graded"], arith["killed"], arith["survived"], arith["kill_rate"]) == \
        ("2", "2", "1", "1", "0.500")


def test_cli_lists_mutants():
    """`python -m autograder mutate --list` prints generated mutants with their diffs, grading nothing."""
    proc = subprocess.run([sys.executable, "-m", "autograder", "mutate", "--list", "01_backprop", "--operators", "dim"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "gen_linear_backward_dim_" in proc.stdout and "axis=1" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "autograder", "mutate", "--list", "--operators", "nope"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown mutation operator" in bad.stderr


def _definition(nb, name: str) -> str:
    from autograder.course import is_answer_code_cell

    for cell in nb.cells:
        if is_answer_code_cell(cell):
            for node in ast.parse(cell.source).body:
                if getattr(node, "name", None) == name:
                    return ast.unparse(node)
    raise LookupError(name)


@pytest.fixture(scope="module")
def engine():
    with mutate.Engine(workers=2) as e:
        yield e


def test_grading_end_to_end(engine, tmp_path):
    """On 01_backprop: a mutant known to be wrong is killed, the solution's own code survives, the report says so."""
    course = Course.open(repo=REPO, root=REPO)
    nb = read(course.source_notebooks("01_backprop")[0])
    known = "gen_linear_forward_arith_4_0"          # out = X @ W - b
    assert "X @ W - b" in next(m for m in mutate.generate(nb) if m.name == known).code
    same = Mutant("identity_linear_forward", "linear_forward", _definition(nb, "linear_forward"), "the solution itself")
    result = mutate.grade_assignment(engine, course, "01_backprop", names=[known], extra=[same], log=lambda *_: None)
    assert not result.error, result.error
    status = {m.name: m for m in result.mutants}
    assert status[known].status == "killed" and status[known].killed_by.startswith("test_linear_forward"), status[known]
    assert status["identity_linear_forward"].status == "survived", status["identity_linear_forward"]
    n_tests = sum(1 for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
                  and not c.metadata["nbgrader"].get("solution"))
    assert status["identity_linear_forward"].tests_run == n_tests, "a survivor runs every test"
    assert status[known].tests_run < n_tests, "a killed mutant stops at its first failing test"
    csv_path, html_path, _ = mutate.write_report([result], tmp_path)
    assert known in (tmp_path / "mutation_mutants.csv").read_text() and "identity_linear_forward" in html_path.read_text()


@pytest.mark.parametrize("assignment", ["01_backprop", "02_activations"])
def test_grading_a_sample(engine, tmp_path, assignment):
    """A deterministic sample of generated mutants is graded without errors, each killed, survived or equivalent."""
    course = Course.open(repo=REPO, root=REPO)
    result = mutate.grade_assignment(engine, course, assignment, limit=12, log=lambda *_: None)
    assert not result.error, result.error
    assert len(result.mutants) == 12
    assert sum(result.generated.values()) > 12
    errors = [(m.name, m.reason) for m in result.mutants if m.status == "error"]
    assert not errors, errors
    assert all(m.status in ("killed", "survived", "equivalent") for m in result.mutants)
    assert all(m.killed_by for m in result.mutants if m.status == "killed")
    again = mutate.sample(mutate.generate(read(course.source_notebooks(assignment)[0])), 12)
    assert [m.name for m in again] == [m.name for m in result.mutants], "the sample is deterministic"
