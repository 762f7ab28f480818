"""A sandbox for the student process: each submission's code sees only that submission.

As root, the student process is started through this file (``python -I -S sandbox.py --config FILE
--run -- COMMAND``) or forked by the zygote (``autograder/zygote.py``), and ``sandboxed`` then:

* joins a fresh memory and pids cgroup for this one process tree (the memory cap covers the student
  process, its children and the files they write to the private ``/tmp``; the process cap counts
  threads too);
* makes private mount, PID, IPC and network namespaces (no network interface at all: the grader
  talks to it over a Unix socket it inherited);
* puts an empty private tmpfs on ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run/lock``, and copies
  only the submission's files into ``/tmp/<assignment>``, its working directory;
* hides the course root, the repository (``solutions/``), the gradebook folder, this run's sandbox
  folder and home folders behind empty read-only tmpfs mounts, bringing back read-only only what it
  needs: the Python installation and environment, the ``dlcourse`` package and the course data folder;
* forks the student process as PID 1 of the new PID namespace (when it dies, every process it
  started dies with it), mounts a ``/proc`` that shows only those processes, sets ``RLIMIT_FSIZE``
  and ``RLIMIT_CORE`` (and, without cgroups, ``RLIMIT_NPROC``/``RLIMIT_DATA``), drops to the
  unprivileged ``course-sandbox`` user with ``no_new_privs``, a clean environment, HOME and TMPDIR
  in the private ``/tmp``, and execs the command (or, in the zygote, serves in place).

The launcher stays as the student process's parent and turns SIGTERM into SIGKILL of it. It runs as
``python -I -S sandbox.py``, so this file uses the standard library only.

For a grader who is not root, ``BwrapSandbox`` gets the same views with bubblewrap. The grading
run's side (``Sandbox``) writes the launcher's JSON configuration, gives each job an id, and
afterwards reads the job's cgroup counters (memory limit hit, process limit hit), kills what is
left and removes the cgroups.
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

USER = "course-sandbox"
JOB_ENV = "COURSE_SANDBOX_JOB"
CGROUP_DIR = "course-sandbox"
#: world-writable places that get a fresh private tmpfs: (path, size in MiB or None for the memory cap)
PRIVATE_TMP = (("/tmp", None), ("/var/tmp", 64), ("/dev/shm", None), ("/run/lock", 1))
#: never hidden, whatever the configuration says: nothing could run without them
SYSTEM_DIRS = {"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
               "/sbin", "/sys", "/usr", "/var", "/run"}
#: environment variables that reach the student process (anything else, e.g. COURSE_DB_URL, does not)
ENV_KEEP = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "TQDM_DISABLE", "MPLBACKEND", "PYTHONHASHSEED",
            "PYTHONUNBUFFERED", "PYTHONWARNINGS", "PYTHONIOENCODING", "PYDEVD_DISABLE_FILE_VALIDATION"}
ENV_KEEP_PREFIX = ("LC_", "COURSE_", "NBGRADER_", "JPY_", "OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_",
                   "CUDA_", "NVIDIA_", "TORCH_", "CUBLAS_")
ENV_DROP_WORDS = ("URL", "PASS", "TOKEN", "SECRET", "KEY", "CRED", "SANDBOX")
MIB = 1024 * 1024

# -- Linux system calls the standard library lacks (Python 3.11) -----------------------------------
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x08000000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_c().unshare(flags), "unshare")


def _mount(source, target: str, fstype=None, flags: int = 0, data=None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(_c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _prctl(option: int, value: int) -> None:
    _check(_c().prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)), "prctl")


# -- configuration ---------------------------------------------------------------------------------
@dataclass
class Limits:
    """What one student process may use. The defaults suit real grading; tests pass smaller ones."""
    memory_mb: int = 4096     # the student process, its children and the files they write in /tmp
    processes: int = 256      # processes and threads of one student process tree, its own included
    file_mb: int = 1024       # the largest file it may write

    @classmethod
    def from_env(cls) -> "Limits":
        d = cls()
        return cls(int(os.environ.get("COURSE_SANDBOX_MEMORY_MB", d.memory_mb)),
                   int(os.environ.get("COURSE_SANDBOX_PROCESSES", d.processes)),
                   int(os.environ.get("COURSE_SANDBOX_FILE_MB", d.file_mb)))


@dataclass
class Config:
    """The launcher's configuration (a JSON file in the run's sandbox folder)."""
    user: str = USER
    limits: Limits = field(default_factory=Limits)
    hide: list = field(default_factory=list)      # folders replaced by an empty read-only tmpfs
    expose: list = field(default_factory=list)    # folders kept readable inside hidden ones
    data_dir: str = ""                            # the course data folder, exposed read-only
    mpl_cache: str = ""                           # matplotlib's font cache, copied in (fast import)
    cgroups: dict = field(default_factory=dict)   # controller -> [version, parent folder]

    @classmethod
    def load(cls, path: str) -> "Config":
        raw = json.loads(Path(path).read_text())
        raw["limits"] = Limits(**raw.get("limits", {}))
        return cls(**raw)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# -- cgroups ---------------------------------------------------------------------------------------
def cgroup_parents() -> dict[str, tuple[int, str]]:
    """Where this process may create cgroups, per controller: ``{"memory": (1, folder), ...}``.

    cgroup v1: a ``course-sandbox`` folder inside this process's own memory / pids cgroup, so the
    limits of whoever runs the grader still apply on top. cgroup v2: the same, when this process's
    cgroup can delegate both controllers.
    """
    found: dict[str, tuple[int, str]] = {}
    own = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for ctrl in (controllers.split(",") if controllers else [""]):
                own[ctrl] = path
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    v2_mount = None
    for line in mounts:
        pre, _, post = line.partition(" - ")
        fields, post_fields = pre.split(), post.split()
        if len(fields) < 5 or len(post_fields) < 3:
            continue
        root, mountpoint, fstype, opts = fields[3], fields[4], post_fields[0], post_fields[2].split(",")
        if fstype == "cgroup":
            for ctrl in ("memory", "pids"):
                if ctrl in opts and ctrl not in found and ctrl in own:
                    rel = own[ctrl][len(root):] if _under(own[ctrl], root) and root != "/" else own[ctrl]
                    found[ctrl] = (1, os.path.join(mountpoint, rel.lstrip("/"), CGROUP_DIR))
        elif fstype == "cgroup2" and v2_mount is None:
            v2_mount = (root, mountpoint)
    if v2_mount and "" in own and not ({"memory", "pids"} & set(found)):
        root, mountpoint = v2_mount
        rel = own[""][len(root):] if _under(own[""], root) and root != "/" else own[""]
        base = os.path.join(mountpoint, rel.lstrip("/"))
        try:
            available = Path(base, "cgroup.controllers").read_text().split()
        except OSError:
            available = []
        for ctrl in ("memory", "pids"):
            if ctrl in available:
                found[ctrl] = (2, os.path.join(base, CGROUP_DIR))
    return found


def _write(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _keyed(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _make_parent(version: int, parent: str) -> None:
    """Create the ``course-sandbox`` folder; on v2 let it hand both controllers to its children."""
    os.makedirs(parent, exist_ok=True)
    if version == 2:
        ctl = os.path.join(parent, "cgroup.subtree_control")
        if not {"memory", "pids"} <= set(_read(ctl).split()):
            _write(ctl, "+memory +pids")


def enter_cgroups(cgroups: dict, name: str, limits: Limits) -> list[str]:
    """Create ``<parent>/<name>`` per controller with the limits, and move this process into it."""
    entered = []
    for ctrl, (version, parent) in cgroups.items():
        _make_parent(version, parent)
        folder = os.path.join(parent, name)
        os.makedirs(folder, exist_ok=True)
        if ctrl == "memory":
            cap = limits.memory_mb * MIB
            if version == 1:
                _write(os.path.join(folder, "memory.limit_in_bytes"), cap)
                if os.path.exists(os.path.join(folder, "memory.memsw.limit_in_bytes")):
                    try:  # no swapping around the cap either
                        _write(os.path.join(folder, "memory.memsw.limit_in_bytes"), cap)
                    except OSError:
                        pass
            else:
                _write(os.path.join(folder, "memory.max"), cap)
                if os.path.exists(os.path.join(folder, "memory.swap.max")):
                    _write(os.path.join(folder, "memory.swap.max"), 0)
        else:
            _write(os.path.join(folder, "pids.max"), limits.processes)
        _write(os.path.join(folder, "cgroup.procs"), os.getpid())
        entered.append(ctrl)
    return entered


def cgroup_stats(folder_by_ctrl: dict[str, tuple[int, str]]) -> dict[str, int]:
    """Counters of one student process's cgroups: peak memory, OOM kills, refused forks, peak processes."""
    stats = {}
    for ctrl, (version, folder) in folder_by_ctrl.items():
        if ctrl == "memory":
            if version == 1:
                stats["memory_peak"] = int(_read(os.path.join(folder, "memory.max_usage_in_bytes")) or 0)
                stats["oom_kills"] = _keyed(_read(os.path.join(folder, "memory.oom_control"))).get("oom_kill", 0)
            else:
                stats["memory_peak"] = int(_read(os.path.join(folder, "memory.peak")) or 0)
                stats["oom_kills"] = _keyed(_read(os.path.join(folder, "memory.events"))).get("oom_kill", 0)
        else:
            stats["fork_refused"] = _keyed(_read(os.path.join(folder, "pids.events"))).get("max", 0)
            stats["processes_peak"] = int(_read(os.path.join(folder, "pids.peak")) or 0)
    return stats


def remove_cgroup(folder: str, attempts: int = 100) -> bool:
    """Kill whatever is left in a cgroup, then remove it."""
    import time

    for _ in range(attempts):
        pids = [int(p) for p in _read(os.path.join(folder, "cgroup.procs")).split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(folder)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    return False


# -- the launcher (runs as root, becomes the student process's parent) -----------------------------
def _copy_tree(src_fd: int, dest: str, uid: int, gid: int) -> None:
    """Copy the regular files and folders under the open folder ``src_fd`` to ``dest`` (no links)."""
    os.makedirs(dest, exist_ok=True)
    os.chown(dest, uid, gid)
    os.chmod(dest, 0o700)
    for entry in os.scandir(src_fd):
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            fd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src_fd)
            try:
                _copy_tree(fd, os.path.join(dest, entry.name), uid, gid)
            finally:
                os.close(fd)
        elif entry.is_file(follow_symlinks=False):
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src_fd)
            target = os.path.join(dest, entry.name)
            try:
                with os.fdopen(fd, "rb", closefd=False) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 4 * MIB)
            finally:
                os.close(fd)
            os.chown(target, uid, gid)
            os.chmod(target, 0o755 if os.stat(entry.name, dir_fd=src_fd).st_mode & stat.S_IXUSR else 0o644)


def _student_env(cfg: Config, home: str, pw) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if (k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIX))
           and not any(w in k.upper() for w in ENV_DROP_WORDS)}
    env.update(HOME=home, TMPDIR="/tmp", USER=pw.pw_name, LOGNAME=pw.pw_name, SHELL="/bin/sh",
               MPLCONFIGDIR=os.path.join(home, ".config", "matplotlib"), PYTHONNOUSERSITE="1")
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if cfg.data_dir:
        env["COURSE_DATA_DIR"] = cfg.data_dir
    return env


def _hide_and_expose(cfg: Config, uid: int, gid: int) -> None:
    """Private tmpfs on the world-writable folders, empty read-only tmpfs on the hidden ones, and the
    exposed folders bound back read-only."""
    memory = cfg.limits.memory_mb
    private = [(p, size or memory) for p, size in PRIVATE_TMP if os.path.isdir(p)]
    hide = [os.path.realpath(p) for p in cfg.hide]
    hide = [p for p in dict.fromkeys(hide) if os.path.isdir(p) and p not in SYSTEM_DIRS]
    # a folder inside another hidden one disappears with it
    hide = [p for p in hide if not any(_under(p, q) for q, _ in private)
            and not any(q != p and _under(p, q) for q in hide)]
    covers = [p for p, _ in private] + hide
    expose = [os.path.realpath(p) for p in cfg.expose + ([cfg.data_dir] if cfg.data_dir else [])]
    # never bring back a folder that holds something hidden (e.g. the repository itself), and
    # bind a folder only once (not again inside another exposed one)
    expose = [p for p in dict.fromkeys(expose) if os.path.isdir(p) and not any(_under(h, p) for h in hide)]
    expose = [p for p in expose if not any(q != p and _under(p, q) for q in expose)]
    held = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in expose if any(_under(p, c) for c in covers)}
    flags = MS_NOSUID | MS_NODEV
    for path, size in private:
        _mount("tmpfs", path, "tmpfs", flags, f"size={size}m,mode=1777")
    for path in hide:
        _mount("tmpfs", path, "tmpfs", flags, "size=1m,mode=755")
    for path, fd in sorted(held.items()):
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)
        os.close(fd)
    for path in hide:
        _mount("tmpfs", path, "tmpfs", MS_REMOUNT | MS_RDONLY | flags, "size=1m,mode=755")


def sandboxed(cfg: Config, submission: str, job: str, start, extra_env: dict | None = None,
              keep_fds: tuple = ()) -> int:
    """Sandbox this (root) process and call ``start(env)`` as the unprivileged user in a child that is
    PID 1 of its own namespaces, working in a scratch copy of ``submission``; returns its wait status.

    ``start`` either execs a command or runs Python in place (the zygote's pre-imported student
    process). This process stays as its parent: every descriptor but ``keep_fds`` is closed here once
    the child runs, so the grader's socket lives with the child only (its exit closes it).
    """
    import pwd

    pw = pwd.getpwnam(cfg.user)
    uid, gid = pw.pw_uid, pw.pw_gid
    entered = enter_cgroups({ctrl: tuple(v) for ctrl, v in cfg.cgroups.items()}, f"{job}-{os.getpid()}", cfg.limits)
    _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    src_fd = os.open(submission, os.O_RDONLY | os.O_DIRECTORY)
    fonts = {}
    if cfg.mpl_cache and os.path.isdir(cfg.mpl_cache):
        for name in os.listdir(cfg.mpl_cache):
            if name.startswith("fontlist") and name.endswith(".json"):
                fonts[name] = Path(cfg.mpl_cache, name).read_bytes()
    _hide_and_expose(cfg, uid, gid)
    work = os.path.join("/tmp", os.path.basename(submission.rstrip("/")) or "submission")
    home = "/tmp/.home"
    _copy_tree(src_fd, work, uid, gid)
    os.close(src_fd)
    for folder in (home, os.path.join(home, ".config"), os.path.join(home, ".config", "matplotlib")):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chown(folder, uid, gid)
    for name, content in fonts.items():
        target = os.path.join(home, ".config", "matplotlib", name)
        Path(target).write_bytes(content)
        os.chown(target, uid, gid)
    saved = dict(os.environ)
    os.environ.update(extra_env or {})
    env = _student_env(cfg, home, pw)
    os.environ.clear()
    os.environ.update(saved)
    env["IPYTHONDIR"] = os.path.join(home, ".ipython")
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        try:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            _write("/proc/self/oom_score_adj", 1000)
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (cfg.limits.file_mb * MIB,) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if "pids" not in entered:
                resource.setrlimit(resource.RLIMIT_NPROC, (cfg.limits.processes,) * 2)
            if "memory" not in entered:
                resource.setrlimit(resource.RLIMIT_DATA, (cfg.limits.memory_mb * MIB,) * 2)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            _prctl(PR_SET_NO_NEW_PRIVS, 1)
            os.chdir(work)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
            start(env)
        except BaseException as err:  # noqa: BLE001
            os.write(2, f"sandbox: could not start the student process: {err}\n".encode())
        os._exit(127)
    low = 3
    for fd in sorted(set(keep_fds)) + [1 << 16]:
        os.closerange(low, fd)
        low = fd + 1

    def _kill(signum, frame):
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, _kill)
    return _wait_for_child_or_parent(child, parent)


def run(config_path: str, argv: list[str]) -> int:
    """Run ``argv`` sandboxed in a scratch copy of the working directory (the grader's student process).

    The caller's open descriptors (the socket to the grader) are inherited; the network namespace is
    always new and empty.
    """
    status = sandboxed(Config.load(config_path), os.getcwd(), os.environ.get(JOB_ENV, "manual"),
                       lambda env: os.execve(argv[0], argv, env))
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _wait_for_child_or_parent(child: int, parent: int) -> int:
    """Wait for the student process and return its wait status; if the launcher's parent (the
    grader) dies first, kill the student process."""
    import select

    try:
        child_fd, parent_fd = os.pidfd_open(child), os.pidfd_open(parent)
    except (AttributeError, OSError):  # no pidfds (Linux < 5.3): poll once a second
        import time

        while True:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                return status
            if os.getppid() != parent:
                os.kill(child, signal.SIGKILL)
            time.sleep(1)
    watched = [child_fd, parent_fd]
    if os.getppid() != parent:  # it died before it was watched
        os.kill(child, signal.SIGKILL)
    while child_fd not in select.select(watched, [], [])[0]:
        os.kill(child, signal.SIGKILL)
        watched = [child_fd]
    os.close(child_fd)
    os.close(parent_fd)
    return os.waitpid(child, 0)[1]


def probe(cgroups: dict) -> dict:
    """Check, in this throwaway process, that the namespaces, mounts and cgroups work."""
    result = {"ok": False, "reason": "", "cgroups": {}}
    if os.geteuid() != 0:
        result["reason"] = "not running as root"
        return result
    for ctrl, (version, parent) in cgroups.items():
        test = os.path.join(parent, f"probe-{os.getpid()}")
        try:
            _make_parent(version, parent)
            os.makedirs(test, exist_ok=True)
            limit = "pids.max" if ctrl == "pids" else ("memory.limit_in_bytes" if version == 1 else "memory.max")
            _write(os.path.join(test, limit), 64 * MIB if ctrl == "memory" else 64)
            result["cgroups"][ctrl] = [version, parent]
        except OSError:
            pass
        finally:
            try:
                os.rmdir(test)
            except OSError:
                pass
    try:
        _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777")
        child = os.fork()
        if child == 0:
            try:
                _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                os._exit(0 if os.getpid() == 1 else 1)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        _, status = os.waitpid(child, 0)
        if status != 0:
            raise OSError("could not mount /proc in a new PID namespace")
    except (OSError, AttributeError) as err:
        result["reason"] = f"Linux namespaces unavailable ({err})"
        return result
    result["ok"] = True
    return result


# -- the Autograder's side -------------------------------------------------------------------------
def ensure_user(name: str = USER):
    """The unprivileged user student processes run as, created once (a system user, no home, no login)."""
    import pwd

    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or next((p for p in ("/usr/sbin/useradd", "/sbin/useradd")
                                               if os.path.exists(p)), None)
    if not useradd:
        raise OSError(f"no user {name} and no useradd to create it")
    proc = subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
                           "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 9):  # 9: created meanwhile by a concurrent grader
        raise OSError(f"useradd {name} failed: {proc.stderr.strip()}")
    return pwd.getpwnam(name)


def _mpl_cache() -> str:
    if os.environ.get("MPLCONFIGDIR"):
        return os.environ["MPLCONFIGDIR"]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "matplotlib")


def _data_dir() -> str:
    """The course data folder as ``dlcourse.data.data_dir()`` computes it (without importing torch)."""
    return os.path.expanduser(os.environ.get("COURSE_DATA_DIR") or "~/.cache/dlcourse")


class Sandbox:
    """One grading run's sandbox: the launcher's configuration and per-job bookkeeping."""

    def __init__(self, hide: list[Path], limits: Limits, cgroups: dict, user):
        import importlib.util

        self.limits = limits
        self.user = user
        # a short path in /tmp: hidden from every student process (it is in the hidden list)
        self.dir = Path(tempfile.mkdtemp(prefix="course-sandbox-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.dir.chmod(0o755)
        expose = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable))}
        for name in ("dlcourse",):  # the course package, installed editable from the repository
            spec = importlib.util.find_spec(name)
            expose.update((spec.submodule_search_locations or []) if spec else [])
        # home folders (credentials, other people's files) and this run's folder (other jobs' sockets)
        homes = ["/root", "/home", "/run/user", os.path.expanduser("~"), str(self.dir)]
        self.config = Config(user=user.pw_name, limits=limits,
                             hide=sorted({str(p) for p in hide} | set(homes)),
                             expose=sorted(os.path.realpath(p) for p in expose),
                             data_dir=os.path.realpath(_data_dir()) if os.path.isdir(_data_dir()) else "",
                             mpl_cache=_mpl_cache(), cgroups=cgroups)
        (self.dir / "sandbox.json").write_text(json.dumps(asdict(self.config), indent=1))
        self._token = self.dir.name.rsplit("-", 1)[-1]
        self._count = 0
        self._lock = threading.Lock()
        self._owner = True

    # -- describing ------------------------------------------------------------------------
    def describe(self) -> str:
        lim, cg = self.limits, self.config.cgroups
        memory = f"memory {lim.memory_mb} MB ({'cgroup' if 'memory' in cg else 'RLIMIT_DATA per process'})"
        procs = f"{lim.processes} processes ({'cgroup' if 'pids' in cg else 'RLIMIT_NPROC per user'})"
        return (f"isolated: user {self.user.pw_name}, scratch copy of the submission, private "
                f"mount/PID/IPC/network namespaces, {memory}, {procs}, files {lim.file_mb} MB")

    def _job_cgroups(self, job: str) -> list[dict[str, tuple[int, str]]]:
        groups: dict[str, dict] = {}
        for ctrl, (version, parent) in self.config.cgroups.items():
            try:
                names = [n for n in os.listdir(parent) if n.startswith(job + "-")]
            except OSError:
                names = []
            for n in names:
                groups.setdefault(n, {})[ctrl] = (version, os.path.join(parent, n))
        return list(groups.values())

    def finish(self, job: str) -> list[str]:
        """After a job: what the limits stopped, as events; leftover processes killed, cgroups removed."""
        events = []
        for cgroups in self._job_cgroups(job):
            stats = cgroup_stats(cgroups)
            if stats.get("oom_kills"):
                events.append(f"the student process was killed at the memory limit ({self.limits.memory_mb} MB)")
            if stats.get("fork_refused"):
                events.append(f"the notebook reached the process limit ({self.limits.processes}): "
                              f"{stats['fork_refused']} process(es) refused")
            for _, folder in cgroups.values():
                remove_cgroup(folder)
        shutil.rmtree(self.dir / f"j{job.rsplit('-', 1)[-1]}", ignore_errors=True)
        return list(dict.fromkeys(events))

    # -- any command (the grader's student process) ------------------------------------------------
    def new_job(self) -> str:
        """A job id, unique across the grading run's processes (it names the job's cgroups)."""
        with self._lock:
            self._count += 1
            return f"{self._token}-{os.getpid()}x{self._count}"

    def wrap(self, command: list[str], workdir: Path, env: dict) -> tuple[str, list[str], dict, None]:
        """A job id and the command, environment and pre-exec hook that run ``command`` sandboxed in a
        scratch copy of ``workdir`` (the launcher copies it; the caller starts the process in ``workdir``)."""
        job = self.new_job()
        argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--config", str(self.dir / "sandbox.json"),
                "--run", "--", *command]
        return job, argv, {**env, JOB_ENV: job}, None

    def spec(self) -> str:
        """A path from which another process of the grader can use this sandbox (``from_spec``)."""
        return str(self.dir / "sandbox.json")

    @classmethod
    def from_spec(cls, path: str):
        """The sandbox that ``spec()`` named, for another grading process (it does not own the folder)."""
        raw = json.loads(Path(path).read_text())
        if raw.get("backend") == "bwrap":
            return BwrapSandbox.from_spec(path)
        import pwd

        obj = cls.__new__(cls)
        obj.config = Config.load(path)
        obj.limits, obj.dir = obj.config.limits, Path(path).parent
        obj.user = pwd.getpwnam(obj.config.user)
        obj._token, obj._count, obj._lock, obj._owner = obj.dir.name.rsplit("-", 1)[-1], 0, threading.Lock(), False
        return obj

    def close(self) -> None:
        if not getattr(self, "_owner", True):
            return
        for ctrl, (version, parent) in self.config.cgroups.items():
            for name in (os.listdir(parent) if os.path.isdir(parent) else []):
                if name.startswith(self._token + "-"):
                    remove_cgroup(os.path.join(parent, name))
        shutil.rmtree(self.dir, ignore_errors=True)


class BwrapSandbox:
    """The sandbox for a grader who is not root: bubblewrap (user namespaces), with resource limits.

    Student code then runs as the grader's own user, but sees the machine read-only, with the
    course, the repository, the gradebook folder and home folders hidden behind empty folders, a
    private ``/tmp`` (size-capped), its own scratch copy of the submission, no network, no other
    processes and no capabilities. Memory, processes and file size are capped per process with
    setrlimit (``RLIMIT_DATA``, ``RLIMIT_NPROC`` above the user's current count, ``RLIMIT_FSIZE``),
    and with a systemd scope's ``MemoryMax`` / ``TasksMax`` when ``systemd-run --user`` works.
    """

    def __init__(self, hide: list[str], expose: list[str], limits: Limits, bwrap: str, systemd_run: str | None,
                 data_dir: str = "", directory: Path | None = None, owner: bool = True):
        self.hide, self.expose, self.limits, self.bwrap = list(hide), list(expose), limits, bwrap
        self.systemd_run, self.data_dir = systemd_run, data_dir
        self.dir = directory or Path(tempfile.mkdtemp(prefix="course-bwrap-"))
        self._owner = owner
        self._lock, self._count = threading.Lock(), 0
        if owner:
            (self.dir / "sandbox.json").write_text(json.dumps({
                "backend": "bwrap", "hide": self.hide, "expose": self.expose, "limits": asdict(limits),
                "bwrap": bwrap, "systemd_run": systemd_run, "data_dir": data_dir}, indent=1))

    @classmethod
    def from_spec(cls, path: str) -> "BwrapSandbox":
        raw = json.loads(Path(path).read_text())
        return cls(raw["hide"], raw["expose"], Limits(**raw["limits"]), raw["bwrap"], raw.get("systemd_run"),
                   raw.get("data_dir", ""), directory=Path(path).parent, owner=False)

    def spec(self) -> str:
        return str(self.dir / "sandbox.json")

    def describe(self) -> str:
        lim = self.limits
        caps = (f"memory {lim.memory_mb} MB and {lim.processes} tasks (systemd scope)" if self.systemd_run
                else f"memory {lim.memory_mb} MB per process (RLIMIT_DATA), processes (RLIMIT_NPROC)")
        return (f"isolated with bubblewrap (not root): read-only system, course and homes hidden, scratch copy of the "
                f"submission, private /tmp, no network, own PID namespace, {caps}, files {lim.file_mb} MB")

    def wrap(self, command: list[str], workdir: Path, env: dict):
        import resource

        with self._lock:
            self._count += 1
            job = f"bwrap-{os.getpid()}x{self._count}"
        lim = self.limits
        inside = f"/tmp/{Path(workdir).name or 'submission'}"
        home = "/tmp/.home"
        args = [self.bwrap, "--die-with-parent", "--unshare-all", "--new-session", "--cap-drop", "ALL",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for device in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri/renderD*")):
            args += ["--dev-bind", device, device]      # a GPU stays usable inside the fresh /dev
        hide = [p for p in sorted(set(self.hide)) if os.path.isdir(p) and p not in SYSTEM_DIRS
                and not _under(p, "/tmp")]
        hide = [p for p in hide if not any(q != p and _under(p, q) for q in hide)]   # nested ones go with it
        for path in hide:
            args += ["--tmpfs", path]
        exposed = sorted(set(self.expose) | ({self.data_dir} if self.data_dir else set()))
        exposed = [p for p in exposed if not any(q != p and _under(p, q) for q in exposed)]
        for path in exposed:
            if os.path.isdir(path) and any(_under(path, h) for h in hide):
                args += ["--ro-bind", path, path]
        for path in hide:
            args += ["--remount-ro", path]
        size = str(lim.memory_mb * MIB)
        args += ["--size", size, "--tmpfs", "/tmp", "--size", str(64 * MIB), "--tmpfs", "/var/tmp",
                 "--size", size, "--tmpfs", "/dev/shm"]
        for path in exposed:   # a venv or repository under /tmp: back, read-only, inside the private /tmp
            if os.path.isdir(path) and any(_under(path, t) for t in ("/tmp", "/var/tmp", "/dev/shm")):
                args += ["--ro-bind", path, path]
        args += ["--bind", str(workdir), inside, "--dir", home, "--chdir", inside, "--clearenv"]
        keep = {k: v for k, v in env.items() if (k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIX))
                and not any(w in k.upper() for w in ENV_DROP_WORDS)}
        keep.update(HOME=home, TMPDIR="/tmp", MPLCONFIGDIR=f"{home}/.config/matplotlib", PYTHONNOUSERSITE="1",
                    IPYTHONDIR=f"{home}/.ipython")
        keep.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if self.data_dir:
            keep["COURSE_DATA_DIR"] = self.data_dir
        for k, v in sorted(keep.items()):
            args += ["--setenv", k, v]
        argv = args + ["--", *command]
        if self.systemd_run:
            argv = [self.systemd_run, "--user", "--scope", "--quiet", f"--unit=course-{job}",
                    "-p", f"MemoryMax={lim.memory_mb}M", "-p", "MemorySwapMax=0", "-p", f"TasksMax={lim.processes}",
                    "--", *argv]
        current = _count_user_processes()

        def limits():
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_mb * MIB,) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_DATA, (lim.memory_mb * MIB,) * 2)
            soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
            cap = current + lim.processes
            resource.setrlimit(resource.RLIMIT_NPROC, (min(cap, hard) if hard != resource.RLIM_INFINITY else cap,) * 2)

        return job, argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, limits

    def finish(self, job: str) -> list[str]:
        return []

    def close(self) -> None:
        if self._owner:
            shutil.rmtree(self.dir, ignore_errors=True)


def _count_user_processes() -> int:
    uid, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _bwrap_works(bwrap: str) -> str:
    """'' when bubblewrap can make the namespaces this sandbox needs, else why not."""
    try:
        proc = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
                               "--dev", "/dev", "--tmpfs", "/tmp", "--", "true"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["bwrap failed"])[-1]


def _systemd_scope_works(systemd_run: str | None) -> bool:
    if not systemd_run:
        return False
    try:
        return subprocess.run([systemd_run, "--user", "--scope", "--quiet", "-p", "MemoryMax=64M", "--", "true"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def open_bwrap(hide: list[Path], limits: Limits | None = None) -> tuple["BwrapSandbox | None", str]:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None, "bubblewrap is not installed (apt-get install bubblewrap)"
    why = _bwrap_works(bwrap)
    if why:
        return None, f"bubblewrap cannot create namespaces here ({why})"
    import importlib.util

    expose = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.realpath(sys.executable))}
    spec = importlib.util.find_spec("dlcourse")
    expose.update((spec.submodule_search_locations or []) if spec else [])
    homes = ["/root", "/home", "/run/user", os.path.expanduser("~")]
    systemd_run = shutil.which("systemd-run")
    sandbox = BwrapSandbox(sorted({os.path.realpath(str(p)) for p in hide} | set(homes)),
                           sorted(os.path.realpath(p) for p in expose), limits or Limits.from_env(), bwrap,
                           systemd_run if _systemd_scope_works(systemd_run) else None,
                           os.path.realpath(_data_dir()) if os.path.isdir(_data_dir()) else "")
    return sandbox, sandbox.describe()


def check() -> tuple[dict | None, str]:
    """Whether student processes can be sandboxed here: the probe's findings, or ``None`` and why not."""
    if not sys.platform.startswith("linux"):
        return None, f"sandboxing needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return None, "not running as root (the sandbox needs root to mount and to switch users)"
    proc = subprocess.run([sys.executable, "-I", "-S", os.path.abspath(__file__), "--probe"],
                          capture_output=True, text=True)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"sandbox probe failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    if not result["ok"]:
        return None, result["reason"]
    import pwd

    try:
        pwd.getpwnam(USER)
    except KeyError:
        if not (shutil.which("useradd") or os.path.exists("/usr/sbin/useradd")):
            return None, f"no user {USER} and no useradd to create it"
    return result, ""


def open_sandbox(hide: list[Path], limits: Limits | None = None) -> tuple[Sandbox | None, str]:
    """A ready sandbox and its description, or ``None`` and why grading cannot be isolated here.

    As root: namespaces, cgroups and an unprivileged user (``Sandbox``). Otherwise bubblewrap
    (``BwrapSandbox``) when it is installed and user namespaces are allowed.
    """
    result, why = check()
    if result is None:
        if sys.platform.startswith("linux") and os.geteuid() != 0:
            sandbox, text = open_bwrap(hide, limits)
            return (sandbox, text) if sandbox is not None else (None, f"{why}; {text}")
        return None, why
    try:
        user = ensure_user()
    except OSError as err:
        return None, str(err)
    cgroups = {ctrl: tuple(v) for ctrl, v in result["cgroups"].items()}
    sandbox = Sandbox(hide, limits or Limits.from_env(), cgroups, user)
    return sandbox, sandbox.describe()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe(cgroup_parents())))
        return 0
    if len(argv) >= 4 and argv[0] == "--config" and argv[2] == "--run" and "--" in argv:
        return run(argv[1], argv[argv.index("--") + 1:])
    print("usage: sandbox.py --probe | --config FILE --run -- COMMAND...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
