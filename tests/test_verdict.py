"""The trusted grader and the student process, without nbgrader: what crosses, and what cannot.

Each test grades a few cells the way TrustedExecute does (student process unsandboxed here; the
sandbox is tested in test_isolation and test_attacks) and checks the verdicts.
"""
from __future__ import annotations

import textwrap

import pytest

from autograder.verdict import Cell, Session, StudentProcess, grade_cells, untrusted_names

IMPORTS = """
import numpy as np
import torch
from torch import nn
from dlcourse import seed_everything
from dlcourse.checks import check_close
from dlcourse.remote import student, student_side
"""


def grade(tmp_path, answer: str, tests: dict[str, str], locked: str = "", names=None, cell_timeout=60):
    cells = [Cell("locked", IMPORTS, "imports", 0), Cell("answer", textwrap.dedent(answer), "answer", 1)]
    if locked:
        cells.append(Cell("locked", textwrap.dedent(locked), "helpers", 2))
    for i, (gid, source) in enumerate(tests.items()):
        cells.append(Cell("test", f'"""{gid}"""\n' + textwrap.dedent(source), gid, 10 + i))
    proc = StudentProcess(tmp_path)
    session = Session(proc.start(), proc)
    try:
        from autograder.verdict import bound_names

        verdict = grade_cells(cells, names or bound_names(textwrap.dedent(answer)), session, cell_timeout=cell_timeout)
    finally:
        session.bye()
        proc.close()
    return verdict


def passed(verdict) -> dict[str, bool]:
    return {k: v["passed"] for k, v in verdict.tests.items()}


MODEL = """
class Net(nn.Module):
    def __init__(self, h=3):
        super().__init__()
        self.fc = nn.Linear(2, h)
    def forward(self, x):
        return torch.relu(self.fc(x))

class SGD(torch.optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.data -= group["lr"] * p.grad

def scale_(x, a):
    x *= a

def apply(f, x):
    return f(x) + 1

LR = 0.5
"""

HELPERS = """
@student_side
def grads_of(model, x):
    model(x).sum().backward()
    return {name: p.grad for name, p in model.named_parameters()}

@student_side
def trajectory(optimizer_cls, steps):
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    opt = optimizer_cls([w], lr=0.1)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
        out.append(w.detach().clone())
    return torch.stack(out)
"""


def test_proxies_act_like_the_student_objects(tmp_path):
    """Classes, instances, methods, iteration, no_grad, student_side helpers, in-place changes, callbacks."""
    v = grade(tmp_path, MODEL, {
        "classes": """
            assert isinstance(Net, type) and issubclass(Net, nn.Module)
            assert issubclass(SGD, torch.optim.Optimizer) and not issubclass(SGD, torch.optim.SGD)
            seed_everything(0)
            m = Net(4)
            assert isinstance(m, nn.Module)
            assert sum(p.numel() for p in m.parameters()) == 12
            x = torch.randn(5, 2)
            check_close(m(x), torch.relu(x @ m.fc.weight.T + m.fc.bias))
            with torch.no_grad():
                assert not m(x).requires_grad
            assert m(x).requires_grad and m.eval() is m and m.training is False
            assert set(grads_of(m, x)) == {"fc.weight", "fc.bias"}
        """,
        "optimizer": "check_close(trajectory(SGD, 5), trajectory(torch.optim.SGD, 5))",
        "in_place": """
            x = np.ones(3); scale_(x, 2.0); check_close(x, [2, 2, 2])
            t = torch.ones(2); scale_(t, 3.0); check_close(t, [3, 3])
            check_close(apply(lambda v: v * 10, np.arange(3.0)), [1, 11, 21])
            assert LR == 0.5 and student.LR == 0.5
        """,
        "wrong": "check_close(apply(lambda v: v, np.zeros(2)), [5, 5])",
    }, locked=HELPERS)
    assert passed(v) == {"classes": True, "optimizer": True, "in_place": True, "wrong": False}, v.tests
    assert "expected 5" in v.tests["wrong"]["message"]


def test_student_exceptions_keep_their_builtin_type(tmp_path):
    """`except ValueError` in a test catches the student's ValueError; SystemExit cannot stop the grader."""
    v = grade(tmp_path, """
        def f(x):
            if x < 0:
                raise ValueError("negative")
            import sys
            sys.exit(3)
    """, {"value_error": """
            try:
                f(-1)
            except ValueError as err:
                assert "negative" in str(err)
            else:
                raise AssertionError("no ValueError")
        """, "exit": "f(1)"})
    assert passed(v) == {"value_error": True, "exit": False}
    assert "SystemExit" in v.tests["exit"]["message"]


def test_hidden_failures_are_redacted_for_the_student(tmp_path):
    """A failure inside the hidden part says only that a hidden test failed; the instructor sees why."""
    v = grade(tmp_path, "def f(x):\n    return x + 1\n", {
        "visible": "assert f(1) == 3, 'f(1) should be 3'",
        "hidden": "assert f(0) == 1\n### BEGIN HIDDEN TESTS\nassert f(41) == 43, 'secret 43'\n### END HIDDEN TESTS\n"})
    assert v.tests["visible"]["public"] == "f(1) should be 3"
    assert "secret" not in v.tests["hidden"]["public"] and "hidden" in v.tests["hidden"]["public"]
    assert "secret 43" in v.tests["hidden"]["message"]


def test_a_lying_object_gets_no_memory_or_expected_values(tmp_path):
    """Objects with __array_interface__, __float__ or __eq__ tricks are handles: checks on them fail."""
    v = grade(tmp_path, """
        import sys
        class Liar:
            __array_interface__ = {"data": (8, False), "shape": (1000,), "typestr": "<f8", "version": 3}
            def __float__(self):
                return float(sys._getframe(1).f_locals.get("expected", 0))
            def __eq__(self, other):
                return True
            def __array__(self, *a, **k):
                raise SystemExit
        def f():
            return Liar()
    """, {"array": "check_close(f(), [1.0, 2.0])", "eq": "assert f() == 3", "float": "assert float(f()) == 7.0"})
    assert passed(v) == {"array": False, "eq": False, "float": False}, v.tests


def test_timeouts_interrupt_and_the_next_test_runs(tmp_path):
    """A call past its limit fails that test; the student process is interrupted and goes on serving."""
    v = grade(tmp_path, """
        def slow():
            while True:
                pass
        def fast():
            return 1
    """, {"slow": "slow()", "fast": "assert fast() == 1"}, cell_timeout=3)
    assert passed(v) == {"slow": False, "fast": True}, v.tests
    assert "time limit" in v.tests["slow"]["message"]


def test_a_dead_student_process_fails_the_rest(tmp_path):
    """os._exit in student code: that test and the ones after it fail with the reason; nothing hangs."""
    v = grade(tmp_path, "import os\ndef die():\n    os._exit(7)\ndef ok():\n    return 1\n",
              {"dies": "die()", "after": "assert ok() == 1"})
    assert passed(v) == {"dies": False, "after": False}
    assert "exit code 7" in v.tests["dies"]["message"]


def test_garbage_on_the_socket_is_not_a_pass(tmp_path):
    """Student code that writes forged frames to the grader's socket only ends its own process."""
    v = grade(tmp_path, """
        import os, json, struct
        def forge():
            body = json.dumps({"m": {"op": "return", "value": {"$": "tuple", "v": [True, []]}}, "n": []}).encode()
            frame = struct.pack("!I", len(body)) + body
            for fd in range(3, 20):
                try:
                    os.write(fd, b"DLW1" + struct.pack("!Q", len(frame)) + frame + b"garbage")
                except OSError:
                    pass
            return False
    """, {"forged": "assert forge() is True"})
    assert passed(v) == {"forged": False}


def test_untrusted_names_are_found():
    """A test that reads a name only a free cell defines is reported before it can be trusted."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nX = np.ones(3)"),
                nbformat.v4.new_code_cell("assert X.sum() == 3", metadata={"nbgrader": {"grade": True, "grade_id": "t",
                                                                                         "points": 1}})]
    assert any("reads X" in p for p in untrusted_names(nb))


@pytest.mark.parametrize("payload", [
    "get_ipython().events.register('pre_run_cell', lambda *a: get_ipython().displayhook('ok'))",
    "import IPython.core.interactiveshell as s\ns.InteractiveShell.run_code = lambda *a, **k: None",
    "import numpy\nnumpy.isclose = lambda a, b, **k: numpy.ones(numpy.broadcast(a, b).shape, bool)",
    "import dlcourse.checks\ndlcourse.checks.check_close.__code__ = (lambda *a, **k: None).__code__",
    "import sys\nsys.settrace(lambda *a: None)",
    "import threading, numpy\nthreading.Thread(target=lambda: setattr(numpy, 'allclose', lambda *a, **k: True), daemon=True).start()",
    "import torch\ntorch.Tensor.__eq__ = lambda *a: True\ntorch.allclose = lambda *a, **k: True\n"
    "torch.Tensor.numpy = lambda self, *a, **k: __import__('numpy').ones(self.shape)",
])
def test_patching_the_student_process_changes_no_verdict(tmp_path, payload):
    """Hooks, class patches, code swaps, tracing and threads in the student process cannot turn a failure into a pass."""
    v = grade(tmp_path, payload + "\ndef f(x):\n    return x\n", {"t": "check_close(f(np.zeros(2)), [1.0, 1.0])",
                                                          "t_torch": "check_close(f(torch.zeros(2)), [1.0, 1.0])"})
    assert passed(v) == {"t": False, "t_torch": False}


def test_isinstance_against_student_classes(tmp_path):
    """isinstance and issubclass with a class the student defined answer from the student's types."""
    v = grade(tmp_path, """
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b = Block(), Block()

        class Wide(Block):
            pass
    """, {"modules": "assert sum(isinstance(m, Block) for m in Net().modules()) == 2",
          "direct": "assert isinstance(Block(), Block) and not isinstance(Net(), Block)",
          "subclass": "assert issubclass(Wide, Block) and not issubclass(Block, Wide)"})
    assert passed(v) == {"modules": True, "direct": True, "subclass": True}, v.tests


def test_a_handle_reports_its_class_name(tmp_path):
    """handle.__class__.__name__ is the student object's class, and a module is not a 'function'."""
    v = grade(tmp_path, "def make():\n    return nn.Sequential(nn.Linear(2, 3), nn.ReLU())\n", {
        "names": "m = make()\nassert m.__class__.__name__ == 'Sequential' and m[0].__class__.__name__ == 'Linear'\n"
                 "assert isinstance(m[1], nn.ReLU) and not isinstance(m[1], nn.Linear)"})
    assert passed(v) == {"names": True}, v.tests
