"""The student process while grading: runs the submission's cells and answers the grader's requests.

Started inside the sandbox by the grader as ``python -m dlcourse.runner --fd N --control M``: ``N``
is a Unix socket to the grader, ``M`` a pipe on which the grader writes one byte to interrupt the
code that is running (a cell past its time limit). Everything this process says goes through
``dlcourse.wire`` as data, and the grader believes none of it beyond "the student's code returned
this": the tests that judge it run on the other side.

Requests (``op``) and what each answers:

``exec``      run one cell (IPython syntax, magics included); its outputs come back for the notebook
``call``      call a global, a handle or a named library object with data arguments
``getattr``, ``setattr``, ``getitem``, ``setitem``, ``delitem``, ``len``, ``bool``, ``repr``,
``iter``, ``next``, ``contains``, ``enter``, ``exit``
              the same operations on a handle
``globals``   the current values of some global names (data, or handles for everything else)
``bye``       exit

While it serves a request, this process may itself ask the grader to run a *callback* (a function
of the test passed as an argument); the grader may, while running it, send requests back.
Arrays and tensors received as arguments that the student's code changes in place are sent back
after the call, so in-place updates are seen as in one process.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import signal
import socket
import sys
import threading
import traceback
import types

from dlcourse import wire

MAX_OUTPUT_CHARS = 200_000    # text kept per cell here; the grader caps again
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType)


def qualname(cls) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', getattr(cls, '__name__', '?'))}"


def error_info(err: BaseException) -> dict:
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        message = str(err)
    except Exception:  # noqa: BLE001 - a student's exception whose __str__ raises
        message = f"<{type(err).__name__} whose message could not be shown>"
    return {"type": qualname(type(err)), "message": message[:4000], "traceback": text[-8000:]}


class _Capture(io.TextIOBase):
    """A text stream that keeps what is written (up to a cap) as stream outputs of one cell."""

    def __init__(self, name: str, outputs: list | None):
        self.name, self.outputs, self.size = name, outputs, 0

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            text = str(text)
        if self.outputs is not None and self.size < MAX_OUTPUT_CHARS:
            text = text[:MAX_OUTPUT_CHARS - self.size]
            self.size += len(text)
            last = self.outputs[-1] if self.outputs else None
            if last and last.get("output_type") == "stream" and last.get("name") == self.name:
                last["text"] += text
            else:
                self.outputs.append({"output_type": "stream", "name": self.name, "text": text})
        return len(text)

    def flush(self):
        pass


class Runner:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.refs: dict[int, object] = {}
        self.ids: dict[int, int] = {}       # id(obj) -> handle number
        self.next_ref = 1
        self.shell = None
        self.outputs: list | None = None      # the current cell's outputs while it runs
        self.execution_count = 0

    # -- handles ---------------------------------------------------------------------------------
    def handle(self, obj) -> dict:
        """The tagged handle for a value that is not data (kept alive until the grader releases it)."""
        if isinstance(obj, _AsHandle):
            obj = obj.obj
        number = self.ids.get(id(obj))
        if number is None or self.refs.get(number) is not obj:
            number, self.next_ref = self.next_ref, self.next_ref + 1
            self.refs[number] = obj
            self.ids[id(obj)] = number
        is_class = isinstance(obj, type)
        try:
            mro = [qualname(c) for c in (obj.__mro__ if is_class else type(obj).__mro__)][:40]
        except Exception:  # noqa: BLE001
            mro = []
        name = getattr(obj, "__name__", None) if is_class or callable(obj) else None
        kind = "class" if is_class else "function" if isinstance(obj, _FUNCTIONS) else "object"
        return {"$": "ref", "id": number, "kind": kind,
                "mro": mro, "name": name if isinstance(name, str) else None}

    def release(self, numbers) -> None:
        for n in numbers if isinstance(numbers, list) else []:
            obj = self.refs.pop(n, None) if isinstance(n, int) else None
            if obj is not None and self.ids.get(id(obj)) == n:
                del self.ids[id(obj)]

    def resolve(self, tagged: dict, received: list):
        tag = tagged.get("$")
        if tag == "ref":
            try:
                return self.refs[tagged.get("id")]
            except (KeyError, TypeError):
                raise wire.WireError("a handle the grader sent is unknown here") from None
        if tag == "global":
            name = tagged.get("name")
            ns = self.namespace()
            if not isinstance(name, str) or name not in ns:
                raise NameError(f"name {name!r} is not defined")
            return ns[name]
        if tag == "import":
            module, name = tagged.get("module"), tagged.get("qualname")
            if not isinstance(module, str) or not isinstance(name, str):
                raise wire.WireError("malformed named reference")
            obj = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
            return obj
        if tag == "callback":
            return Callback(self, tagged.get("id"))
        raise wire.WireError(f"unknown value tag {tag!r}")

    def namespace(self) -> dict:
        return self.get_shell().user_ns

    # -- values ----------------------------------------------------------------------------------
    def decode(self, value, buffers, received: list | None = None):
        """Decode a value from the grader; ``received`` collects the arrays and tensors in it."""
        dec = wire.Decoder(buffers, refs=lambda tagged: self.resolve(tagged, received), device=_local_device)
        out = dec.decode(value)
        if received is not None:
            _collect_arrays(out, received, 0)
        return out

    def encode(self, value):
        return wire.encode(value, handle=self.handle)

    # -- talking to the grader -------------------------------------------------------------------
    def send(self, message: dict, value=None) -> None:
        """Send ``message`` with ``value`` encoded under "value"; a value that cannot cross is a raise."""
        if message.get("op") != "raise":
            try:
                encoded, buffers = self.encode(value)
                message = {**message, "value": encoded}
            except wire.WireError as err:
                message, buffers = {"op": "raise", "error": {"type": "dlcourse.wire.WireError", "message": str(err),
                                                             "traceback": ""}}, []
        else:
            buffers = []
        wire.send(self.sock, message, buffers)

    def wait_reply(self):
        """Serve the grader's requests until it answers ours (a callback's return or raise)."""
        while True:
            message, buffers = wire.recv(self.sock)
            if message.get("op") in ("return", "raise"):
                return message, buffers
            self.serve_one(message, buffers)

    # -- serving -------------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            try:
                message, buffers = wire.recv(self.sock)
            except (EOFError, OSError):
                return
            if message.get("op") == "bye":
                return
            self.serve_one(message, buffers)

    def serve_one(self, message: dict, buffers) -> None:
        self.release(message.get("release", []))
        op = message.get("op")
        try:
            if op == "exec":
                wire.send(self.sock, {"op": "done", **self.exec_cell(message.get("source"))})
                return
            if op == "globals":
                self.send({"op": "return"}, self.globals(message.get("names")))
                return
            received: list = []
            request = self.decode(message.get("value"), buffers, received)
            if not (isinstance(request, list) and len(request) == 3 and isinstance(request[1], list)
                    and isinstance(request[2], dict) and all(isinstance(k, str) for k in request[2])):
                raise wire.WireError("malformed request")
            obj, args, kwargs = request
            digests = [_digest(a) for a in received]
            with _quiet(), _grad_mode(message.get("grad")):
                value = self.operate(op, obj, message.get("name"), args, kwargs)
            changed = [[i, a] for i, (a, d) in enumerate(zip(received, digests)) if _digest(a) != d]
            self.send({"op": "return"}, [value, changed])
        except KeyboardInterrupt:
            self.send({"op": "raise", "error": {"type": "builtins.KeyboardInterrupt",
                                                "message": "interrupted: the time limit was reached", "traceback": ""}})
        except BaseException as err:  # noqa: BLE001 - everything the student's code raises is reported
            self.send({"op": "raise", "error": error_info(err)})

    def operate(self, op, obj, name, args, kwargs):
        if op == "call":
            return obj(*args, **kwargs)
        if op == "getattr":
            return getattr(obj, _name(name))
        if op == "setattr":
            setattr(obj, _name(name), args[0])
            return None
        if op == "getitem":
            return obj[args[0]]
        if op == "setitem":
            obj[args[0]] = args[1]
            return None
        if op == "delitem":
            del obj[args[0]]
            return None
        if op == "len":
            return len(obj)
        if op == "bool":
            return bool(obj)
        if op == "repr":
            return repr(obj)[:10000]
        if op == "str":
            return str(obj)[:10000]
        if op == "iter":
            return iter(obj)
        if op == "next":
            return next(obj)
        if op == "contains":
            return args[0] in obj
        if op == "enter":
            return type(obj).__enter__(obj)
        if op == "exit":
            type(obj).__exit__(obj, None, None, None)
            return None
        raise wire.WireError(f"unknown request {op!r}")

    def globals(self, names):
        """{name: value} for the names the namespace has: data as data, callables and classes as handles."""
        if not isinstance(names, list):
            raise wire.WireError("malformed globals request")
        ns = self.namespace()
        return {name: _AsHandle(ns[name]) if callable(ns[name]) or isinstance(ns[name], type) else ns[name]
                for name in names if isinstance(name, str) and name in ns}

    # -- cells -----------------------------------------------------------------------------------
    def get_shell(self):
        if self.shell is None:
            self.shell = make_shell(self)
        return self.shell

    def exec_cell(self, source) -> dict:
        if not isinstance(source, str):
            raise wire.WireError("malformed cell")
        shell = self.get_shell()
        self.outputs = outputs = []
        self.execution_count += 1
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Capture("stdout", outputs), _Capture("stderr", outputs)
        error = None
        try:
            result = shell.run_cell(source, store_history=False, silent=False)
            err = result.error_in_exec or result.error_before_exec
            if err is not None:
                error = {"ename": type(err).__name__, "evalue": _safe_str(err)[:4000]}
        except KeyboardInterrupt:
            error = {"ename": "KeyboardInterrupt", "evalue": "interrupted: the time limit was reached"}
        finally:
            sys.stdout, sys.stderr = saved
            self.outputs = None
        return {"ok": error is None, "error": error, "outputs": _jsonable_outputs(outputs)}


class _AsHandle:
    """Send the wrapped object as a handle even where it could be data."""

    def __init__(self, obj):
        self.obj = obj


class Callback:
    """A function of the grader's, called back with data."""

    def __init__(self, runner: Runner, number):
        self.runner, self.number = runner, number

    def __call__(self, *args, **kwargs):
        self.runner.send({"op": "callback", "cb": self.number}, [list(args), kwargs])
        message, buffers = self.runner.wait_reply()
        if message.get("op") == "raise":
            err = message.get("error") or {}
            raise CallbackError(f"{err.get('type', 'Exception')}: {err.get('message', '')}")
        return self.runner.decode(message.get("value"), buffers)

    def __repr__(self):
        return "<a function of the grader>"


class CallbackError(Exception):
    """The grader's function, called from the student's code, raised."""


def _name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise wire.WireError("malformed attribute name")
    return name


def _safe_str(err) -> str:
    try:
        return str(err)
    except Exception:  # noqa: BLE001
        return "<no message>"


def _local_device(name: str):
    torch = sys.modules.get("torch")
    if torch is None or not name.startswith("cuda"):
        return None
    try:
        return torch.device(name) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def _collect_arrays(value, out: list, depth: int) -> None:
    """The arrays and tensors inside a decoded value, in the order the encoder met them."""
    import numpy as np

    if depth > wire.MAX_DEPTH:
        return
    torch = sys.modules.get("torch")
    if isinstance(value, np.ndarray) or (torch is not None and isinstance(value, torch.Tensor)):
        out.append(value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _collect_arrays(v, out, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect_arrays(k, out, depth + 1)
            _collect_arrays(v, out, depth + 1)


def _digest(value) -> bytes:
    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    if isinstance(value, np.ndarray):
        h.update(str((value.dtype.str, value.shape)).encode())
        h.update((value if value.flags.c_contiguous else value.copy(order="C")).tobytes())
        return h.digest()
    h.update(str((str(value.dtype), tuple(value.shape))).encode())
    h.update(wire.tensor_bytes(value))
    return h.digest()


class _quiet:
    """What the student's code prints while a test calls it goes nowhere."""

    def __enter__(self):
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Capture("stdout", None), _Capture("stderr", None)

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved


class _grad_mode:
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        torch = sys.modules.get("torch")
        self.guard = None
        if torch is not None and isinstance(self.enabled, bool):
            self.guard = torch.set_grad_enabled(self.enabled)
            self.guard.__enter__()

    def __exit__(self, *exc):
        if self.guard is not None:
            self.guard.__exit__(*exc)


def _jsonable_outputs(outputs: list) -> list:
    """Outputs as plain dicts of strings (display data that is not text is dropped)."""
    clean = []
    for o in outputs:
        if o.get("output_type") in ("display_data", "execute_result"):
            data = {k: v for k, v in (o.get("data") or {}).items()
                    if isinstance(k, str) and isinstance(v, str)}
            if not data:
                continue
            o = {**o, "data": data, "metadata": {}}
        clean.append(o)
    return clean


def make_shell(runner: Runner):
    """An IPython shell without a terminal or kernel: magics work, displays are captured, no history."""
    from traitlets.config import Config
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            if runner.outputs is not None and isinstance(data, dict):
                runner.outputs.append({"output_type": "display_data", "data": dict(data), "metadata": {}})

        def clear_output(self, wait=False):
            if runner.outputs is not None:
                runner.outputs.clear()

    class Hook(DisplayHook):
        def __call__(self, result=None):
            if result is None or runner.outputs is None:
                return
            try:
                data, _ = self.shell.display_formatter.format(result)
            except Exception:  # noqa: BLE001
                data = {"text/plain": "<unprintable>"}
            runner.outputs.append({"output_type": "execute_result", "data": dict(data), "metadata": {},
                                   "execution_count": runner.execution_count})

    class GradingShell(InteractiveShell):
        def enable_gui(self, gui=None):   # the inline backend needs no event loop
            pass

        def showtraceback(self, exc_tuple=None, filename=None, tb_offset=None, exception_only=False,
                          running_compiled_code=False):
            etype, value, tb = exc_tuple or sys.exc_info()
            if runner.outputs is not None and value is not None:
                lines = traceback.format_exception(etype, value, tb)
                runner.outputs.append({"output_type": "error", "ename": etype.__name__,
                                       "evalue": _safe_str(value)[:4000], "traceback": [l[:4000] for l in lines[-30:]]})

        def showsyntaxerror(self, filename=None, running_compiled_code=False):
            self.showtraceback()

    cfg = Config()
    cfg.HistoryManager.enabled = False
    cfg.HistoryManager.hist_file = ":memory:"
    cfg.InteractiveShell.colors = "nocolor"
    cfg.InteractiveShell.autocall = 0
    shell = GradingShell.instance(config=cfg)
    shell.display_pub = Publisher(shell=shell, parent=shell)
    shell.displayhook = Hook(shell=shell, cache_size=0, parent=shell)
    sys.displayhook = shell.displayhook
    shell.user_ns.setdefault("__name__", "__main__")
    return shell


def _watch_interrupts(fd: int) -> None:
    """Each byte on ``fd`` interrupts the main thread (KeyboardInterrupt in the running code)."""
    main = threading.main_thread().ident
    while True:
        try:
            data = os.read(fd, 1)
        except OSError:
            return
        if not data:
            return
        signal.pthread_kill(main, signal.SIGINT)


def serve(fd: int, control: int | None = None) -> None:
    """Be the student process on socket ``fd`` (and interrupt pipe ``control``) until the grader says bye."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if control is not None:
        threading.Thread(target=_watch_interrupts, args=(control,), daemon=True).start()
    sock = socket.socket(fileno=fd)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())      # as in Jupyter: the notebook's folder is importable
    Runner(sock).serve()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--control", type=int)
    args = p.parse_args(argv)
    serve(args.fd, args.control)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
