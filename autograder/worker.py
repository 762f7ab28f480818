"""A warm grading worker: nbgrader's autograde, in-process, for one submission after another.

``python -m autograder autograde`` starts one worker per ``--workers`` and hands each its jobs. A
worker imports nbgrader, numpy, torch and the tests' other libraries once, then for every job runs
nbgrader's own Autograde app in this process (the pipeline of ``nbgrader_config.py``, exactly as
plain ``nbgrader autograde`` runs it) and, for each notebook, forks itself to run the trusted
tests (``autograder.verdict``): the fork starts warm and leaves nothing behind for the next
submission. Student code never runs here; it runs in the sandboxed student process the fork starts.

Protocol: one JSON line per job on stdin (``{"assignment", "student", "args", "env"}``), one JSON
line per result on the file descriptor given by ``--results`` (``{"ok", "log", "error", "verdicts"}``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback


def _warm_up() -> None:
    """Import what every grading needs, once (a fork of this process then starts with it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import nbgrader.apps  # noqa: F401
    import numpy  # noqa: F401

    for name in ("torch", "sklearn.datasets", "IPython.core.inputtransformer2", "nh3",
                 "nbconvert.filters.markdown_mistune"):
        try:
            __import__(name)
        except ImportError:
            pass


def fork_run_job(job: dict) -> dict:
    """Run one verdict job in a fork of this (warm) process; its result comes back through a pipe."""
    from autograder import verdict

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: grade, write the result, leave at once (no cleanup of the parent's state)
        code = 0
        try:
            os.close(read_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            verdict.cap_memory()
            data = json.dumps({"ok": True, "verdict": verdict.run_job(job)}).encode()
        except BaseException as err:  # noqa: BLE001
            data = json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}",
                               "traceback": traceback.format_exc()[-3000:]}).encode()
            code = 1
        try:
            with os.fdopen(write_fd, "wb") as out:
                out.write(data)
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            chunk = pipe.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    try:
        reply = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        reply = {}
    if not reply.get("ok"):
        why = reply.get("error") or f"the grading process ended with status {status}"
        if "zygote" in why and verdict.ZYGOTE is not None:   # its state is unknown now: start a fresh one next time
            verdict.ZYGOTE.close()
            verdict.ZYGOTE, verdict.ZYGOTE_SPEC = None, None
        raise RuntimeError(f"the trusted grader failed: {why}")
    return reply["verdict"]


def _config(repo: str, args: list[str]):
    """nbgrader's configuration as the command line ``nbgrader autograde ARGS`` would build it."""
    from traitlets.config import Config
    from traitlets.config.loader import KVArgParseConfigLoader, PyFileConfigLoader

    cfg = Config()
    path = os.path.join(repo, "nbgrader_config.py")
    if os.path.isfile(path):
        cfg.merge(PyFileConfigLoader("nbgrader_config.py", path=repo).load_config())
    overrides = [a for a in args if a.startswith("--") and "=" in a and "." in a.split("=", 1)[0]]
    cfg.merge(KVArgParseConfigLoader(overrides).load_config())
    return cfg


def _zygote_for(env: dict) -> None:
    """Keep a zygote (autograder.zygote) for this run's sandbox: the root sandbox or none; a bubblewrap
    sandbox starts each student process fresh."""
    from autograder import verdict, zygote

    spec = env.get("COURSE_SANDBOX_SPEC") or None
    if spec is not None:
        try:
            if json.loads(open(spec).read()).get("backend") == "bwrap":
                return
        except (OSError, ValueError):
            return
    elif env.get("COURSE_ISOLATION") != "0":
        return
    if verdict.ZYGOTE is not None and verdict.ZYGOTE_SPEC == spec:
        return
    if verdict.ZYGOTE is not None:
        verdict.ZYGOTE.close()
    verdict.ZYGOTE, verdict.ZYGOTE_SPEC = None, None
    try:
        verdict.ZYGOTE, verdict.ZYGOTE_SPEC = zygote.Zygote(spec, {**os.environ, **env}), spec
    except Exception as err:  # noqa: BLE001 - no zygote: student processes start fresh
        print(f"no zygote ({err}): student processes start fresh", file=sys.stderr)


def grade(job: dict) -> dict:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from autograder import preprocessors

    from autograder import verdict

    preprocessors.VERDICTS.clear()
    if os.environ.get("COURSE_ZYGOTE", "1") != "0":
        _zygote_for(job.get("env") or {})
        if verdict.ZYGOTE is not None:
            try:
                verdict.ZYGOTE.wait_ready()      # here, not in a fork: the forks share its socket
            except Exception as err:  # noqa: BLE001
                print(f"the zygote failed ({err}): student processes start fresh", file=sys.stderr)
                verdict.ZYGOTE, verdict.ZYGOTE_SPEC = None, None
    saved = dict(os.environ)
    os.environ.update(job.get("env") or {})
    try:
        cfg = _config(job["repo"], job.get("args", []))
        coursedir = CourseDirectory(config=cfg)
        api = NbGraderAPI(coursedir=coursedir, config=cfg)
        result = api.autograde(job["assignment"], job["student"], force=True, create=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"ok": bool(result.get("success")), "log": result.get("log", ""), "error": result.get("error", ""),
            "verdicts": [{k: v.get(k) for k in ("notebook", "seconds", "wall_seconds", "cell_seconds", "events",
                                               "student_gone")} for v in preprocessors.VERDICTS]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=int, required=True, help="file descriptor for the result lines")
    p.add_argument("--course", help="the course root it grades for (names the process in `ps`)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the CLI decides when a worker stops
    from autograder import preprocessors, verdict

    verdict.cap_memory()
    if os.environ.get("COURSE_ZYGOTE", "1") != "0":
        _zygote_for(dict(os.environ))   # it imports in its own process while this one does
    _warm_up()
    preprocessors.RUN_JOB = fork_run_job
    out = os.fdopen(args.results, "w", buffering=1)
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = grade(json.loads(line))
        except Exception as err:  # noqa: BLE001 - reported as this job's failure; the worker goes on
            reply = {"ok": False, "log": "", "error": f"{type(err).__name__}: {err}\n{traceback.format_exc()[-3000:]}",
                     "verdicts": []}
        out.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
