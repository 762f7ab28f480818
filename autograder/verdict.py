"""The trusted half of grading: runs the tests outside the student's process and decides each one.

A submission is graded by two processes that share nothing but a socket:

* the **student process** (``dlcourse.runner``, sandboxed by ``autograder.sandbox``) runs the
  submission's answer and free cells and the instructor's locked cells, and answers requests;
* **this process** runs the instructor's locked cells and test cells. In a test, every name an
  answer cell of the *source* notebook defines is a proxy: calling it sends the arguments to the
  student process as data (``dlcourse.wire``) and brings the result back as data, or as a handle
  for anything that is not data (a model, an optimizer, a class, a generator). The comparisons,
  the expected values and the verdict never leave this process.

A test passes when its code runs to the end here without an exception, within its time limit;
nothing the student process sends can do more than be a value the test then checks. A failure's
message is kept for the instructor; the student's feedback gets it only when the failing line is
outside the test's hidden part.

``grade_cells`` is the whole procedure; ``python -m autograder.verdict JOB.json`` runs it from a
job file (what ``TrustedExecute`` does when it cannot fork a warm worker).
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcourse import remote, wire

GRACE_S = 5.0                 # after an interrupt, how long the student process has to stop
ZYGOTE = None                 # a warm worker's zygote (autograder.zygote.Zygote), for the sandbox ZYGOTE_SPEC names
ZYGOTE_SPEC: str | None = None
OUTPUT_CHARS_PER_CELL = 20_000
OUTPUT_CHARS_PER_SUBMISSION = 200_000
STREAM_LOG_BYTES = 64 * 1024  # what is kept of the student process's raw stdout/stderr
MESSAGE_CHARS = 2_000
CELL_REPLY_BYTES = 16 * 1024 * 1024   # the largest reply to "run this cell" (its outputs) we read
GRADER_MEMORY_MB = int(os.environ.get("COURSE_GRADER_MEMORY_MB", "8192"))   # RLIMIT_DATA of a grading process
HIDDEN_MESSAGE = "a hidden test failed (your instructor sees the details)"

#: library modules whose functions and classes are passed to student code by name (the student
#: process uses its own copy) rather than as a callback; and whose classes stand in for a handle's
#: type in isinstance / issubclass
LIBRARY_PREFIXES = ("builtins", "math", "numpy", "torch", "torchvision", "sklearn", "collections", "functools",
                    "itertools", "operator", "dlcourse", "typing", "abc", "contextlib", "random", "warnings")


# -- errors ----------------------------------------------------------------------------------------
class StudentError(Exception):
    """The student's code raised; ``kind`` is the exception's type as the student process named it."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind.rsplit('.', 1)[-1]}: {message}" if message else kind.rsplit(".", 1)[-1])
        self.kind, self.text = kind, message


class StudentGone(Exception):
    """The student process ended, broke the protocol, or ran past its time and was stopped."""


class CellTimeout(Exception):
    """A cell ran past its time limit."""


_BUILTIN_ERRORS = {name: getattr(builtins, name) for name in dir(builtins)
                   if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), Exception)
                   and name not in ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException",
                                    "BaseExceptionGroup", "ExceptionGroup")}


def _student_exception(err) -> Exception:
    """The exception a test sees when the student's code raised: the same built-in type where there is one
    (so ``except ValueError`` in a test works), a StudentError otherwise."""
    if not isinstance(err, dict):
        return StudentGone("the student process sent a malformed error")
    kind, message = str(err.get("type", "?"))[:200], clean_text(str(err.get("message", "")))[:MESSAGE_CHARS]
    short = kind.rsplit(".", 1)[-1]
    if kind.startswith("builtins.") and short in _BUILTIN_ERRORS:
        exc = _BUILTIN_ERRORS[short](message)
        exc.from_student = True
        return exc
    return StudentError(kind, message)


from autograder.sanitize import clean_text  # noqa: E402  (text from the student side: control characters removed)


# -- proxies ---------------------------------------------------------------------------------------
class _Named:
    """A reference to a name in the student process (sent as such)."""

    def __init__(self, tag: dict):
        self.tag = tag


def _shadow_bases(mro: list) -> tuple:
    """Library classes (of this process) that stand for a handle's type: what isinstance may see."""
    found = []
    for name in mro if isinstance(mro, list) else []:
        if not isinstance(name, str) or not name.startswith(LIBRARY_PREFIXES) or name.startswith("builtins.object"):
            continue
        module, _, qual = name.rpartition(".")
        obj = None
        for split in range(name.count("."), 0, -1):   # the module part may itself contain dots
            parts = name.split(".")
            mod = sys.modules.get(".".join(parts[:split]))
            if mod is None:
                continue
            obj = mod
            for part in parts[split:]:
                obj = getattr(obj, part, None)
            break
        if isinstance(obj, type) and obj is not object and not any(issubclass(k, obj) for k in found):
            found.append(obj)
    return tuple(found)


class RemoteObject:
    """A handle on an object in the student process; operations on it are done there."""

    __slots__ = ("_session", "_id", "_info", "__weakref__")

    def __init__(self, session, number: int, info: dict):
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_id", number)
        object.__setattr__(self, "_info", info)

    def _do(self, op, *args, name=None):
        return self._session.request(op, self, list(args), {}, name=name)

    @property
    def __class__(self):
        return self._session.shadow_class(self._info)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):   # never ask the student side for protocols
            raise AttributeError(name)                          # (__array_interface__ would read our memory)
        return self._do("getattr", name=name)

    def __setattr__(self, name, value):
        self._do("setattr", value, name=name)

    def __call__(self, *args, **kwargs):
        return self._session.request("call", self, list(args), kwargs)

    def __getitem__(self, key):
        return self._do("getitem", key)

    def __setitem__(self, key, value):
        self._do("setitem", key, value)

    def __delitem__(self, key):
        self._do("delitem", key)

    def __len__(self):
        n = self._do("len")
        if type(n) is not int or n < 0:
            raise TypeError("len() of a student object did not give a non-negative int")
        return n

    def __bool__(self):
        return self._do("bool") is True

    def __contains__(self, item):
        return self._do("contains", item) is True

    def __iter__(self):
        it = self._do("iter")
        if not isinstance(it, RemoteObject):
            raise TypeError("iter() of a student object gave data")
        return it

    def __next__(self):
        return self._do("next")

    def __enter__(self):
        return self._do("enter")

    def __exit__(self, *exc):
        self._do("exit")
        return False

    def __repr__(self):
        return f"<{self._info.get('mro', ['?'])[0] if self._info.get('mro') else 'object'} in the student's notebook>"

    def __del__(self):
        try:
            self._session.release(self._id)
        except Exception:  # noqa: BLE001
            pass


class RemoteFunction(RemoteObject):
    """A handle on a function of the student's."""

    __slots__ = ()

    @property
    def __name__(self):
        return self._info.get("name") or "function"

    def __repr__(self):
        return f"<function {self.__name__} in the student's notebook>"


class RemoteClassMeta(type):
    """The type of a class proxy: calling it constructs an instance in the student process."""

    def __call__(cls, *args, **kwargs):
        return cls._remote_session.request("call", cls._remote_handle, list(args), kwargs)

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__") or name.startswith("_remote_"):
            raise AttributeError(name)
        return cls._remote_session.request("getattr", cls._remote_handle, [], {}, name=name)

    def __repr__(cls):
        return f"<class {cls.__name__} in the student's notebook>"

    def _remote_name(cls) -> str | None:
        mro = cls._remote_handle._info.get("mro") or []
        return mro[0] if mro else None

    def __instancecheck__(cls, obj):
        """isinstance(handle, StudentClass): from the type the student process reported for the handle."""
        name = cls._remote_name()
        if isinstance(obj, RemoteObject) and name is not None:
            return name in (obj._info.get("mro") or [])
        return type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, other):
        name = cls._remote_name()
        if isinstance(other, RemoteClassMeta) and name is not None:
            return name in (other._remote_handle._info.get("mro") or [])
        return type.__subclasscheck__(cls, other)


# -- talking to the student process ------------------------------------------------------------------
class Session:
    """The connection to one student process: requests, callbacks, handles, time limits."""

    def __init__(self, sock: socket.socket, process: "StudentProcess | None" = None, trusted_names=None):
        self.sock = sock
        self.process = process
        self.deadline: float | None = None
        self.proxies: "weakref.WeakValueDictionary[int, object]" = weakref.WeakValueDictionary()
        self.classes: dict[int, type] = {}
        self.callbacks: dict[int, object] = {}
        self.next_callback = 1
        self.to_release: list[int] = []
        self.trusted_names = trusted_names if trusted_names is not None else {}  # id(obj) -> locked-cell name
        self.shadows: dict[tuple, type] = {}
        self.keep: list = []
        self.gone: str | None = None
        self.interrupted = False
        self.in_flight = 0            # requests sent and not yet answered

    # -- encoding ------------------------------------------------------------------------------
    def _handle(self, obj) -> dict:
        if isinstance(obj, RemoteObject):
            if obj._session is not self:
                raise wire.WireError("a handle from another submission")
            return {"$": "ref", "id": obj._id}
        if isinstance(obj, RemoteClassMeta):
            return {"$": "ref", "id": obj._remote_handle._id}
        if isinstance(obj, _Named):
            return obj.tag
        name = self.trusted_names.get(id(obj))
        if name is not None:
            return {"$": "global", "name": name}
        named = _library_name(obj)
        if named is not None:
            return {"$": "import", "module": named[0], "qualname": named[1]}
        if callable(obj) and not isinstance(obj, type):
            number, self.next_callback = self.next_callback, self.next_callback + 1
            self.callbacks[number] = obj
            return {"$": "callback", "id": number}
        raise wire.WireError(f"a {type(obj).__module__}.{type(obj).__qualname__} made by the test cannot be given to "
                             "the student's code: build it in the student process (a @student_side helper)")

    def _resolve(self, tagged: dict):
        if tagged.get("$") != "ref":
            raise wire.WireError(f"unknown value tag {tagged.get('$')!r}")
        number = tagged.get("id")
        if type(number) is not int:
            raise wire.WireError("malformed handle")
        proxy = self.proxies.get(number)
        if proxy is not None:
            return proxy
        if number in self.classes:
            return self.classes[number]
        info = {"kind": tagged.get("kind"), "mro": tagged.get("mro") if isinstance(tagged.get("mro"), list) else [],
                "name": tagged.get("name") if isinstance(tagged.get("name"), str) else None}
        if info["kind"] == "class":
            return self._class_proxy(number, info)
        proxy = (RemoteFunction if info["kind"] == "function" else RemoteObject)(self, number, info)
        self.proxies[number] = proxy
        return proxy

    def _class_proxy(self, number: int, info: dict) -> type:
        handle = RemoteObject(self, number, info)
        bases = _shadow_bases(info["mro"][1:])
        name = info["name"] if info["name"] and info["name"].isidentifier() else "StudentClass"
        for attempt in (bases, bases[:1], ()):
            metas = [type(b) for b in attempt if type(b) is not type]
            meta = RemoteClassMeta if not metas else type("RemoteClassMeta", (RemoteClassMeta, *dict.fromkeys(metas)), {})
            try:
                cls = meta(name, attempt, {"_remote_session": self, "_remote_handle": handle, "__module__": "student",
                                           "__slots__": ()} if not attempt else
                           {"_remote_session": self, "_remote_handle": handle, "__module__": "student"})
                break
            except Exception:  # noqa: BLE001 - an odd base: fall back to fewer
                continue
        self.classes[number] = cls
        return cls

    def shadow_class(self, info: dict) -> type:
        key = tuple(info.get("mro") or ())
        cls = self.shadows.get(key)
        if cls is None:
            bases = _shadow_bases(list(key))
            name = key[0].rsplit(".", 1)[-1] if key and key[0].rsplit(".", 1)[-1].isidentifier() else "StudentObject"
            try:   # named as the student's class: handle.__class__.__name__ reads like the real thing
                cls = type(name, bases, {"__module__": "student"}) if bases else \
                    type(name, (RemoteObject,), {"__module__": "student", "__slots__": ()})
            except Exception:  # noqa: BLE001
                cls = RemoteObject
            self.shadows[key] = cls
        return cls

    def release(self, number: int) -> None:
        if self.gone is None:
            self.to_release.append(number)

    # -- messages ------------------------------------------------------------------------------
    def _send(self, message: dict, value=None, has_value=True) -> list:
        """Send one message; returns the arrays and tensors it carried (in encoding order)."""
        buffers, sent = [], []
        if has_value:
            enc = _TrackingEncoder(self._handle, sent)
            message = {**message, "value": enc.encode(value)}
            buffers = enc.buffers
        if self.to_release:
            message["release"], self.to_release = self.to_release, []
        try:
            wire.send(self.sock, message, buffers)
        except OSError as err:
            self._gone(f"the student process is not answering ({err})")
        return sent

    def _gone(self, why: str):
        if self.gone is None:
            self.gone = why
            if self.process is not None:
                self.process.kill()
        raise StudentGone(self.gone)

    def _recv(self, max_message: int | None = None):
        if self.gone is not None:
            raise StudentGone(self.gone)
        while True:
            timeout = None if self.deadline is None else self.deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                if not self.interrupted and self.process is not None:
                    self.interrupted = True
                    self.process.interrupt()
                    self.deadline = time.monotonic() + GRACE_S
                    continue
                self._gone("the time limit was reached and the student process did not stop")
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if ready:
                break
        try:
            return wire.recv(self.sock, max_message)
        except EOFError:
            why = self.process.ended() if self.process is not None else ""
            self._gone(f"the student process ended{': ' + why if why else ''}")
        except (wire.WireError, OSError) as err:
            self._gone(f"the student process broke the protocol ({err})")

    def _decode(self, value, buffers):
        try:
            return wire.decode(value, buffers, refs=self._resolve, device=_trusted_device)
        except wire.WireError as err:
            self._gone(f"the student process sent a malformed value ({err})")

    def _wait_result(self, sent: list):
        """Serve callbacks until the student process answers; apply its in-place changes to ``sent``."""
        while True:
            message, buffers = self._recv()
            op = message.get("op")
            if op == "return":
                value = self._decode(message.get("value"), buffers)
                return value
            if op == "raise":
                error = _student_exception(message.get("error"))
                if isinstance(error, StudentError) and error.kind == "builtins.KeyboardInterrupt" and self.interrupted:
                    raise CellTimeout("the time limit was reached") from None
                raise error
            if op == "callback":
                self._run_callback(message, buffers)
                continue
            self._gone(f"the student process sent an unexpected {str(op)[:40]!r} message")

    def _run_callback(self, message, buffers) -> None:
        request = self._decode(message.get("value"), buffers)
        fn = self.callbacks.get(message.get("cb"))
        if fn is None or not (isinstance(request, list) and len(request) == 2 and isinstance(request[0], list)
                              and isinstance(request[1], dict) and all(isinstance(k, str) for k in request[1])):
            self._gone("the student process called back a function it was never given")
        try:
            result = fn(*request[0], **request[1])
        except (StudentGone, CellTimeout, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 - the test's own function raised: the student's code sees that
            self._send({"op": "raise", "error": {"type": f"{type(err).__module__}.{type(err).__name__}",
                                                 "message": str(err)[:1000]}}, has_value=False)
            return
        try:
            self._send({"op": "return"}, result)
        except wire.WireError as err:
            self._send({"op": "raise", "error": {"type": "dlcourse.wire.WireError", "message": str(err)}}, has_value=False)

    # -- what tests and proxies call -------------------------------------------------------------
    def request(self, op: str, obj, args: list, kwargs: dict, name: str | None = None):
        message = {"op": op}
        if name is not None:
            message["name"] = name
        torch = sys.modules.get("torch")
        if torch is not None:
            message["grad"] = bool(torch.is_grad_enabled())
        self.in_flight += 1
        try:
            sent = self._send(message, [obj, list(args), dict(kwargs)])
            result = self._wait_result(sent)
        finally:
            self.in_flight -= 1
        if not (isinstance(result, list) and len(result) == 2 and isinstance(result[1], list)):
            self._gone("the student process sent a malformed reply")
        value, changes = result
        _write_back(sent, changes)
        return value

    def call_global(self, name: str, args, kwargs):
        return self.request("call", _Named({"$": "global", "name": name}), list(args), dict(kwargs))

    def call_import(self, module: str, qualname: str, args, kwargs):
        return self.request("call", _Named({"$": "import", "module": module, "qualname": qualname}),
                            list(args), dict(kwargs))

    def globals(self, names: list[str]) -> dict:
        self._send({"op": "globals", "names": list(names)}, has_value=False)
        value = self._wait_result([])
        if not isinstance(value, dict):
            self._gone("the student process sent a malformed reply")
        return {k: v for k, v in value.items() if isinstance(k, str) and k in names}

    def global_value(self, name: str):
        found = self.globals([name])
        if name not in found:
            raise AttributeError(f"the student's notebook defines no {name!r}")
        return found[name]

    def exec_cell(self, source: str) -> dict:
        """Run one cell in the student process; returns {"ok", "error", "outputs"} (outputs unchecked)."""
        self._send({"op": "exec", "source": source}, has_value=False)
        message, _ = self._recv(CELL_REPLY_BYTES)
        if message.get("op") == "raise":
            error = message.get("error") if isinstance(message.get("error"), dict) else {}
            return {"ok": False, "error": {"ename": "Error", "evalue": str(error.get("message", ""))[:MESSAGE_CHARS]},
                    "outputs": []}
        if message.get("op") != "done":
            self._gone("the student process sent a malformed reply to a cell")
        return {"ok": message.get("ok") is True, "error": message.get("error"),
                "outputs": message.get("outputs")}

    def bye(self) -> None:
        if self.gone is None:
            with contextlib.suppress(Exception):
                wire.send(self.sock, {"op": "bye"})


class _TrackingEncoder(wire.Encoder):
    """An encoder that also lists the arrays and tensors it sends, for writing back in-place changes."""

    def __init__(self, handle, sent: list):
        super().__init__(handle)
        self.sent = sent

    def encode(self, value, depth=0):
        import numpy as np

        torch = sys.modules.get("torch")
        if isinstance(value, np.ndarray) or (torch is not None and isinstance(value, torch.Tensor)):
            self.sent.append(value)
        return super().encode(value, depth)


def _write_back(sent: list, changes: list) -> None:
    """Copy the student side's in-place changes of our arrays and tensors into them."""
    import numpy as np

    for change in changes:
        if not (isinstance(change, list) and len(change) == 2 and type(change[0]) is int and 0 <= change[0] < len(sent)):
            continue
        original, new = sent[change[0]], change[1]
        try:
            if isinstance(original, np.ndarray) and isinstance(new, np.ndarray):
                if original.shape == new.shape and original.flags.writeable:
                    np.copyto(original, new, casting="unsafe")
            else:
                import torch

                if isinstance(new, torch.Tensor) and original.shape == new.shape:
                    with torch.no_grad():
                        original.copy_(new.to(original.device))
        except Exception:  # noqa: BLE001 - an odd change is not applied; the test then sees the old value
            pass


def _library_name(obj):
    """(module, qualname) when ``obj`` is a function or class of a library module, else None."""
    if isinstance(obj, (RemoteObject, RemoteClassMeta)):
        return None
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    import numpy as np

    if isinstance(obj, np.ufunc):
        module, qual = "numpy", obj.__name__
    if not isinstance(qual, str) or "<" in qual:
        return None
    if isinstance(module, str) and module.split(".")[0] in {p.split(".")[0] for p in LIBRARY_PREFIXES}:
        target = sys.modules.get(module)
        for part in qual.split("."):
            target = getattr(target, part, None)
        if target is obj:
            return module, qual
    short = qual.rsplit(".", 1)[-1]   # torch.relu's __qualname__ is "_VariableFunctionsClass.relu"
    for alias in ("torch", "torch.nn.functional", "torch.special", "torch.linalg", "numpy", "math"):
        if getattr(sys.modules.get(alias), short, None) is obj:
            return alias, short
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch.Tensor, short, None) is obj:
        return "torch", f"Tensor.{short}"
    return None


def _trusted_device(name: str):
    torch = sys.modules.get("torch")
    if torch is None or not name.startswith("cuda"):
        return None
    return torch.device(name) if torch.cuda.is_available() else None


# -- the student process -------------------------------------------------------------------------
class StudentProcess:
    """The student process for one notebook, in ``workdir`` (a scratch copy of the submission).

    Started as ``python -m dlcourse.runner`` (sandboxed when a sandbox is given), or, when a
    ``zygote`` is given, forked from it with the libraries already imported (``autograder.zygote``).
    """

    def __init__(self, workdir: Path, sandbox=None, env: dict | None = None, python: str | None = None, zygote=None):
        self.workdir = Path(workdir)
        self.sandbox = sandbox
        self.env = env or {}
        self.python = python or sys.executable
        self.zygote = zygote
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.status_r: int | None = None
        self.streams = {"stdout": bytearray(), "stderr": bytearray()}
        self.stream_bytes = {"stdout": 0, "stderr": 0}
        self.job = None
        self.limit_events: list[str] = []

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_DB", "PG"))}
        env.update(self.env, PYTHONUNBUFFERED="1", NBGRADER_EXECUTION="autograde")
        return env

    def start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        control_r, self.control_w = os.pipe()
        if self.zygote is not None:
            return self._start_from_zygote(ours, theirs, control_r)
        command = [self.python, "-m", "dlcourse.runner", "--fd", str(theirs.fileno()), "--control", str(control_r)]
        env = self._env()
        cwd, preexec = str(self.workdir), None
        if self.sandbox is not None:
            self.job, command, env, preexec = self.sandbox.wrap(command, self.workdir, env)
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=(theirs.fileno(), control_r),
                                     start_new_session=True, preexec_fn=preexec)
        self.pid = self.proc.pid
        theirs.close()
        os.close(control_r)
        for name in ("stdout", "stderr"):
            threading.Thread(target=self._drain, args=(name, getattr(self.proc, name)), daemon=True).start()
        return ours

    def _start_from_zygote(self, ours, theirs, control_r) -> socket.socket:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.status_r, status_w = os.pipe()
        self.job = self.sandbox.new_job() if self.sandbox is not None else "zygote"
        env = {k: v for k, v in self.env.items()}
        env.update(PYTHONUNBUFFERED="1", NBGRADER_EXECUTION="autograde")
        try:
            self.pid = self.zygote.spawn(str(self.workdir), env, self.job,
                                         [theirs.fileno(), control_r, out_w, err_w, status_w])
        finally:
            theirs.close()
            for fd in (control_r, out_w, err_w, status_w):
                os.close(fd)
        for name, fd in (("stdout", out_r), ("stderr", err_r)):
            threading.Thread(target=self._drain, args=(name, os.fdopen(fd, "rb")), daemon=True).start()
        return ours

    def _drain(self, name: str, pipe) -> None:
        """Keep the first STREAM_LOG_BYTES of a raw output stream, count and drop the rest."""
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            if not chunk:
                return
            self.stream_bytes[name] += len(chunk)
            room = STREAM_LOG_BYTES - len(self.streams[name])
            if room > 0:
                self.streams[name] += chunk[:room]

    def log_text(self) -> str:
        parts = []
        for name in ("stdout", "stderr"):
            text = clean_text(self.streams[name].decode("utf-8", errors="replace"))
            extra = self.stream_bytes[name] - len(self.streams[name])
            if text or extra:
                parts.append(f"--- student process {name} ---\n{text}" + (f"\n[{extra} more bytes dropped]" if extra > 0 else ""))
        return "\n".join(parts)

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.control_w, b"i")

    def _status(self, timeout: float = 2.0) -> int | None:
        if self.proc is not None:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        if self.status_r is None:
            return None
        ready, _, _ = select.select([self.status_r], [], [], timeout)
        if not ready:
            return None
        data = os.read(self.status_r, 4)
        if len(data) != 4:
            return None
        status = int.from_bytes(data, "big", signed=True)
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def ended(self) -> str:
        code = self._status()
        if code is None:
            return ""
        if code < 0:
            return f"killed by signal {-code}" + (" (memory limit?)" if -code == signal.SIGKILL else "")
        return f"exit code {code}"

    def kill(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.kill()

    def close(self) -> None:
        self.kill()
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self.control_w)
        if self.status_r is not None:
            with contextlib.suppress(OSError):
                os.close(self.status_r)
        if self.sandbox is not None and self.job is not None:
            self.limit_events = self.sandbox.finish(self.job)


# -- a notebook, cell by cell ------------------------------------------------------------------------
@dataclass
class Cell:
    kind: str                  # answer | free | locked | test
    source: str
    grade_id: str = ""
    index: int = -1            # position in the notebook being graded


@dataclass
class TestResult:
    grade_id: str
    passed: bool
    hidden: bool = False       # the failure happened in the hidden part
    ename: str = ""
    message: str = ""          # for the instructor
    public: str = ""           # for the student's feedback
    seconds: float = 0.0
    stdout: str = ""


@dataclass
class Verdict:
    tests: dict = field(default_factory=dict)      # grade_id -> TestResult (as dicts in JSON)
    outputs: dict = field(default_factory=dict)    # cell index -> outputs of the student process
    events: list = field(default_factory=list)
    log: str = ""
    seconds: float = 0.0
    student_gone: str = ""
    cell_seconds: dict = field(default_factory=dict)  # "index" or grade_id -> seconds (student side + grader)


def bound_names(source: str) -> list[str]:
    """Names a cell binds at top level (def, class, import, assignment), magics ignored."""
    try:
        tree = ast.parse(_python_source(source))
    except SyntaxError:
        return []
    names: list[str] = []

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.extend((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.extend(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for name in ("body", "orelse", "finalbody"):
                    visit(getattr(node, name, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return list(dict.fromkeys(names))


def _python_source(source: str) -> str:
    """IPython syntax (magics, shell escapes) as plain Python."""
    if "%" not in source and "!" not in source:
        return source
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


GRADER_NAMES = {"student", "get_ipython", "display", "__name__", "__builtins__", "__file__"}


def _names_used_and_bound(source: str) -> tuple[set[str], set[str]]:
    """(names a cell reads anywhere, names it binds anywhere), scopes flattened."""
    tree = ast.parse(_python_source(source))
    used, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    return used, bound


def untrusted_names(nb) -> list[str]:
    """Problems: names that a locked or test cell reads but that only free cells (student-side) define."""
    kinds = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or cell.get("metadata", {}).get("dlcourse"):
            continue
        kind = "answer" if meta.get("solution") else "test" if meta.get("grade") else "locked" if meta.get("locked") \
            else "free"
        kinds.append((kind, cell))
    answer = {n for kind, c in kinds if kind == "answer" for n in bound_names(c.source)}
    trusted = set(dir(builtins)) | GRADER_NAMES | answer
    problems, last_free = [], set()     # names whose latest definition, in notebook order, is a free cell's
    for kind, cell in kinds:
        if kind == "free":
            last_free |= set(bound_names(cell.source))
            continue
        if kind not in ("locked", "test"):
            continue
        try:
            used, bound = _names_used_and_bound(cell.source)
        except SyntaxError as err:
            problems.append(f"{cell.metadata.nbgrader.get('grade_id')}: syntax error ({err})")
            continue
        missing = sorted(used - bound - trusted)
        if missing:
            problems.append(f"{cell.metadata.nbgrader.get('grade_id')} reads {', '.join(missing)}, which only a "
                            "free cell defines: the grader never runs free cells (define it in a locked cell)")
        shadowed = sorted((used - bound) & last_free & trusted - answer)
        if shadowed:
            problems.append(f"{cell.metadata.nbgrader.get('grade_id')} reads {', '.join(shadowed)}, which a free cell "
                            "redefined since: the grader sees the earlier value (use student.NAME for the student's)")
        trusted |= set(bound_names(cell.source))
        last_free -= set(bound_names(cell.source))
    return problems


def hidden_lines(source: str) -> set[int]:
    """Line numbers (1-based) between ### BEGIN HIDDEN TESTS and ### END HIDDEN TESTS."""
    lines, inside, out = source.splitlines(), False, set()
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("### BEGIN HIDDEN TESTS"):
            inside = True
        elif text.startswith("### END HIDDEN TESTS"):
            inside = False
        elif inside:
            out.add(number)
    return out


class _NoShell:
    """``get_ipython()`` in the grader: magics in locked cells (``%matplotlib inline``) do nothing here."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = system = getoutput = run_line_magic


class _TestTimeout(BaseException):
    """Raised in the grader's own code when a test runs past its time (not catchable as Exception)."""


def _failure_line(tb, filename: str) -> int | None:
    """The line of the test cell (the outermost frame in it) where an exception went through."""
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == filename:
            return lineno
    return None


def grade_cells(cells: list[Cell], answer_names: list[str], session: Session, cell_timeout: float = 600.0,
                deadline: float | None = None, budgets: dict | None = None, stop_on_failure: bool = False) -> Verdict:
    """Run ``cells`` in order: student-side cells in the student process, locked cells on both sides,
    tests here with the answer names as proxies. Returns every test's result and every cell's outputs.

    ``stop_on_failure`` ends the run at the first failing test (the later tests are not in the verdict):
    for the mutation engine (``autograder.mutate``), which only needs to know whether any test fails."""
    verdict = Verdict()
    started = time.monotonic()
    import matplotlib

    matplotlib.use("Agg", force=True)
    ns: dict = {"__name__": "__grader__", "__builtins__": builtins, "get_ipython": lambda: _NoShell(),
                "display": lambda *a, **k: None}
    output_budget = [OUTPUT_CHARS_PER_SUBMISSION]
    budgets = budgets or {}

    def limit_for(cell: Cell) -> float:
        limit = min(float(budgets.get(cell.grade_id, cell_timeout)), cell_timeout)
        if deadline is not None:
            limit = min(limit, max(0.0, deadline - time.monotonic()))
        return limit

    for cell in cells:
        cell_start = time.monotonic()
        if cell.kind in ("answer", "free", "locked") and session.gone is None:
            session.deadline, session.interrupted = time.monotonic() + limit_for(cell), False
            try:
                reply = session.exec_cell(cell.source)
                verdict.outputs[cell.index] = _checked_outputs(reply.get("outputs"), output_budget)
                if reply.get("error") and session.interrupted:
                    verdict.events.append(f"cell {cell.index} ran past its time limit and was interrupted")
            except StudentGone as err:
                verdict.student_gone = str(err)
                verdict.events.append(f"cell {cell.index}: {err}")
            finally:
                session.deadline = None
        if cell.kind == "locked":
            _run_trusted(cell, ns, session, limit_for(cell), verdict)
            _remember_names(cell.source, ns, session)
        elif cell.kind == "test":
            verdict.tests[cell.grade_id] = asdict(_run_test(cell, ns, answer_names, session, limit_for(cell)))
        verdict.cell_seconds[cell.grade_id or str(cell.index)] = round(time.monotonic() - cell_start, 3)
        if stop_on_failure and cell.kind == "test" and not verdict.tests[cell.grade_id]["passed"]:
            break
    verdict.seconds = round(time.monotonic() - started, 3)
    return verdict


def _remember_names(source: str, ns: dict, session: Session) -> None:
    """Functions and classes a locked cell defined are passed to student code by name (the student
    process has its own copy of the cell)."""
    for name in bound_names(source):
        value = ns.get(name)
        if callable(value) and not isinstance(value, (RemoteObject, RemoteClassMeta)):
            session.trusted_names[id(value)] = name
            session.keep.append(value)        # alive, so that its id names nothing else


@contextlib.contextmanager
def _time_limit(seconds: float):
    def expire(signum, frame):
        raise _TestTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_trusted(cell: Cell, ns: dict, session: Session, limit: float, verdict: Verdict) -> None:
    """A locked cell in the grader (its errors are logged; the tests after it will show them)."""
    try:
        code = compile(_python_source(cell.source), f"<locked {cell.grade_id}>", "exec")
        with _session_active(session), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()), _time_limit(limit + GRACE_S):
            session.deadline, session.interrupted = time.monotonic() + limit, False
            exec(code, ns)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001
        verdict.events.append(f"locked cell {cell.grade_id} failed in the grader: {type(err).__name__}: "
                              f"{clean_text(str(err))[:300]}")
    finally:
        session.deadline = None


@contextlib.contextmanager
def _session_active(session: Session):
    previous = remote._session
    remote._session = session
    try:
        yield
    finally:
        remote._session = previous


def _run_test(cell: Cell, ns: dict, answer_names: list[str], session: Session, limit: float) -> TestResult:
    result = TestResult(cell.grade_id, passed=False)
    filename = f"<test {cell.grade_id}>"
    hidden = hidden_lines(cell.source)
    out = io.StringIO()
    start = time.monotonic()
    try:
        if session.gone is not None:
            raise StudentGone(session.gone)
        code = compile(_python_source(cell.source), filename, "exec")
        session.deadline, session.interrupted = time.monotonic() + limit, False
        with _session_active(session), contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), \
                _time_limit(limit + 2 * GRACE_S):
            for name in answer_names:
                ns.pop(name, None)
            ns.update(session.globals(answer_names))
            exec(code, ns)
        result.passed = True
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 - every way a test can fail
        line = _failure_line(err.__traceback__, filename)
        result.hidden = bool(line in hidden) if line is not None else bool(hidden)
        if isinstance(err, (_TestTimeout, CellTimeout)):
            result.ename, text = "Timeout", f"the test ran past its time limit of {limit:.0f} s"
            if isinstance(err, _TestTimeout) and session.in_flight:   # stopped mid-conversation: start over is
                session.in_flight = 0                                   # impossible, so the process goes
                with contextlib.suppress(StudentGone):
                    session._gone("the time limit was reached")
        elif isinstance(err, StudentGone):
            result.ename, text = "StudentProcessEnded", str(err)
            result.hidden = False
        elif getattr(err, "from_student", False) or isinstance(err, StudentError):
            kind = err.kind.rsplit(".", 1)[-1] if isinstance(err, StudentError) else type(err).__name__
            detail = err.text if isinstance(err, StudentError) else clean_text(str(err))
            result.ename = kind
            if kind == "NotImplementedError" and not detail:
                text = "a function this test calls is not written yet"
            else:
                text = f"your code raised {kind}" + (f": {detail}" if detail else "")
        else:
            result.ename, text = type(err).__name__, clean_text(str(err))
        where = f" (line {line} of the test)" if line else ""
        result.message = text[:MESSAGE_CHARS] + where
        result.public = HIDDEN_MESSAGE if result.hidden else text[:MESSAGE_CHARS]
    finally:
        session.deadline = None
    result.seconds = round(time.monotonic() - start, 3)
    result.stdout = clean_text(out.getvalue())[:OUTPUT_CHARS_PER_CELL]
    return result


def _checked_outputs(outputs, budget: list) -> list:
    """The student process's outputs of one cell, as valid nbformat outputs of plain strings, capped."""
    clean = []
    room = min(OUTPUT_CHARS_PER_CELL, budget[0])
    if not isinstance(outputs, list):
        return clean
    for o in outputs[:200]:
        if not isinstance(o, dict) or room <= 0:
            continue
        kind = o.get("output_type")
        if kind == "stream" and o.get("name") in ("stdout", "stderr") and isinstance(o.get("text"), str):
            text = clean_text(o["text"])[:room]
            clean.append({"output_type": "stream", "name": o["name"], "text": text})
            room -= len(text)
        elif kind in ("display_data", "execute_result") and isinstance(o.get("data"), dict):
            data = {k: v for k, v in o["data"].items() if isinstance(k, str) and isinstance(v, str) and len(k) < 100}
            size = sum(len(v) for v in data.values())
            if not data or size > max(room, 2_000_000 if "image/png" in data else 0):
                continue
            entry = {"output_type": kind, "data": data, "metadata": {}}
            if kind == "execute_result":
                entry["execution_count"] = None
            clean.append(entry)
            room -= min(size, room) if "image/png" not in data else 0
        elif kind == "error":
            tb = o.get("traceback") if isinstance(o.get("traceback"), list) else []
            clean.append({"output_type": "error", "ename": clean_text(str(o.get("ename", "")))[:200],
                          "evalue": clean_text(str(o.get("evalue", "")))[:MESSAGE_CHARS],
                          "traceback": [clean_text(str(t))[:2000] for t in tb[:40]]})
    budget[0] -= OUTPUT_CHARS_PER_CELL if clean else 0
    return clean


# -- a job from a file (TrustedExecute without a warm worker) ---------------------------------------------
def run_job(job: dict) -> dict:
    """Grade one notebook as ``job`` describes it; returns the Verdict as a dict.

    ``job["sandbox"]`` names a sandbox the grading run opened (``Sandbox.spec()``); without one,
    this process opens its own unless ``job["isolation"]`` is "0" (and fails when it is "1" and
    none can be had). ``job["stop_on_failure"]`` (default off) stops at the first failing test.
    """
    from autograder import sandbox as sb

    cells = [Cell(**c) for c in job["cells"]]
    owned, events = None, []
    if job.get("sandbox"):
        sandbox = sb.Sandbox.from_spec(job["sandbox"])
    elif str(job.get("isolation", "")).lower() in ("0", "false", "no", "off"):
        sandbox = None
        events.append("student code ran NOT isolated (isolation turned off)")
    else:
        sandbox, text = sb.open_sandbox(job.get("hide", []))
        owned = sandbox
        if sandbox is None:
            if str(job.get("isolation", "")).lower() in ("1", "true", "yes", "on"):
                raise RuntimeError(f"grading isolation was required but is unavailable: {text}")
            events.append(f"student code ran NOT isolated ({text})")
    zygote = ZYGOTE if ZYGOTE is not None and ZYGOTE_SPEC == (job.get("sandbox") or None) and \
        (sandbox is None or type(sandbox).__name__ == "Sandbox") else None
    process = StudentProcess(Path(job["workdir"]), sandbox=sandbox, env=job.get("env"), zygote=zygote)
    try:
        sock = process.start()
        session = Session(sock, process)
        try:
            deadline = time.monotonic() + float(job.get("job_timeout", 3600))
            verdict = grade_cells(cells, job["answer_names"], session,
                                  cell_timeout=float(job.get("cell_timeout", 600)), deadline=deadline,
                                  budgets=job.get("budgets"), stop_on_failure=bool(job.get("stop_on_failure")))
        finally:
            session.bye()
            process.close()
    finally:
        if owned is not None:
            owned.close()
    verdict.log = process.log_text()
    verdict.events = events + verdict.events + process.limit_events
    return asdict(verdict)


def cap_memory(megabytes: int = GRADER_MEMORY_MB) -> None:
    """Cap this grading process's heap (RLIMIT_DATA), so that no submission can exhaust the machine through it."""
    import resource

    if megabytes > 0:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = megabytes * 1024 * 1024
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cap_memory()
    if len(argv) != 2:
        print("usage: python -m autograder.verdict JOB.json RESULT.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(json.dumps(run_job(job)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
