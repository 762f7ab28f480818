"""Mutation testing: mutants generated from the solutions, graded fast, to find what no test checks.

``python -m autograder mutate [ASSIGNMENT...]`` (``make mutation``) takes every graded function, and
every method of every graded class, in the answer cells of ``solutions/<a>/<a>.ipynb`` and makes
mutants of it with ``ast``, one change each. The operators (``--operators a,b`` for some):

``ignore_param``  a parameter is ignored: rebound at the top of the body to its default, or to 0
                  where it has none (``*args`` to ``()``, ``**kwargs`` to ``{}``); a parameter the
                  body never reads is left alone (ignoring it changes nothing);
``constant``      a numeric literal perturbed: ints k+1, k-1 and 0, floats x2, /2 and 0 (literals that
                  are a ``dim``/``axis`` value or a range, slice or randint bound are left to ``dim``
                  and ``bounds``);
``compare``       ``<`` / ``<=``, ``>`` / ``>=``, ``==`` / ``!=`` (and ``is`` / ``is not``, ``in`` / ``not in``)
                  swapped;
``arith``         ``+`` / ``-``, ``*`` / ``/`` swapped, ``**`` and ``//`` made ``*`` and ``/``, also in ``+=``-style
                  assignments;
``mean_sum``      ``mean`` and ``sum`` swapped (methods, ``np.``/``torch.`` functions);
``dim``           a literal ``dim=``/``axis=`` (``start_dim=``, ``end_dim=``; tuples element-wise): k -> k+1,
                  and 0 -> -1 (so -1 -> 0 too);
``bounds``        a ``range`` bound, a slice bound or a ``randint``/``integers`` bound off by one (+1, -1);
``delete``        one statement at a time replaced by ``pass`` (docstrings excepted);
``return_const``  a return value replaced by a constant of the same shape and structure (zeros for
                  arrays and tensors, 0 for numbers, the same tuple/list/dict of constants), through
                  the helper ``_mutant_constant`` inserted with the mutant.

A mutant is named ``gen_<function>_<operator>_<line>_<k>``: ``<function>`` is the function or
``Class.method`` it changes, ``<line>`` the line of the change within that function (its ``def``
line is 1), ``<k>`` counts that operator's mutants on that line. Mutations that do not compile, or
leave the code as it was (compared as ``ast.unparse`` text), are skipped, and so are duplicates.

**Grading.** A mutant is graded as a student's submission would be, minus what cannot change its
verdict: the submission is built like the harness does (``apply_mutant`` on the solution), and
graded by the trusted grader itself (``verdict.run_job``, on a job like ``budgets.reference_job``
builds) with no nbgrader and no gradebook. A mutant is *killed* when at least one test fails. To be
fast: ``--workers`` warm processes (numpy, torch, ... imported once), each with a zygote
(``autograder.zygote``) from which every student process is forked, and a fork of the worker per
mutant (``worker.fork_run_job``); a mutant stops at its first failing test (``--all-tests`` runs
them all); and the source's free (unlabelled) cells are not run (``--free-cells`` runs them): they
are the instructor's demos, and the lint (``verdict.untrusted_names``) guarantees that no test
reads a name they define. **Student code runs unsandboxed here** (``isolation`` off, the zygote
without a sandbox): mutants are the course's own code, written by this module, not submissions.

Before its mutants, each assignment's solution is graded the same way: it must pass every test
(else its mutants are not graded: the assignment is reported as failing), and its times set the
mutants' limits as for submissions (``budgets.FACTOR`` times its time per cell plus
``budgets.CELL_SLACK_S``). When it fails without the free cells but passes with them, the free
cells are run for that assignment's mutants (and the report says so).

**Equivalent mutants** (no input tells them from the solution) are listed in
``solutions/<a>/equivalent_mutants.txt``, one a line: ``<mutant name>  # why it is equivalent``.
They are reported as equivalent, not as survivors (and a listed mutant that a test kills is
reported as killed, with a warning: the list is wrong).

**Report.** ``<course>/reports/mutation.csv`` (per assignment and operator: generated, graded,
killed, equivalent, survived, errors, kill rate of the non-equivalent graded mutants),
``mutation_mutants.csv`` (every graded mutant), ``mutation.html`` (the same, and every survivor's
diff) and ``mutation.json`` (what they are made from; a run merges its assignments into it, so
assignments can be run one at a time). ``--out DIR`` writes them elsewhere. ``--limit N`` grades a
deterministic sample of N mutants per assignment (by a hash of their names).
"""
from __future__ import annotations

import ast
import copy
import csv
import difflib
import hashlib
import html
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.mutants import Mutant, _strip_magics, apply_mutant

OPERATORS = ("ignore_param", "constant", "compare", "arith", "mean_sum", "dim", "bounds", "delete", "return_const")
EQUIVALENTS_FILE = "equivalent_mutants.txt"
HELPER = "_mutant_constant"
HELPER_SOURCE = f'''
def {HELPER}(value):
    """Mutation engine: a constant of the same shape and structure as value (zeros, 0, empty)."""
    import sys
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch is not None and isinstance(value, torch.Tensor):
        return torch.zeros_like(value)
    if np is not None and isinstance(value, np.ndarray):
        return np.zeros_like(value)
    if isinstance(value, bool) or (np is not None and isinstance(value, np.bool_)):
        return False
    if isinstance(value, (int, float, complex)) or (np is not None and isinstance(value, np.number)):
        return type(value)(0)
    if isinstance(value, (str, bytes)):
        return type(value)()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*({HELPER}(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)({HELPER}(v) for v in value)
    if isinstance(value, dict):
        return {{k: {HELPER}(v) for k, v in value.items()}}
    return None
'''.strip("\n")
DIM_KEYWORDS = ("dim", "axis", "start_dim", "end_dim")


@dataclass(frozen=True)
class GeneratedMutant(Mutant):
    operator: str = ""
    function: str = ""      # the function or method changed: "linear_forward", "SGD.step"
    line: int = 0           # the line of the change within it (its def line is 1)
    region: str = ""        # "solution" when the change is between BEGIN/END SOLUTION, else "given"
    diff: str = ""          # unified diff of the function (as ast.unparse writes it)


# -- generation ---------------------------------------------------------------------------------------
def _number(node) -> int | float | None:
    """The value of a numeric literal (``3``, ``-0.5``), else None (bools are not numbers here)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _number(node.operand)
        return None if value is None or isinstance(node.operand, ast.UnaryOp) else -value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    return None


def _literal(value) -> ast.expr:
    return ast.UnaryOp(ast.USub(), ast.Constant(-value)) if value < 0 else ast.Constant(value)


def _shifted(node: ast.expr, delta: int) -> ast.expr:
    """``node`` plus ``delta`` (an int), folded into a literal or a trailing ``+ c`` / ``- c`` where there is one."""
    value = _number(node)
    if isinstance(value, int):
        return _literal(value + delta)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and isinstance(_number(node.right), int):
        c = _number(node.right) * (1 if isinstance(node.op, ast.Add) else -1) + delta
        left = copy.deepcopy(node.left)
        if c == 0:
            return left
        return ast.BinOp(left, ast.Add() if c > 0 else ast.Sub(), ast.Constant(abs(c)))
    return ast.BinOp(copy.deepcopy(node), ast.Add() if delta > 0 else ast.Sub(), ast.Constant(abs(delta)))


def _is_docstring(stmt, body) -> bool:
    return (body and stmt is body[0] and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _bound_args(call: ast.Call) -> list[ast.expr]:
    """The arguments of a range / randint / integers call that are bounds (not steps or sizes)."""
    name = _call_name(call)
    if name == "range":
        return list(call.args[:2]) if len(call.args) >= 2 else list(call.args[:1])
    if name in ("randint", "integers"):
        torch_style = isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) \
            and call.func.value.id == "torch"
        positional = (call.args[:2] if len(call.args) >= 3 else call.args[:1]) if torch_style else call.args[:2]
        return list(positional) + [k.value for k in call.keywords if k.arg in ("low", "high")]
    return []


def _walk(func) -> list[ast.AST]:
    """The nodes of ``func`` in a fixed order (breadth first, as ``ast.walk``)."""
    return list(ast.walk(func))


def _own(func) -> list[ast.AST]:
    """The nodes of ``func`` outside nested functions, lambdas and classes."""
    out, todo = [], list(ast.iter_child_nodes(func))
    while todo:
        node = todo.pop(0)
        out.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
    return out


def _parents(func) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(func) for child in ast.iter_child_nodes(node)}


def _replace(parent, old, new) -> None:
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise ValueError("node not found in its parent")


# Each operator: (func, is_method) -> [(node, line node, transform)]; transform(node copy) returns the
# replacement (or the node, changed in place). Sites are listed in a fixed order, so names are stable.
def _op_ignore_param(func, is_method):
    a = func.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = list(zip(positional, defaults))
    if is_method and params and not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list):
        params = params[1:]                                      # self / cls
    params += list(zip(a.kwonlyargs, a.kw_defaults))
    if a.vararg:
        params.append((a.vararg, ast.Tuple([], ast.Load())))
    if a.kwarg:
        params.append((a.kwarg, ast.Dict([], [])))
    read = {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    sites = []
    for arg, default in params:
        if arg.arg not in read:
            continue

        def transform(f, name=arg.arg, value=default):
            stmt = ast.Assign([ast.Name(name, ast.Store())], copy.deepcopy(value) if value is not None else ast.Constant(0))
            f.body.insert(1 if _is_docstring(f.body[0], f.body) else 0, stmt)
            return f
        sites.append((func, arg, transform))
    return sites


def _op_constant(func, is_method):
    parents = _parents(func)
    skip = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            skip.update(id(k.value) for k in node.keywords if k.arg in DIM_KEYWORDS)
            for k in node.keywords:
                if k.arg in DIM_KEYWORDS and isinstance(k.value, ast.Tuple):
                    skip.update(id(e) for e in k.value.elts)
            skip.update(id(b) for b in _bound_args(node))
        elif isinstance(node, ast.Slice):
            skip.update(id(b) for b in (node.lower, node.upper) if b is not None)
    sites = []
    for node in _walk(func):
        value = _number(node)
        if value is None or id(node) in skip:
            continue
        parent = parents.get(id(node))
        if isinstance(parent, ast.UnaryOp) and _number(parent) is not None:   # the 3 of -3: done as -3
            continue
        if isinstance(value, int):
            new = [value + 1, value - 1, 0]
        else:
            new = [value * 2, value / 2, 0.0]
        for v in (x for x in dict.fromkeys(new) if x != value):
            sites.append((node, node, lambda n, v=v: _literal(v)))
    return sites


_COMPARE_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                 ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_ARITH_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
               ast.FloorDiv: ast.Div}


def _op_compare(func, is_method):
    sites = []
    for node in _walk(func):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _COMPARE_SWAP:
                    def transform(n, i=i):
                        n.ops[i] = _COMPARE_SWAP[type(n.ops[i])]()
                        return n
                    sites.append((node, node, transform))
    return sites


def _op_arith(func, is_method):
    sites = []
    for node in _walk(func):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _ARITH_SWAP:
            def transform(n):
                n.op = _ARITH_SWAP[type(n.op)]()
                return n
            sites.append((node, node, transform))
    return sites


def _op_mean_sum(func, is_method):
    sites = []
    for node in _walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("mean", "sum"):
            def transform(n):
                n.func.attr = "sum" if n.func.attr == "mean" else "mean"
                return n
            sites.append((node, node, transform))
    return sites


def _dim_variants(k: int) -> list[int]:
    return [v for v in dict.fromkeys([k + 1] + ([-1] if k == 0 else [])) if v != k]


def _op_dim(func, is_method):
    sites = []
    for node in _walk(func):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg not in DIM_KEYWORDS:
                continue
            elements = keyword.value.elts if isinstance(keyword.value, ast.Tuple) else [keyword.value]
            for element in elements:
                k = _number(element)
                if isinstance(k, int):
                    for v in _dim_variants(k):
                        sites.append((element, element, lambda n, v=v: _literal(v)))
    return sites


def _op_bounds(func, is_method):
    sites = []
    for node in _walk(func):
        bounds = _bound_args(node) if isinstance(node, ast.Call) else \
            [b for b in (node.lower, node.upper) if b is not None] if isinstance(node, ast.Slice) else []
        for bound in bounds:
            for delta in (1, -1):
                sites.append((bound, bound, lambda n, d=delta: _shifted(n, d)))
    return sites


def _op_delete(func, is_method):
    parents = _parents(func)
    sites = []
    for node in _walk(func):
        if not isinstance(node, ast.stmt) or node is func or isinstance(node, ast.Pass):
            continue
        parent = parents[id(node)]
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _is_docstring(node, parent.body):
            continue
        sites.append((node, node, lambda n: ast.Pass()))
    return sites


def _op_return_const(func, is_method):
    sites = []
    for node in _own(func):
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            def transform(n):
                n.value = ast.Call(ast.Name(HELPER, ast.Load()), [n.value], [])
                return n
            sites.append((node, node, transform))
    return sites


_OPERATOR_FUNCTIONS = {"ignore_param": _op_ignore_param, "constant": _op_constant, "compare": _op_compare,
                       "arith": _op_arith, "mean_sum": _op_mean_sum, "dim": _op_dim, "bounds": _op_bounds,
                       "delete": _op_delete, "return_const": _op_return_const}


def _solution_lines(source: str) -> set[int]:
    """Line numbers of ``source`` between ### BEGIN SOLUTION and ### END SOLUTION."""
    inside, out = False, set()
    for number, line in enumerate(source.splitlines(), 1):
        text = line.strip()
        if text.startswith("### BEGIN SOLUTION"):
            inside = True
        elif text.startswith("### END SOLUTION"):
            inside = False
        elif inside:
            out.add(number)
    return out


def _functions_of(top) -> list[tuple[str, ast.AST, bool]]:
    if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [(top.name, top, False)]
    return [(f"{top.name}.{m.name}", m, True) for m in top.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _check_operators(operators) -> tuple[str, ...]:
    operators = tuple(operators or OPERATORS)
    unknown = [o for o in operators if o not in OPERATORS]
    if unknown:
        raise ValueError(f"unknown mutation operator(s) {', '.join(unknown)}: choose from {', '.join(OPERATORS)}")
    return operators


def generate_from_source(source: str, operators=None, names: list[str] | None = None) -> list[GeneratedMutant]:
    """Mutants of the public top-level functions and classes of one cell's ``source`` (only ``names`` when given)."""
    operators = _check_operators(operators)
    tree = ast.parse(_strip_magics(source))
    solution = _solution_lines(source)
    out: list[GeneratedMutant] = []
    for position, top in enumerate(tree.body):
        if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or top.name.startswith("_"):
            continue
        if names is not None and top.name not in names:
            continue
        original = ast.unparse(top)
        for method_index, (where, func, is_method) in enumerate(_functions_of(top)):
            nodes = _walk(func)
            index = {id(n): i for i, n in enumerate(nodes)}
            for operator in operators:
                seen, counts = {original}, {}
                for node, at, transform in _OPERATOR_FUNCTIONS[operator](func, is_method):
                    mutated_top = copy.deepcopy(top)
                    mutated = _functions_of(mutated_top)[method_index][1]
                    target = _walk(mutated)[index[id(node)]]
                    parent = _parents(mutated).get(id(target))
                    replacement = transform(target)
                    if replacement is not target:
                        _replace(parent, target, replacement)
                    ast.fix_missing_locations(mutated_top)
                    try:
                        code = ast.unparse(mutated_top)
                    except Exception:  # noqa: BLE001 - a mutation ast cannot write back
                        continue
                    if code in seen:
                        continue
                    seen.add(code)
                    full = (HELPER_SOURCE + "\n\n\n" + code) if operator == "return_const" else code
                    try:
                        compile(full, "<mutant>", "exec")
                    except (SyntaxError, ValueError):
                        continue
                    line = at.lineno - func.lineno + 1
                    k = counts.get(line, 0)
                    counts[line] = k + 1
                    region = _region(operator, func, at, solution)
                    diff = "\n".join(difflib.unified_diff(original.splitlines(), code.splitlines(),
                                                          f"{where} (solution)", f"{where} (mutant)", n=2, lineterm=""))
                    name = f"gen_{where}_{operator}_{line}_{k}"
                    out.append(GeneratedMutant(name, top.name, full, _why(operator, diff), operator, where, line, region,
                                               diff))
    return out


def _region(operator: str, func, at, solution: set[int]) -> str:
    if operator == "ignore_param":     # where the parameter is read
        lines = {n.lineno for n in ast.walk(func) if isinstance(n, ast.Name) and n.id == at.arg
                 and isinstance(n.ctx, ast.Load)}
    else:
        lines = set(range(at.lineno, (getattr(at, "end_lineno", None) or at.lineno) + 1))
    return "solution" if lines & solution else "given"


def _why(operator: str, diff: str) -> str:
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return f"{operator}: {' / '.join(removed)[:120]} -> {' / '.join(added)[:120]}"


def generate(nb, operators=None) -> list[GeneratedMutant]:
    """Every generated mutant of a source notebook's graded functions and classes, in notebook order."""
    from autograder.course import is_answer_code_cell

    out: list[GeneratedMutant] = []
    for cell in nb.cells:
        if is_answer_code_cell(cell):
            out += generate_from_source(cell.source, operators)
    names = [m.name for m in out]
    if len(names) != len(set(names)):
        raise ValueError("generated mutant names are not unique: "
                         + ", ".join(sorted({n for n in names if names.count(n) > 1})[:5]))
    return out


def list_mutants(course, assignments: list[str] | None = None, operators=None):
    """Lines: each generated mutant of ``assignments`` (default: all), with its diff."""
    import nbformat

    for assignment in assignments or course.assignments():
        equivalents, _ = read_equivalents(course.source_dir / assignment / EQUIVALENTS_FILE)
        for source in course.source_notebooks(assignment):
            for m in generate(nbformat.read(str(source), as_version=4), operators):
                note = f"  [equivalent: {equivalents[m.name]}]" if m.name in equivalents else ""
                yield f"{assignment}  {m.name}  ({m.region} code){note}"
                yield "\n".join("    " + line for line in m.diff.splitlines()[2:])


def sample(mutants: list, limit: int | None) -> list:
    """A deterministic sample of ``limit`` mutants (by a hash of their names), in their original order."""
    if limit is None or limit >= len(mutants):
        return list(mutants)
    chosen = set(sorted(range(len(mutants)), key=lambda i: hashlib.sha1(mutants[i].name.encode()).hexdigest())[:limit])
    return [m for i, m in enumerate(mutants) if i in chosen]


def read_equivalents(path: Path) -> tuple[dict[str, str], list[str]]:
    """(name -> why, problems) from an ``equivalent_mutants.txt`` (missing file: nothing)."""
    found, problems = {}, []
    if not path.is_file():
        return found, problems
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, why = line.partition("#")
        name, why = name.strip(), why.strip()
        if not name or " " in name:
            problems.append(f"{path.name}:{number}: expected '<mutant name>  # why it is equivalent'")
        elif not why:
            problems.append(f"{path.name}:{number}: {name} gives no reason why it is equivalent")
        elif name in found:
            problems.append(f"{path.name}:{number}: {name} is listed twice")
        else:
            found[name] = why
    return found, problems


# -- grading --------------------------------------------------------------------------------------------
def grading_env(workers: int) -> dict:
    """What a student process and the grader see: a share of the cores each, no bars, not fast mode."""
    from autograder.grade import usable_cpus

    threads = str(max(1, usable_cpus() // max(1, workers)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
            "COURSE_GPU_SHARE": f"{0.95 / max(1, workers):.3f}", "TQDM_DISABLE": "1", "OMP_WAIT_POLICY": "PASSIVE",
            "MPLBACKEND": "Agg", "COURSE_FAST": "0", "PYTHONWARNINGS": "ignore"}


_WORKER: dict = {}


def _worker_init() -> None:
    """A warm grading process: the libraries imported once, and a zygote for its student processes."""
    started = time.monotonic()
    from autograder import verdict, zygote

    # no sandbox: mutants are the course's own code (see the module's docstring); it imports beside this process
    z = zygote.Zygote(None, dict(os.environ))
    import matplotlib

    matplotlib.use("Agg")
    for name in ("matplotlib.pyplot", "numpy", "torch", "sklearn.datasets", "IPython.core.inputtransformer2",
                 "dlcourse.checks", "dlcourse.remote", "dlcourse.wire"):
        try:
            __import__(name)
        except ImportError:
            pass
    if getattr(z, "ready", True) is False:
        # wait for it here: a fork's first spawn would consume the zygote's one "ready" and its flag would
        # not come back to this process, so the next fork would wait for a "ready" that never comes
        if b"ready" not in z.sock.recv(1 << 16):
            raise RuntimeError("the student-process zygote did not start")
        z.ready = True
    verdict.ZYGOTE, verdict.ZYGOTE_SPEC = z, None
    _WORKER.update(warm_s=round(time.monotonic() - started, 3))


def _grade_job(job: dict) -> dict:
    """In a warm worker: prepare the mutant's folder, grade it in a fork, summarise the verdict."""
    from autograder.preprocessors import _copy_submission
    from autograder.worker import fork_run_job

    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="course-mutant-"))
    work = scratch / job.pop("assignment")
    notebook = job.pop("notebook")
    try:
        release = Path(job.pop("release"))
        _copy_submission(release, release, work)           # the release's other files, as for a submission
        (work / notebook[0]).write_text(notebook[1])
        job["workdir"] = str(work)
        try:
            verdict = fork_run_job(job)
            error = ""
        except Exception as err:  # noqa: BLE001 - reported as this mutant's error
            verdict, error = None, f"{type(err).__name__}: {err}"[:1000]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out = {"error": error, "wall": round(time.monotonic() - started, 3)}
    if verdict is not None:
        tests = verdict.get("tests", {})
        failed = [(gid, t) for gid, t in tests.items() if not t.get("passed")]
        out.update(seconds=verdict.get("seconds", 0.0), tests_run=len(tests), passed=not failed,
                   cell_seconds=verdict.get("cell_seconds", {}), student_gone=verdict.get("student_gone", ""),
                   events=verdict.get("events", [])[:5])
        if failed:
            gid, t = failed[0]
            out.update(killed_by=gid, ename=t.get("ename", ""), message=(t.get("message") or "")[:300])
    return out


def worker_main(results_fd: int) -> int:
    """``python -m autograder.mutate --worker --results FD``: one JSON job a line on stdin, one result a line on FD."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the engine decides when a worker stops
    from autograder import verdict

    verdict.cap_memory()
    _worker_init()
    out = os.fdopen(results_fd, "w", buffering=1)
    out.write(json.dumps({"ready": True, "warm_s": _WORKER["warm_s"]}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = _grade_job(json.loads(line))
        except Exception as err:  # noqa: BLE001 - this job's error; the worker goes on
            reply = {"error": f"{type(err).__name__}: {err}"[:1000], "wall": 0.0}
        out.write(json.dumps(reply) + "\n")
    return 0


class WorkerGone(RuntimeError):
    """A grading worker died or ran past a job's time limit."""


class _Worker:
    """One warm grading process (``worker_main``), fed one job at a time."""

    def __init__(self, env: dict, log_path: Path, timeout: float = 300.0):
        import subprocess

        read_fd, write_fd = os.pipe()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                self.proc = subprocess.Popen([sys.executable, "-m", "autograder.mutate", "--worker", "--results",
                                              str(write_fd)], env={**os.environ, **env}, stdin=subprocess.PIPE,
                                             stdout=log, stderr=log, pass_fds=(write_fd,), start_new_session=True)
            finally:
                os.close(write_fd)
        self.results = os.fdopen(read_fd, "rb")
        self.buffer = b""
        ready = self._read(timeout)
        if not ready.get("ready"):
            raise WorkerGone("the grading worker did not start")
        self.warm_s = ready.get("warm_s")

    def _read(self, timeout: float) -> dict:
        import select

        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerGone(f"the grading worker gave no answer in {timeout:.0f} s")
            ready, _, _ = select.select([self.results], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.results.fileno(), 1 << 16)
                if not chunk:
                    self.kill()
                    raise WorkerGone(f"the grading worker ended (exit code {self.proc.poll()})")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def grade(self, job: dict) -> dict:
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as err:
            self.kill()
            raise WorkerGone(f"the grading worker is gone ({err})") from None
        return self._read(float(job.get("job_timeout", 3600)) + 120)

    def kill(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.kill()
        self.results.close()


@dataclass
class MutantResult:
    name: str
    function: str
    operator: str
    line: int
    region: str
    status: str                 # killed | survived | equivalent | error
    killed_by: str = ""         # the first failing test
    reason: str = ""            # the failure's kind and message; the equivalence reason; the error
    seconds: float = 0.0        # wall time in the worker
    tests_run: int = 0
    diff: str = ""


@dataclass
class AssignmentResult:
    assignment: str
    generated: dict = field(default_factory=dict)    # operator -> how many were generated
    mutants: list = field(default_factory=list)      # MutantResult (as dicts once loaded from JSON)
    seconds: float = 0.0                             # reference and mutants, wall
    reference_seconds: float = 0.0
    generate_seconds: float = 0.0
    free_cells: bool = False
    error: str = ""                                  # the solution fails: nothing graded
    warnings: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    source_hash: str = ""
    machine: str = ""
    finished: str = ""


class Engine:
    """``workers`` warm grading processes, each with a zygote (a context manager)."""

    def __init__(self, workers: int = 2, log_dir: Path | None = None):
        self.workers = max(1, workers)
        self.env = grading_env(self.workers)
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "course-mutate-logs"
        self.idle: list[_Worker] = []
        self.warm: list[float] = []
        self.lock = None

    def __enter__(self):
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.lock = threading.Lock()
        with ThreadPoolExecutor(self.workers) as pool:      # start them side by side
            started = list(pool.map(lambda i: self._start(i), range(self.workers)))
        self.idle = started
        return self

    def _start(self, i: int) -> _Worker:
        worker = _Worker(self.env, self.log_dir / f"mutation-worker-{i}.log")
        self.warm.append(worker.warm_s)
        return worker

    def __exit__(self, *exc):
        for worker in self.idle:
            worker.close()
        self.idle = []
        return False

    def map(self, jobs: list[dict], on_result=None) -> list[dict]:
        """Grade ``jobs`` on the workers; results in the same order (``on_result(i, result)`` as each ends).
        A worker that dies or hangs is replaced; that job is reported as an error."""
        import queue
        import threading

        todo: "queue.Queue[int]" = queue.Queue()
        for i in range(len(jobs)):
            todo.put(i)
        results: list = [None] * len(jobs)
        stop = threading.Event()

        def serve(worker: _Worker) -> None:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    break
                try:
                    results[i] = worker.grade(dict(jobs[i]))
                except WorkerGone as err:
                    results[i] = {"error": str(err), "wall": 0.0}
                    try:
                        worker = self._start(len(self.warm)) if not stop.is_set() else None
                    except Exception:  # noqa: BLE001 - no replacement: the other workers go on
                        worker = None
                    if worker is None:
                        return
                if on_result is not None:
                    with self.lock:
                        on_result(i, results[i])
            with self.lock:
                self.idle.append(worker)

        workers, self.idle = self.idle, []
        threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            stop.set()
            for w in workers:
                w.kill()
            raise
        return [r if r is not None else {"error": "not graded: every grading worker failed", "wall": 0.0}
                for r in results]


def _template(source: Path, release: Path) -> dict:
    """The solution's verdict job (``budgets.reference_job``), without its scratch folder."""
    from autograder.budgets import reference_job

    with tempfile.TemporaryDirectory(prefix="course-mutate-") as tmp:
        return reference_job(source, release, Path(tmp) / source.parent.name)


def _job(template: dict, nb, assignment: str, source: Path, release: Path, free_cells: bool, stop: bool,
         budgets: dict | None = None, job_timeout: float = 3600.0, cell_timeout: float = 600.0, env=None) -> dict:
    """The verdict job grading ``nb`` (the solution with one mutant applied) as a submission."""
    import nbformat

    cells = []
    for c in template["cells"]:
        if c["kind"] == "free" and not free_cells:
            continue
        cells.append({**c, "source": nb.cells[c["index"]].source} if c["kind"] == "answer" else dict(c))
    return {"cells": cells, "answer_names": template["answer_names"], "cell_timeout": cell_timeout,
            "job_timeout": job_timeout, "budgets": budgets or {}, "sandbox": None, "isolation": "0", "hide": [],
            "env": env or {}, "stop_on_failure": stop, "assignment": assignment, "release": str(release),
            "notebook": [source.name, nbformat.writes(nb)]}


def _limits(result: dict) -> tuple[dict, float]:
    """Per-cell and per-notebook limits from the solution's own times, as budgets.limits sets them."""
    from autograder import budgets

    cells = {k: budgets.FACTOR * float(v) + budgets.CELL_SLACK_S for k, v in result.get("cell_seconds", {}).items()
             if not k.isdigit()}
    return cells, budgets.FACTOR * float(result.get("seconds", 0.0)) + budgets.JOB_SLACK_S


def _cell_timeout() -> float:
    return float(os.environ.get("COURSE_CELL_TIMEOUT", "600"))


def grade_assignment(engine: Engine, course, assignment: str, operators=None, limit: int | None = None,
                     all_tests: bool = False, free_cells: bool = False, names: list[str] | None = None,
                     extra: list[Mutant] | None = None, log=print) -> AssignmentResult:
    """Generate, sample and grade one assignment's mutants. ``names``: only these generated mutants;
    ``extra``: hand-made mutants graded alongside (operator "extra")."""
    import nbformat

    from autograder.budgets import machine

    started = time.monotonic()
    result = AssignmentResult(assignment, options={"operators": list(_check_operators(operators)), "limit": limit,
                                                   "all_tests": all_tests, "names": names})
    release = course.release_dir / assignment
    sources = course.source_notebooks(assignment)
    if not sources:
        result.error = "no source notebook"
        return result
    equivalents, problems = read_equivalents(course.source_dir / assignment / EQUIVALENTS_FILE)
    result.warnings += problems
    result.machine = machine()
    result.source_hash = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    every_name: set[str] = set()
    todo: list[tuple[Path, object, list]] = []
    for source in sources:
        nb = nbformat.read(str(source), as_version=4)
        t = time.monotonic()
        generated_all = generate(nb, None)
        every_name.update(m.name for m in generated_all)
        generated = [m for m in generated_all if m.operator in result.options["operators"]]
        result.generate_seconds += time.monotonic() - t
        for m in generated:
            result.generated[m.operator] = result.generated.get(m.operator, 0) + 1
        chosen = [m for m in generated if names is None or m.name in names]
        chosen = sample(chosen, limit) + list(extra or [])
        todo.append((source, nb, chosen))
    unknown = sorted(set(equivalents) - every_name)
    if unknown:
        result.warnings.append(f"{EQUIVALENTS_FILE} names mutants that are not generated: {', '.join(unknown[:10])}")
    total = sum(len(c) for _, _, c in todo)
    log(f"{assignment}: {sum(result.generated.values())} mutants generated, {total} to grade")
    for source, nb, chosen in todo:
        template = _template(source, release)
        t = time.monotonic()
        use_free = free_cells
        reference = engine.map([_job(template, nb, assignment, source, release, use_free, False,
                                     cell_timeout=_cell_timeout(), env=engine.env)])[0]
        if not reference.get("passed") and not use_free:
            log(f"{assignment}: the solution fails without its free cells ({reference.get('killed_by') or reference.get('error')}): "
                "grading with them")
            use_free = True
            reference = engine.map([_job(template, nb, assignment, source, release, use_free, False,
                                         cell_timeout=_cell_timeout(), env=engine.env)])[0]
        result.reference_seconds += time.monotonic() - t
        result.free_cells = result.free_cells or use_free
        if not reference.get("passed"):
            result.error = (f"the solution {source.name} does not pass here: "
                            f"{reference.get('error') or reference.get('killed_by', '')}: {reference.get('message', '')}")[:600]
            log(f"{assignment}: {result.error}")
            continue
        budgets, job_timeout = _limits(reference)
        jobs = [_job(template, apply_mutant(nb, m), assignment, source, release, use_free, not all_tests, budgets,
                     job_timeout, _cell_timeout(), engine.env) for m in chosen]
        done = [0]

        def progress(i, r, n=len(jobs)):
            done[0] += 1
            if done[0] % 25 == 0 or done[0] == n:
                log(f"{assignment}: {done[0]}/{n} graded ({time.monotonic() - started:.0f} s)")

        for m, r in zip(chosen, engine.map(jobs, progress)):
            result.mutants.append(_classify(m, r, equivalents, result.warnings))
    result.seconds = round(time.monotonic() - started, 3)
    result.reference_seconds = round(result.reference_seconds, 3)
    result.generate_seconds = round(result.generate_seconds, 3)
    result.finished = time.strftime("%Y-%m-%d %H:%M:%S")
    return result


def _classify(m: Mutant, r: dict, equivalents: dict, warnings: list) -> MutantResult:
    common = dict(name=m.name, function=getattr(m, "function", m.target), operator=getattr(m, "operator", "extra"),
                  line=getattr(m, "line", 0), region=getattr(m, "region", ""), seconds=r.get("wall", 0.0),
                  tests_run=r.get("tests_run", 0), diff=getattr(m, "diff", ""))
    if r.get("error"):
        return MutantResult(status="error", reason=r["error"], **common)
    if not r.get("passed"):
        if m.name in equivalents:
            warnings.append(f"{m.name} is listed as equivalent but {r.get('killed_by')} kills it: remove it from "
                            f"{EQUIVALENTS_FILE}")
        return MutantResult(status="killed", killed_by=r.get("killed_by", ""),
                            reason=f"{r.get('ename', '')}: {r.get('message', '')}"[:300], **common)
    if m.name in equivalents:
        return MutantResult(status="equivalent", reason=equivalents[m.name], **common)
    return MutantResult(status="survived", **common)


# -- the report ------------------------------------------------------------------------------------------
def _counts(mutants: list[dict]) -> dict:
    c = {"graded": len(mutants)}
    for status in ("killed", "equivalent", "survived", "error"):
        c[status] = sum(1 for m in mutants if m["status"] == status)
    live = c["graded"] - c["equivalent"]
    c["kill_rate"] = c["killed"] / live if live else None
    return c


def summary_rows(data: dict) -> list[dict]:
    """Per assignment and operator (and "all"): generated, graded, killed, equivalent, survived, errors, kill rate."""
    rows = []
    for assignment in sorted(data):
        entry = data[assignment]
        mutants = entry.get("mutants", [])
        operators = [o for o in OPERATORS if entry.get("generated", {}).get(o) or any(m["operator"] == o for m in mutants)]
        operators += sorted({m["operator"] for m in mutants} - set(OPERATORS))
        for operator in operators + ["all"]:
            chosen = [m for m in mutants if operator == "all" or m["operator"] == operator]
            generated = sum(entry.get("generated", {}).values()) if operator == "all" else \
                entry.get("generated", {}).get(operator, 0)
            rows.append({"assignment": assignment, "operator": operator, "generated": generated, **_counts(chosen)})
    return rows


def _rate(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def text_summary(data: dict, assignments: list[str] | None = None) -> str:
    lines = [f"{'assignment':<18} {'generated':>9} {'graded':>6} {'equiv':>5} {'killed':>6} {'survived':>8} "
             f"{'errors':>6} {'kill rate':>9} {'seconds':>8} {'mutants/s':>9}"]
    for assignment in sorted(data):
        if assignments is not None and assignment not in assignments:
            continue
        entry = data[assignment]
        if entry.get("error"):
            lines.append(f"{assignment:<18} {entry['error'][:90]}")
            continue
        c = _counts(entry.get("mutants", []))
        rate = c["graded"] / entry["seconds"] if entry.get("seconds") else 0.0
        lines.append(f"{assignment:<18} {sum(entry.get('generated', {}).values()):>9} {c['graded']:>6} "
                     f"{c['equivalent']:>5} {c['killed']:>6} {c['survived']:>8} {c['error']:>6} "
                     f"{_rate(c['kill_rate']):>9} {entry.get('seconds', 0):>8.0f} {rate:>9.2f}")
    return "\n".join(lines)


def load_report_data(out: Path) -> dict:
    try:
        return json.loads((out / "mutation.json").read_text())
    except (OSError, ValueError):
        return {}


def reclassify(data: dict, source_dir: Path) -> None:
    """Apply the current ``equivalent_mutants.txt`` files to graded mutants, in place (no regrading needed)."""
    import nbformat

    for assignment, entry in data.items():
        path = source_dir / assignment / EQUIVALENTS_FILE
        equivalents, problems = read_equivalents(path)
        warnings = [w for w in entry.get("warnings", []) if EQUIVALENTS_FILE not in w] + problems
        names = {m.name for nb in sorted((source_dir / assignment).glob("*.ipynb"))
                 for m in generate(nbformat.read(str(nb), as_version=4))}
        unknown = sorted(set(equivalents) - names)
        if unknown:
            warnings.append(f"{EQUIVALENTS_FILE} names mutants that are not generated: {', '.join(unknown[:10])}")
        for m in entry.get("mutants", []):
            listed = m["name"] in equivalents
            if m["status"] in ("survived", "equivalent"):
                m["status"], m["reason"] = ("equivalent", equivalents[m["name"]]) if listed else ("survived", "")
            elif m["status"] == "killed" and listed:
                warnings.append(f"{m['name']} is listed as equivalent but {m['killed_by']} kills it: remove it from "
                                f"{EQUIVALENTS_FILE}")
        entry["warnings"] = list(dict.fromkeys(warnings))


def write_report(results: list[AssignmentResult], out: Path, meta: dict | None = None,
                 source_dir: Path | None = None) -> tuple[Path, Path, dict]:
    """Merge ``results`` into ``out/mutation.json``; write the CSVs and the HTML from all it holds. A run of
    named mutants (``--mutant``) updates those in the assignment's entry. With ``source_dir``, the
    equivalent-mutant lists there are applied to every entry."""
    out.mkdir(parents=True, exist_ok=True)
    data = load_report_data(out)
    previous = data.pop("_meta", {})
    for r in results:
        entry = asdict(r)
        entry["mutants"] = [asdict(m) if not isinstance(m, dict) else m for m in r.mutants]
        old = data.get(r.assignment)
        if r.options.get("names") and old and old.get("source_hash") == r.source_hash and not r.error:
            by_name = {m["name"]: m for m in old.get("mutants", [])}
            by_name.update({m["name"]: m for m in entry["mutants"]})
            old["mutants"] = list(by_name.values())
            old["warnings"] = list(dict.fromkeys(old.get("warnings", []) + entry["warnings"]))
            entry = old
        data[r.assignment] = entry
    if source_dir is not None:
        reclassify(data, source_dir)
    tmp = out / f"mutation.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({**data, "_meta": meta if meta is not None else previous}, indent=1, sort_keys=True))
    tmp.replace(out / "mutation.json")
    rows = summary_rows(data)
    csv_path = out / "mutation.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["assignment", "operator", "generated", "graded", "killed", "equivalent", "survived", "errors",
                    "kill_rate"])
        for row in rows:
            w.writerow([row["assignment"], row["operator"], row["generated"], row["graded"], row["killed"],
                        row["equivalent"], row["survived"], row["error"],
                        "" if row["kill_rate"] is None else f"{row['kill_rate']:.3f}"])
    with (out / "mutation_mutants.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["assignment", "name", "function", "operator", "line", "region", "status", "killed_by", "reason",
                    "seconds", "tests_run"])
        for assignment in sorted(data):
            for m in data[assignment].get("mutants", []):
                w.writerow([assignment, m["name"], m["function"], m["operator"], m["line"], m["region"], m["status"],
                            m["killed_by"], m["reason"], m["seconds"], m["tests_run"]])
    html_path = out / "mutation.html"
    html_path.write_text(_html(data, rows))
    return csv_path, html_path, data


def _html(data: dict, rows: list[dict]) -> str:
    e = html.escape
    parts = ["<!doctype html><meta charset=utf-8><title>Mutation testing</title>",
             "<style>body{font-family:sans-serif;max-width:1100px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
             "text-align:right}td:first-child,td:nth-child(2){text-align:left}pre{background:#f6f6f6;padding:6px;"
             "overflow-x:auto}.add{color:#070}.del{color:#a00}.all{font-weight:bold}</style>",
             "<h1>Mutation testing: generated mutants of the solutions</h1>",
             "<p>A mutant is <b>killed</b> when at least one test fails on it; an <b>equivalent</b> mutant (listed in "
             "<code>solutions/&lt;a&gt;/equivalent_mutants.txt</code>) cannot be told from the solution; a "
             "<b>survivor</b> is a change no test notices. Kill rate: killed / (graded &minus; equivalent).</p>",
             "<table><tr><th>assignment</th><th>operator</th><th>generated</th><th>graded</th><th>killed</th>"
             "<th>equivalent</th><th>survived</th><th>errors</th><th>kill rate</th></tr>"]
    for row in rows:
        cls = " class=all" if row["operator"] == "all" else ""
        parts.append(f"<tr{cls}><td>{e(row['assignment'])}</td><td>{e(row['operator'])}</td><td>{row['generated']}</td>"
                     f"<td>{row['graded']}</td><td>{row['killed']}</td><td>{row['equivalent']}</td>"
                     f"<td>{row['survived']}</td><td>{row['error']}</td><td>{e(_rate(row['kill_rate']))}</td></tr>")
    parts.append("</table>")
    for assignment in sorted(data):
        entry = data[assignment]
        mutants = entry.get("mutants", [])
        parts.append(f"<h2>{e(assignment)}</h2><p>{len(mutants)} graded in {entry.get('seconds', 0):.0f} s "
                     f"(solution {entry.get('reference_seconds', 0):.0f} s); options {e(json.dumps(entry.get('options', {})))}"
                     f"{'; free cells run' if entry.get('free_cells') else ''}; {e(entry.get('machine', ''))}; "
                     f"{e(entry.get('finished', ''))}</p>")
        if entry.get("error"):
            parts.append(f"<p><b>Not graded:</b> {e(entry['error'])}</p>")
        for warning in entry.get("warnings", []):
            parts.append(f"<p><b>Warning:</b> {e(warning)}</p>")
        for status, title in (("survived", "Survivors"), ("error", "Errors"), ("equivalent", "Equivalent")):
            chosen = [m for m in mutants if m["status"] == status]
            if not chosen:
                continue
            parts.append(f"<h3>{title} ({len(chosen)})</h3>")
            for operator in sorted({m["operator"] for m in chosen}, key=lambda o: (o not in OPERATORS, o)):
                parts.append(f"<h4>{e(operator)}</h4>")
                for m in (x for x in chosen if x["operator"] == operator):
                    note = f" &mdash; {e(m['reason'])}" if m.get("reason") else ""
                    parts.append(f"<p><code>{e(m['name'])}</code> ({e(m['region'])} code){note}</p>")
                    if status != "equivalent" and m.get("diff"):
                        parts.append("<pre>" + "\n".join(_diff_line(line) for line in m["diff"].splitlines()) + "</pre>")
    return "\n".join(parts) + "\n"


def _diff_line(line: str) -> str:
    text = html.escape(line)
    if line.startswith("+") and not line.startswith("+++"):
        return f"<span class=add>{text}</span>"
    if line.startswith("-") and not line.startswith("---"):
        return f"<span class=del>{text}</span>"
    return text


def run(course, assignments: list[str] | None = None, operators=None, limit: int | None = None, workers: int = 2,
        out: Path | None = None, all_tests: bool = False, free_cells: bool = False, names: list[str] | None = None,
        log=print) -> tuple[list[AssignmentResult], dict]:
    """Grade the mutants of ``assignments`` (default: all) and write the report; returns the results and
    the figures of this run (worker start-up, seconds, mutants per second)."""
    assignments = assignments or course.assignments()
    unknown = [a for a in assignments if a not in course.assignments()]
    if unknown:
        raise ValueError(f"no assignment {', '.join(unknown)} in {course.source_dir}")
    out = Path(out) if out else course.reports_dir
    results: list[AssignmentResult] = []
    started = time.monotonic()
    interrupted = False
    with Engine(workers, out / "logs") as engine:
        try:
            for assignment in assignments:
                results.append(grade_assignment(engine, course, assignment, operators, limit, all_tests, free_cells,
                                                names, log=log))
                write_report(results[-1:], out, None, course.source_dir)     # kept even if a later one fails
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: the assignments finished so far are reported")
        warm = list(engine.warm)
    figures = {"workers": workers, "seconds": round(time.monotonic() - started, 3),
               "worker_start_s": max(warm) if warm else None, "interrupted": interrupted}
    csv_path, html_path, data = write_report([], out, figures, course.source_dir)
    log(text_summary(data, [r.assignment for r in results]))
    graded = [m for r in results for m in r.mutants]
    if graded:
        log(f"{len(graded)} mutants in {figures['seconds']:.0f} s with {workers} worker(s) "
            f"({len(graded) / figures['seconds']:.2f} per second; worker start-up {figures['worker_start_s'] or 0:.1f} s, "
            f"mean {sum(m.seconds for m in graded) / len(graded):.2f} s per mutant in a worker)")
    for r in results:
        for warning in data.get(r.assignment, {}).get("warnings", []):
            log(f"warning: {r.assignment}: {warning}")
    log(f"wrote {csv_path} and {html_path}")
    return results, figures


def rewrite_report(course, out: Path | None = None, log=print) -> int:
    """The report again from ``mutation.json``, with the current equivalent-mutant lists (grades nothing)."""
    out = Path(out) if out else course.reports_dir
    if not (out / "mutation.json").is_file():
        log(f"no {out / 'mutation.json'}: run the mutants first")
        return 1
    csv_path, html_path, data = write_report([], out, None, course.source_dir)
    log(text_summary(data))
    log(f"wrote {csv_path} and {html_path}")
    return 0


if __name__ == "__main__":
    import argparse

    _p = argparse.ArgumentParser(description="a mutation-grading worker (started by the engine)")
    _p.add_argument("--worker", action="store_true", required=True)
    _p.add_argument("--results", type=int, required=True, help="file descriptor for the result lines")
    raise SystemExit(worker_main(_p.parse_args().results))
