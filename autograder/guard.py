"""Tamper resistance while autograding: student code must not be able to turn a failing test into a pass.

nbgrader runs a submission's answer cells and the instructor's test cells in one Python process,
and a test cell scores full points when it shows no error. Plain nbgrader therefore gives full
marks to a wrong answer whose cell also does, for example::

    np.isclose = lambda a, b, **kw: np.ones(np.broadcast(a, b).shape, bool)   # every check "passes"
    check_close = lambda *args, **kwargs: None                                # the test helper is gone

``GuardedExecute`` replaces nbgrader's ``Execute`` (see ``nbgrader_config.py``). Around the
notebook's own cells it runs short snippets in the kernel, never stored in the notebook:

* after every locked cell (the instructor's code: imports, helpers, tests) it records the
  functions, classes and modules that cell bound, and a copy of the attributes of the modules the
  tests rely on (``numpy``, ``torch``, ``dlcourse.checks`` ...) the first time each is seen;
* before every test cell it puts all of those back, removes overrides of IPython's traceback
  display and cell runner, resets custom exception handlers and ``sys.stdout``/``sys.stderr``,
  and prints a fresh random token. If the token does not come back, something in the kernel
  intercepted the snippet: the test cell is marked failed ("grading environment tampered").

``assert`` itself cannot be patched (the statement raises the real ``AssertionError`` whatever
``builtins`` says), and nbgrader already fails a cell whose reply status is an error even when
the traceback display was switched off; the mutants in ``solutions/*/mutants.py`` named
``tamper_*`` prove each of these cases loses points.

What this does not stop: code that mutates the instructor's *data* in place, or that walks the
interpreter (``gc``, frames) to find and disable this guard on purpose. Running each submission
as an unprivileged user (``autograder.sandbox``) limits what such code can reach; a human look at
flagged submissions remains the last line.
"""
from __future__ import annotations

import ast
import secrets

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute

#: Modules whose functions tests call; their attributes are restored before every test cell.
WATCHED_MODULES = ("builtins", "math", "numpy", "numpy.testing", "numpy.linalg", "torch", "torch.testing",
                   "torch.nn.functional", "torch.linalg", "dlcourse", "dlcourse.checks", "dlcourse.runtime")

#: IPython shell and kernel methods a cell could override on the instance to hide an error.
SHELL_METHODS = ("showtraceback", "_showtraceback", "showsyntaxerror", "run_cell", "run_cell_async",
                 "run_code", "run_ast_nodes", "should_run_async", "transform_cell", "get_exception_only")
KERNEL_METHODS = ("do_execute", "execute_request", "send_response")

_STATE = """
import sys as _g_sys
if {key!r} not in _g_sys.modules:
    import importlib as _g_importlib
    import types as _g_types
    _g_state = _g_types.ModuleType({key!r})
    _g_state.names, _g_state.modules, _g_state.stdout, _g_state.stderr = {{}}, {{}}, _g_sys.stdout, _g_sys.stderr
    for _g_name in {modules!r}:                 # imported now, before any student code can patch them
        try:
            _g_module = _g_importlib.import_module(_g_name)
            _g_state.modules[_g_name] = (_g_module, dict(vars(_g_module)))
        except Exception:
            pass
    _g_ip = get_ipython()
    _g_state.shell_attrs = set(vars(_g_ip))
    _g_kernel = getattr(_g_ip, "kernel", None)
    _g_state.kernel_attrs = set(vars(_g_kernel)) if _g_kernel is not None else set()
    _g_state.handlers = dict(getattr(_g_kernel, "shell_handlers", None) or {{}})
    _g_sys.modules[{key!r}] = _g_state
    del _g_importlib, _g_types, _g_state, _g_ip, _g_kernel
del _g_sys
"""

_RECORD = """
def _g_record(names):
    import sys, types
    state = sys.modules[{key!r}]
    user = globals()
    for name in names:
        value = user.get(name)
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type)):
            state.names[name] = value
_g_record({names!r})
del _g_record
"""

_RESTORE = """
def _g_restore():
    import sys
    state = sys.modules[{key!r}]
    sys.stdout, sys.stderr = state.stdout, state.stderr
    for module, saved in state.modules.values():
        current = vars(module)
        for attr, value in saved.items():
            if current.get(attr, value) is not value or attr not in current:
                try:
                    setattr(module, attr, value)
                except (AttributeError, TypeError):
                    pass
    globals().update(state.names)
    ip = get_ipython()
    for attr in {shell_methods!r}:
        if attr in vars(ip) and attr not in state.shell_attrs:
            delattr(ip, attr)
    ip.custom_exceptions = ()
    kernel = getattr(ip, "kernel", None)
    if kernel is not None:
        for attr in {kernel_methods!r}:
            if attr in vars(kernel) and attr not in state.kernel_attrs:
                delattr(kernel, attr)
        if state.handlers:
            kernel.shell_handlers.clear()
            kernel.shell_handlers.update(state.handlers)
_g_restore()
del _g_restore
print({token!r})
"""


def bound_names(source: str) -> list[str]:
    """Names a cell binds at top level (def, class, import, assignment), magics ignored."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    names: list[str] = []

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.extend((alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*")
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.extend(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return list(dict.fromkeys(names))


def watched_imports(nb) -> list[str]:
    """The watched modules (and their parents) that any cell of ``nb`` imports, in import order."""
    found = ["builtins"]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse("\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                parts = name.split(".")
                found += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    imported = set(found)
    return [m for m in WATCHED_MODULES if m in imported] + \
        [m for m in WATCHED_MODULES if m not in imported and m.rsplit(".", 1)[0] in imported]


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) if cell.cell_type == "code" else {}


class GuardedExecute(Execute):
    """nbgrader's Execute, plus a restore-and-verify step in the kernel before every test cell."""

    def preprocess(self, nb, resources=None, km=None):
        self._guard_key = f"_course_guard_{secrets.token_hex(8)}"
        self._guard_ready = False
        return super().preprocess(nb, resources, km)

    def _run_snippet(self, source: str, index: int) -> NotebookNode:
        snippet = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[], execution_count=None)
        cell = self.nb.cells[index]
        try:
            return self.execute_cell(snippet, index, store_history=False)
        finally:
            self.nb.cells[index] = cell     # nbclient stores the executed cell at its index

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        meta = _nbgrader(cell)
        if not self._guard_ready:
            self._run_snippet(_STATE.format(key=self._guard_key, modules=watched_imports(self.nb)), index)
            self._guard_ready = True
        tampered = None
        if meta.get("grade") and not meta.get("solution"):
            token = secrets.token_hex(16)
            snippet = self._run_snippet(_RESTORE.format(key=self._guard_key, token=token,
                                                        shell_methods=SHELL_METHODS,
                                                        kernel_methods=KERNEL_METHODS), index)
            printed = "".join(o.get("text", "") for o in snippet.outputs if o.get("output_type") == "stream")
            errors = [o for o in snippet.outputs if o.get("output_type") == "error"]
            if token not in printed or errors:
                tampered = "; ".join(f"{e.get('ename')}: {e.get('evalue')}" for e in errors) or "the check was intercepted"
        cell, resources = super().preprocess_cell(cell, resources, index)
        if tampered:
            self.log.warning("cell %s: grading environment tampered with (%s)", meta.get("grade_id"), tampered)
            cell.outputs.append(NotebookNode(
                output_type="error", ename="GradingEnvironmentTampered",
                evalue="code in this notebook changed the functions the tests rely on; this test cannot be trusted",
                traceback=["GradingEnvironmentTampered: code in this notebook changed the functions the tests "
                           "rely on, so this test scores 0. Remove code that patches numpy, torch, IPython or "
                           "the test helpers."]))
        if not meta.get("solution"):
            self._run_snippet(_RECORD.format(key=self._guard_key, names=bound_names(cell.source)), index)
        return cell, resources


__all__ = ["GuardedExecute", "bound_names", "WATCHED_MODULES"]
