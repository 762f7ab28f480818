"""The per-assignment guarantees, checked for every assignment in solutions/ (now and as units are added)."""
from __future__ import annotations

import pytest

from autograder.course import is_test_cell
from autograder.mutants import graded_functions, load_mutants
from autograder.release import check_release, leaked_solution_code
from autograder.reports import cell_scores
from conftest import REPO, all_assignments, all_mutants, mutant_student, pipeline_mutants, read, released_notebooks

ASSIGNMENTS = all_assignments()


def test_course_has_assignments():
    """The harness is not vacuous: at least one assignment exists."""
    assert ASSIGNMENTS, "no assignments found in solutions/"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_gets_full_marks(graded_class, assignment):
    """The solution, submitted as a student, gets every autograded point."""
    course, results = graded_class
    r = results[(assignment, "perfect")]
    assert r.status == "graded", f"grading the solution failed: {r.reason}"
    scores = cell_scores(course, assignment, "perfect")
    lost = {k: v for k, v in scores.items() if v[0] < v[1]}
    assert scores and not lost, f"the solution lost points on {lost}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_scores_zero(graded_class, assignment):
    """The released (blank) notebook is graded without a crash and scores 0 on every test."""
    course, results = graded_class
    r = results[(assignment, "blank")]
    assert r.status == "graded", f"grading the blank release failed: {r.reason}"
    scores = cell_scores(course, assignment, "blank")
    passed = {k: v for k, v in scores.items() if v[0] > 0}
    assert scores and not passed, f"tests that pass on the blank notebook (they cannot fail): {passed}"


@pytest.mark.parametrize("assignment,mutant", all_mutants(),
                         ids=[f"{a}:{m.name}" for a, m in all_mutants()])
def test_mutant_loses_points(request, mutant_verdicts, assignment, mutant):
    """Each plausible wrong answer, substituted into the solution, loses points."""
    verdict = mutant_verdicts.get((assignment, mutant.name))
    if verdict is not None:
        assert verdict.status == "killed", (f"mutant {mutant.name!r} ({mutant.why}) {verdict.status} "
                                            f"{verdict.reason}: no test catches it")
        return
    course, results = request.getfixturevalue("graded_class")       # tamper_* mutants: the whole pipeline
    scores = cell_scores(course, assignment, mutant_student(mutant))
    got, full = sum(s for s, _ in scores.values()), sum(m for _, m in scores.values())
    assert got < full, (f"mutant {mutant.name!r} ({mutant.why}) survived with {got}/{full}: "
                        f"no test catches it")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_engine_and_autograde_agree(graded_class, mutant_verdicts, assignment):
    """On the mutants graded both ways, the engine's first failing test is one that nbgrader's autograde scores below full."""
    course, _ = graded_class
    both = [m for m in pipeline_mutants(assignment) if (assignment, m.name) in mutant_verdicts]
    assert both, "no mutant is graded both by the engine and by the pipeline"
    for mutant in both:
        verdict = mutant_verdicts[(assignment, mutant.name)]
        lost = {k for k, (got, full) in cell_scores(course, assignment, mutant_student(mutant)).items() if got < full}
        assert (verdict.status == "killed") == bool(lost), (mutant.name, verdict.status, sorted(lost))
        assert verdict.killed_by in lost, f"{mutant.name}: the engine's {verdict.killed_by} passes in autograde ({sorted(lost)})"


def tamper_mutants() -> list[tuple[str, object, object]]:
    """(assignment, tamper_* mutant, the plain wrong answer whose code it extends)."""
    pairs = []
    for assignment, mutant in all_mutants():
        if mutant.name.startswith("tamper_"):
            twins = [t for a, t in all_mutants() if a == assignment and not t.name.startswith("tamper_")
                     and mutant.code.strip().startswith(t.code.strip())]
            pairs.append((assignment, mutant, twins[0] if twins else None))
    return pairs


def test_there_are_tamper_mutants():
    """Tamper resistance is exercised: patching numpy, torch, AssertionError, IPython and the helpers."""
    if len(ASSIGNMENTS) < len(list((REPO / "solutions").glob("*/mutants.py"))):
        pytest.skip("COURSE_ASSIGNMENTS selects a subset")
    names = {m.name for _, m, _ in tamper_mutants()}
    for attack in ("numpy_isclose", "torch_allclose", "assertion_error", "traceback_display", "cell_runner",
                   "test_helpers"):
        assert f"tamper_{attack}" in names, f"no tamper_{attack} mutant"


@pytest.mark.parametrize("assignment,mutant,twin", tamper_mutants(),
                         ids=[f"{a}:{m.name}" for a, m, _ in tamper_mutants()])
def test_tampering_gains_nothing(graded_class, assignment, mutant, twin):
    """A wrong answer that also patches the grading environment scores exactly what the plain wrong answer does."""
    assert twin is not None, f"{mutant.name}: its code must start with a plain mutant's code (its twin)"
    course, _ = graded_class
    tampered = cell_scores(course, assignment, mutant_student(mutant))
    plain = cell_scores(course, assignment, mutant_student(twin))
    gained = {k: (tampered[k][0], plain[k][0]) for k in plain if tampered.get(k, (0, 0))[0] > plain[k][0]}
    assert not gained, f"{mutant.name} ({mutant.why}) gained points over {twin.name} on {gained}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_graded_function_has_three_mutants(assignment):
    """Every function a student writes has at least three mutants."""
    solution = read(next((REPO / "solutions" / assignment).glob("*.ipynb")))
    counts = {name: 0 for name in graded_functions(solution)}
    for m in load_mutants(REPO / "solutions" / assignment):
        assert m.target in counts, f"mutant {m.name} targets {m.target!r}, not a graded function"
        counts[m.target] += 1
    assert counts, "no graded functions found"
    short = {k: v for k, v in counts.items() if v < 3}
    assert not short, f"graded functions with fewer than 3 mutants: {short}"


@pytest.mark.parametrize("path", released_notebooks(), ids=lambda p: p.parent.name)
def test_release_holds_no_solution_or_hidden_tests(path):
    """assignments/ has no solution code, no hidden tests and no mutants."""
    assert not leaked_solution_code(path)
    solution = read(REPO / "solutions" / path.parent.name / path.name)
    released = read(path)
    from autograder.feedback import redact_source

    visible = "\n".join(redact_source(c.source) for c in solution.cells)
    hidden = [line.strip() for c in solution.cells for line in c.source.splitlines()
              if len(line.strip()) > 25 and line.strip() not in visible]
    text = "\n".join(c.source for c in released.cells)
    leaks = [line for line in hidden if line in text]
    assert not leaks, f"hidden-test or solution lines visible in the release: {leaks[:3]}"
    assert not (path.parent / "mutants.py").exists(), "mutants.py was released to students"


def test_release_matches_solutions():
    """assignments/ is exactly what `release` generates from solutions/ (no drift, no hand edits)."""
    from autograder.course import Course

    problems = check_release(Course.open(repo=REPO, root=REPO))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_tests_have_points_and_docstrings(assignment):
    """Every test cell carries points and opens with a one-line docstring saying what it checks."""
    nb = read(next((REPO / "solutions" / assignment).glob("*.ipynb")))
    tests = [c for c in nb.cells if is_test_cell(c)]
    assert tests
    for c in tests:
        gid = c.metadata.nbgrader.grade_id
        assert c.metadata.nbgrader.get("points", 0) > 0, f"{gid} has no points"
        first = c.source.lstrip().splitlines()[0]
        assert first.startswith('"""') and first.endswith('"""') and len(first) > 10, \
            f"{gid} should open with a one-line docstring"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_tests_run_in_the_trusted_grader(assignment):
    """The assignment's tests run outside the student's process, and read only names the grader defines."""
    from autograder.verdict import untrusted_names

    nb = read(next((REPO / "solutions" / assignment).glob("*.ipynb")))
    assert nb.metadata.get("dlcourse", {}).get("tests") == "trusted", \
        f"{assignment} is not graded by the trusted grader (metadata.dlcourse.tests)"
    problems = untrusted_names(nb)
    assert not problems, "\n".join(problems)
