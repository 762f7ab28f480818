"""``python -m autograder COMMAND``: the instructor's commands (each is also a Make target)."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from autograder.course import Course


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    p.add_argument("--course", metavar="DIR", help="course root for submitted/, autograded/, feedback/, "
                   "the gradebook and reports (default: the repository)")
    p.add_argument("--db-url", help="gradebook URL (default: $COURSE_DB_URL or sqlite in the course root)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("release", help="generate assignments/ from solutions/; fails on an invalid source")
    r.add_argument("assignments", nargs="*")
    r.add_argument("--check", action="store_true", help="only check that assignments/ matches a fresh release")

    c = sub.add_parser("collect", help="take submissions from a folder or a zip")
    c.add_argument("source", type=Path)
    c.add_argument("--assignment", help="the assignment, when the layout is <student>/<files> (or an LMS download "
                   "whose notebooks do not say)")
    c.add_argument("--lms", choices=("canvas", "moodle"), help="the source is that LMS's \"download submissions\" "
                   "zip or folder (default: recognised from its file names)")
    c.add_argument("--roster", type=Path, metavar="FILE.csv", help="for an LMS download: columns lms_id,student_id "
                   "(default: the LMS's numeric ids are the student ids)")
    c.add_argument("--submitted-at", type=Path, metavar="FILE.csv",
                   help="submission times from a trusted source (e.g. the LMS's export): rows student,assignment,"
                        "time (ISO 8601, e.g. 2027-03-01T23:59:00+08:00); default: when collect receives each")

    a = sub.add_parser("autograde", help="grade every submission in parallel")
    a.add_argument("assignments", nargs="*")
    a.add_argument("--workers", type=int, default=1)
    a.add_argument("--student", action="append", help="grade only this student (repeatable): one job per "
                   "student on a cluster, e.g. a Slurm array task or a Kubernetes indexed Job")
    a.add_argument("--cell-timeout", type=int, help="seconds one cell may run (default from nbgrader_config.py)")
    a.add_argument("--force", action="store_true", help="regrade submissions that have not changed")
    a.add_argument("--no-isolation", action="store_true",
                   help="run student code unsandboxed (default: sandboxed when root on Linux; "
                        "also COURSE_ISOLATION=0)")

    f = sub.add_parser("feedback", help="HTML feedback per student per assignment (no hidden-test code)")
    f.add_argument("assignments", nargs="*")

    e = sub.add_parser("export", help="write the grades CSV")
    e.add_argument("--to", type=Path, default=Path("grades.csv"))

    sub.add_parser("report", help="item analysis (text, HTML, CSV) and the class dashboard (reports/dashboard.html)")

    lab = sub.add_parser("lab", help="JupyterLab with nbgrader's formgrader on this course (with --course: "
                         "that course root, which gets an nbgrader_config.py pointing at this repository)")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help="passed on to jupyter lab")

    m = sub.add_parser("mutate", help="mutation testing: mutants generated from each graded function, graded by "
                       "the trusted grader; reports/mutation.csv and .html list what no test catches")
    m.add_argument("assignments", nargs="*")
    m.add_argument("--operators", help="comma-separated operators (default: all of ignore_param, constant, compare, "
                   "arith, mean_sum, dim, bounds, delete, return_const)")
    m.add_argument("--limit", type=int, help="grade a deterministic sample of N mutants per assignment")
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--out", type=Path, help="folder for the reports (default: the course's reports/)")
    m.add_argument("--all-tests", action="store_true", help="run every test on each mutant (default: stop at the "
                   "first failing test)")
    m.add_argument("--free-cells", action="store_true", help="also run the source's free cells (the demos)")
    m.add_argument("--mutant", action="append", help="grade only this generated mutant (repeatable)")
    m.add_argument("--list", action="store_true", help="print the generated mutants and their diffs; grade nothing")
    m.add_argument("--report", action="store_true", help="rewrite the report from reports/mutation.json with the "
                   "current equivalent_mutants.txt files; grade nothing")

    ev = sub.add_parser("evaluate", help="measure the handed-in models: exp2's final.pth on the CIFAR-10 test set, "
                        "exp1's model.pth on a held-out grid; reports/evaluate_<a>.csv and an extra grade in the gradebook")
    ev.add_argument("assignment", choices=("09_exp2_cifar10", "08_exp1_fitting"))
    ev.add_argument("--student", action="append", help="only this student (repeatable)")
    ev.add_argument("--data", type=Path, metavar="DIR", help="the folder holding cifar-10-batches-py/ (default: "
                    "$COURSE_DATA_DIR, else ~/.cache/dlcourse)")
    ev.add_argument("--unverified-data", action="store_true", help="accept a CIFAR-10 copy whose md5 sums do not match "
                    "(e.g. generated images); every row then says it is not the real test set")
    ev.add_argument("--device", help="torch device for the measurement (default: cuda when there is one, else cpu)")
    ev.add_argument("--no-isolation", action="store_true", help="open the handed-in files unsandboxed")

    pub = sub.add_parser("publish", help="write the student edition (lectures, released assignments, the "
                         "student package, README, licence; no solutions, hidden tests or grader) into DIR")
    pub.add_argument("dest", type=Path, metavar="DIR")
    pub.add_argument("--force", action="store_true", help="replace what DIR holds (its .git is kept)")
    pub.add_argument("--pretrained", type=Path, metavar="PATH", help="exp2's 5-epoch checkpoint to publish with its "
                     "sha256 (default: make pretrain's build/pretrain/resnet20_epoch5.pth, when it exists)")

    d = sub.add_parser("demo", help="release, grade a demo class of good and broken submissions, report")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--cell-timeout", type=int, help="cap on any cell's seconds (default: the budgets measured "
                   "on each solution, at most 600 s)")
    d.add_argument("--no-isolation", action="store_true", help="grade the demo class unsandboxed")
    return p


def main(argv: list[str] | None = None) -> int:
    from autograder.duedates import ScheduleError

    try:
        return _main(argv)
    except ScheduleError as err:   # schedule.toml or a --submitted-at file that cannot be applied: one line
        print(f"error: {err}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "no_isolation", False):
        import os

        os.environ["COURSE_ISOLATION"] = "0"
    if args.command == "demo":
        from autograder.demo import run_demo

        course = Course.open()
        root = Path(args.course).resolve() if args.course else course.repo / "build" / "demo"
        return run_demo(course.repo, root, workers=args.workers, cell_timeout=args.cell_timeout)

    course = Course.open(root=args.course, db_url=args.db_url)
    if args.command == "publish":
        from autograder.publish import PublishError, publish

        try:
            files = publish(course, args.dest, force=args.force, pretrained=args.pretrained)
        except PublishError as err:
            print(f"publish failed: {err}", file=sys.stderr)
            return 1
        print(f"wrote the student edition to {args.dest.resolve()} ({len(files)} files); commit and push it to "
              "the repository named in pyproject.toml's [tool.dlcourse]")
        return 0
    if args.command not in ("collect", "mutate") and not getattr(args, "check", False):
        course.check_gradebook()  # a gradebook server that is down or misnamed: one clear line, now
    if args.command == "release":
        from autograder.colab import stamp_repository
        from autograder.release import ReleaseError, check_release, release

        try:
            if args.check:
                problems = stamp_repository(course.repo, check=True) + check_release(course)
                for line in problems:
                    print(line)
                print("assignments/ matches solutions/" if not problems else f"{len(problems)} problem(s)")
                return 1 if problems else 0
            for line in stamp_repository(course.repo):  # Colab badges, setup and self-check cells, README links
                print(line)
            for path in release(course, args.assignments or None):
                print(f"released {path}")
        except ReleaseError as err:
            print(f"release failed: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "collect":
        from autograder.collect import collect

        pairs = collect(course, args.source, args.assignment, args.submitted_at, args.lms, args.roster)
        print(f"collected {len(pairs)} submission(s) into {course.submitted()}")
        return 0
    if args.command == "autograde":
        from autograder.grade import Autograder
        from autograder.reports import score_table

        if not course.is_sqlite:  # a shared gradebook: several processes, maybe on several machines
            course.register_students(sorted({s for a in args.assignments or course.assignments()
                                             for s in course.students(a) if not args.student or s in args.student}))
        grader = Autograder(course, workers=args.workers, cell_timeout=args.cell_timeout, force=args.force)

        def stop(signum, frame):  # `kill` or a scheduler's SIGTERM: stop the way Ctrl+C does
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            results = grader.run(args.assignments or None, args.student)
        except KeyboardInterrupt:
            print("autograde interrupted: the submissions graded so far are recorded; run the same command "
                  "again to grade the rest", file=sys.stderr)
            return 130
        print(score_table(course, results))
        failed = [r for r in results if r.status == "failed"]
        refused = {r.assignment: r.reason for r in results if r.status == "refused"}
        for assignment, reason in sorted(refused.items()):
            print(f"NOT GRADED {assignment}: {reason}")
        n_refused = sum(r.status == "refused" for r in results)
        print(f"{len(results) - len(failed) - n_refused} graded, {len(failed)} failed (logged with reasons; scored zero)"
              + (f", {n_refused} not graded: their assignment's solution fails on this machine" if n_refused else ""))
        if refused:
            return 1
        if grader.isolation_mode:
            print(f"grading {grader.isolation_mode}")
        return 0
    if args.command == "feedback":
        from autograder.feedback import generate_feedback

        files = generate_feedback(course, args.assignments or None)
        print(f"wrote {len(files)} feedback file(s) under {course.feedback_dir()}")
        return 0
    if args.command == "export":
        from autograder.reports import export_grades, pending_manual

        print(f"wrote {export_grades(course, args.to.resolve())}")
        pending = pending_manual(course)
        if pending:
            points = sum(pending.values())
            print(f"warning: {len(pending)} submission(s) have written answers not graded yet ({points:g} points, "
                  "counted as 0 in 'score'; column pending_written_points): grade them in the formgrader "
                  "(make lab, then Nbgrader > Formgrader > Manual Grading) and export again", file=sys.stderr)
        return 0
    if args.command == "mutate":
        from autograder import mutate

        operators = [o.strip() for o in args.operators.split(",") if o.strip()] if args.operators else None
        try:
            if args.report:
                return mutate.rewrite_report(course, args.out)
            if args.list:
                for line in mutate.list_mutants(course, args.assignments or None, operators):
                    print(line)
                return 0
            results, _ = mutate.run(course, args.assignments or None, operators, args.limit, args.workers, args.out,
                                    args.all_tests, args.free_cells, args.mutant)
        except ValueError as err:
            print(f"mutate: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        return 1 if any(r.error for r in results) else 0
    if args.command == "evaluate":
        from autograder import evaluate

        return evaluate.cli(course, args.assignment, args.student, args.data, args.unverified_data, args.device)
    if args.command == "lab":
        import os

        course.write_nbgrader_config()   # a course root apart from the repository: nbgrader's apps read this
        argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={course.root}", *args.lab_args]
        os.chdir(course.root)
        os.execv(sys.executable, argv)
    if args.command == "report":
        from autograder.reports import write_report

        from autograder.dashboard import write_dashboard

        csv_path, html_path, text = write_report(course)
        print(text)
        print(f"\nwrote {csv_path}, {html_path} and the class dashboard {write_dashboard(course)}")
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
