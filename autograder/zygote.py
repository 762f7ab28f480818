"""A warm start for student processes: a zygote that has imported the libraries, and forks.

A fresh student process spends seconds importing numpy, torch, matplotlib and scikit-learn before
the submission's first line runs. Each grading worker therefore keeps one zygote: a process that
imported them once (as the grader's user, from the grader's installation: no student code has run
in it) and forks a child per notebook. The child sandboxes itself exactly as the sandbox launcher
does (``autograder.sandbox.sandboxed``: cgroups, namespaces, hidden folders, a scratch copy of the
submission, the unprivileged user) and then, instead of starting a new interpreter, serves the
grader as ``dlcourse.runner`` with those modules already loaded. Without a sandbox (isolation
off) the child only changes to its folder.

Requests come on a Unix socket, with the descriptors of the new student process passed along
(SCM_RIGHTS): the socket to the grader, the interrupt pipe, stdout, stderr, and a pipe on which
the child writes the student process's wait status when it ends. The answer is the child's pid
(its own process group: killing the group kills the student process).

Used for the root sandbox and for unsandboxed grading; bubblewrap sandboxes start a fresh process.
"""
from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys

#: imported once here, then shared by every student process (copy on write)
PRELOAD = ("numpy", "scipy", "sklearn.datasets", "matplotlib", "matplotlib.pyplot", "matplotlib_inline.backend_inline",
           "torch", "torch.nn", "torch.nn.functional", "torch.utils.data", "torch.optim", "torchvision",
           "IPython.core.interactiveshell", "IPython.core.displaypub", "IPython.core.displayhook",
           "IPython.core.inputtransformer2", "IPython.display", "tqdm", "dlcourse", "dlcourse.checks",
           "dlcourse.data", "dlcourse.remote", "dlcourse.runner", "dlcourse.wire")
FDS = 5     # socket, control, stdout, stderr, status


def send_fds(sock: socket.socket, message: dict, fds: list[int]) -> None:
    sock.sendmsg([json.dumps(message).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


def recv_fds(sock: socket.socket, maxfds: int = FDS) -> tuple[dict | None, list[int]]:
    fds = array.array("i")
    data, ancdata, _, _ = sock.recvmsg(1 << 16, socket.CMSG_LEN(maxfds * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - (len(payload) % fds.itemsize)])
    if not data:
        return None, list(fds)
    return json.loads(data), list(fds)


def _preload() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a library that is not installed is simply not preloaded
            pass


def _become_student(fds: list[int], env: dict) -> None:
    """In the final child: standard streams onto the given pipes, a clean environment, serve."""
    sock_fd, control_fd, out_fd, err_fd, status_fd = fds
    os.close(status_fd)          # the status of this process is reported by its parent, not by itself
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.environ.clear()
    os.environ.update(env)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    from dlcourse.runner import serve

    serve(sock_fd, control_fd)
    os._exit(0)


def _child(request: dict, fds: list[int], config) -> None:
    """A forked child: sandbox itself (when configured), run the student process, report its status."""
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    status_fd = fds[4]
    workdir, env, job = request["workdir"], request.get("env", {}), request.get("job", "zygote")
    if config is not None:
        from autograder import sandbox

        status = sandbox.sandboxed(config, workdir, job, lambda clean: _become_student(fds, clean), extra_env=env,
                                   keep_fds=(status_fd,))
    else:
        pid = os.fork()
        if pid == 0:
            os.chdir(workdir)
            _become_student(fds, {**os.environ, **env})
        for fd in fds[:4]:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
    try:
        os.write(status_fd, struct.pack("!i", status))
    finally:
        os._exit(0)


def _reap(signum, frame) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--control", type=int, required=True, help="the Unix socket requests come on")
    p.add_argument("--config", help="the sandbox configuration (absent: no sandbox)")
    args = p.parse_args(argv)
    config = None
    if args.config:
        from autograder.sandbox import Config

        config = Config.load(args.config)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preload()
    control = socket.socket(fileno=args.control)
    signal.signal(signal.SIGCHLD, _reap)
    control.sendall(b'{"ready": true}')
    while True:
        try:
            request, fds = recv_fds(control)
        except InterruptedError:
            continue
        except OSError:
            return 0
        if request is None:
            return 0
        if len(fds) != FDS:
            for fd in fds:
                os.close(fd)
            control.sendall(json.dumps({"error": "expected 5 descriptors", "nonce": request.get("nonce")}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            _child(request, fds, config)
        for fd in fds:
            os.close(fd)
        control.sendall(json.dumps({"pid": pid, "nonce": request.get("nonce")}).encode())


class Zygote:
    """The worker's handle on its zygote."""

    def __init__(self, sandbox_config: str | None, env: dict):
        import subprocess

        from autograder.sandbox import ENV_DROP_WORDS, ENV_KEEP, ENV_KEEP_PREFIX

        # what its children inherit, /proc/self/environ included: no gradebook URL or password
        env = {k: v for k, v in env.items() if (k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIX))
               and not any(w in k.upper() for w in ENV_DROP_WORDS)}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-m", "autograder.zygote", "--control", str(theirs.fileno())]
        if sandbox_config:
            command += ["--config", sandbox_config]
        self.proc = subprocess.Popen(command, env=env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        theirs.close()
        self.sock = ours
        self.ready = False     # it imports while its worker does: the first spawn waits for it

    def wait_ready(self, timeout: float = 600) -> None:
        """Wait (in the worker itself, before it forks a grader) until the zygote has imported."""
        if not self.ready:
            self.sock.settimeout(timeout)
            try:
                if b"ready" not in self.sock.recv(1 << 16):
                    raise RuntimeError("the student-process zygote did not start")
            finally:
                self.sock.settimeout(None)
            self.ready = True

    def spawn(self, workdir: str, env: dict, job: str, fds: list[int], timeout: float = 120) -> int:
        """A new student process (its pid); the reply is matched to this request by a nonce, so a
        request abandoned by a killed grader can never hand its process to the next one."""
        import secrets

        if not self.ready:
            raise RuntimeError("the zygote is not ready (wait_ready first)")
        nonce = secrets.token_hex(8)
        self.sock.settimeout(timeout)
        try:
            send_fds(self.sock, {"workdir": workdir, "env": env, "job": job, "nonce": nonce}, fds)
            while True:
                reply = json.loads(self.sock.recv(1 << 16) or b"{}")
                if reply.get("nonce") == nonce or not reply:
                    break
        finally:
            self.sock.settimeout(None)
        if "pid" not in reply:
            raise RuntimeError(f"the zygote could not start a student process: {reply.get('error', 'no reply')}")
        return int(reply["pid"])

    def close(self) -> None:
        try:
            self.sock.close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
