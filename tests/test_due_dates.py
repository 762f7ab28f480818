"""Due dates and late penalties: the due date and policy of schedule.toml reach nbgrader's gradebook, the
submission times are the trusted ones collect recorded, and an on-time and a late perfect submission are
penalised exactly as configured (in the gradebook and in grades.csv); a student's own timestamp.txt,
however early it claims, changes nothing."""
from __future__ import annotations

import csv
import os
import pwd
import shutil
import time
from datetime import datetime, timedelta, timezone

import pytest
from nbgrader.api import Gradebook

from autograder import duedates
from autograder.collect import SAFE_NAME, collect
from autograder.course import Course
from autograder.grade import Autograder, GradeResult, _stage
from autograder.release import release
from autograder.reports import export_grades, score_table
from conftest import REPO

ASSIGNMENT = "01_backprop"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
SOLUTION = REPO / "solutions" / ASSIGNMENT / NOTEBOOK
FORGED = "2000-01-01 00:00:00.000000 UTC"   # what a student's own timestamp.txt claims
# Ten days before the run, so that a submission timed only by its collection is late (and capped).
DUE = (datetime.now(timezone.utc) - timedelta(days=10)).replace(microsecond=0, second=0)
SHANGHAI = timezone(timedelta(hours=8))     # Asia/Shanghai has had no daylight saving since 1991


def _schedule(due: datetime = DUE) -> str:
    return ('timezone = "Asia/Shanghai"\n'
            '[late_penalty]\nmethod = "per_day"\npercent_per_day = 10\nmax_percent = 50\n'
            f'[due]\n"{ASSIGNMENT}" = {due.astimezone(SHANGHAI).isoformat()}\n')


def _course(root) -> Course:
    course = Course.open(root=root, repo=REPO, db_url=f"sqlite:///{root / 'gradebook.db'}")
    release(course, [ASSIGNMENT])
    return course


def _hand_in(inbox, student: str, forged: bool = False) -> None:
    folder = inbox / student / ASSIGNMENT
    folder.mkdir(parents=True)
    shutil.copy(SOLUTION, folder / NOTEBOOK)
    if forged:
        (folder / "timestamp.txt").write_text(FORGED)


@pytest.fixture(scope="module")
def late_class(tmp_path_factory):
    """One perfect notebook handed in on time, one 25 hours late (with a timestamp.txt claiming 2000), and
    one with no LMS time (so only its collection, ten days after the due date), graded once together."""
    root = tmp_path_factory.mktemp("due") / "course"
    course = _course(root)
    (root / "schedule.toml").write_text(_schedule())
    inbox = root.parent / "inbox"
    _hand_in(inbox, "ontime")
    _hand_in(inbox, "late", forged=True)
    _hand_in(inbox, "forger", forged=True)
    lms = root.parent / "lms-times.csv"
    on_time = (DUE - timedelta(hours=1)).astimezone(SHANGHAI)
    late = (DUE + timedelta(hours=25)).astimezone(SHANGHAI).replace(tzinfo=None)   # in schedule.toml's zone
    lms.write_text(f"student,assignment,submitted_at\nontime,{ASSIGNMENT},{on_time.isoformat()}\n"
                   f"late,{ASSIGNMENT},{late.isoformat(sep=' ')}\nnobody,{ASSIGNMENT},{on_time.isoformat()}\n")
    before = datetime.now(timezone.utc)
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        assert sorted(collect(course, inbox, submitted_at=lms)) == [("forger", ASSIGNMENT), ("late", ASSIGNMENT),
                                                                     ("ontime", ASSIGNMENT)]
    after = datetime.now(timezone.utc)
    results = Autograder(course, workers=2, cell_timeout=120, show_progress=False, budgets=False).run()
    return course, {r.student: r for r in results}, out.getvalue(), (before, after)


def _submission(course, student):
    with Gradebook(course.gradebook_url()) as gb:
        sub = gb.find_submission(ASSIGNMENT, student)
        return {"timestamp": sub.timestamp, "duedate": sub.duedate, "seconds_late": sub.total_seconds_late,
                "penalty": sub.late_submission_penalty, "score": sub.score, "max": sub.max_score,
                "auto": sum(g.score or 0 for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code")}


def test_collect_says_which_time_it_used_and_warns_of_collection_times(late_class):
    """Each submission's time is printed with its source; the one timed only by its late collection is named."""
    _, _, printed, _ = late_class
    assert f"ontime/{ASSIGNMENT}: submitted" in printed and "lms-times.csv line 2 (on time)" in printed, printed
    assert "lms-times.csv line 3 (late by 1 day, 1:00:00)" in printed, printed
    assert f"forger/{ASSIGNMENT}: submitted" in printed and "received by collect (late by 10 days" in printed
    (warning,) = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert warning.split("count as late: ")[1].split(". ")[0] == f"forger/{ASSIGNMENT}", warning
    assert f"late/{ASSIGNMENT}: its own timestamp.txt was replaced" in printed
    assert "1 row(s) name no submission collected now" in printed and f"nobody/{ASSIGNMENT}" in printed


def test_on_time_keeps_full_marks_and_late_loses_what_is_configured(late_class):
    """In the gradebook: the due date of schedule.toml, the LMS's times, no penalty on time, 10% per started
    day late (25 h: 20%), capped at 50% (ten days); every submission got all its autograded points."""
    course, results, _, (before, after) = late_class
    assert all(r.status == "graded" for r in results.values()), results
    due = DUE.replace(tzinfo=None)
    ontime, late, forger = (_submission(course, s) for s in ("ontime", "late", "forger"))
    for sub in (ontime, late, forger):
        assert sub["duedate"] == due and sub["auto"] == 19, sub
    assert ontime["timestamp"] == due - timedelta(hours=1) and ontime["seconds_late"] == 0
    assert ontime["penalty"] == 0 and ontime["score"] == 19
    assert late["timestamp"] == due + timedelta(hours=25) and late["seconds_late"] == 25 * 3600
    assert late["penalty"] == pytest.approx(0.20 * 19)
    # the student's timestamp.txt said 2000: its time is when collect received it instead, ten days late
    received = forger["timestamp"].replace(tzinfo=timezone.utc)
    assert before <= received <= after, forger
    assert forger["penalty"] == pytest.approx(0.50 * 19)
    table = score_table(course, list(results.values()))
    assert "late by 1 day, 1:00:00: -3.8 points" in table and "late by 10 days" in table, table


def test_grades_csv_has_the_penalties_and_follows_written_answers_graded_later(late_class, tmp_path):
    """grades.csv: score = raw score - penalty; once the written answers are graded by hand, the late
    submission's penalty is 20% of its new score at the next export, without regrading."""
    course, _, _, _ = late_class

    def export():
        path = export_grades(course, tmp_path / "grades.csv")
        with path.open(newline="") as f:
            return {row["student_id"]: row for row in csv.DictReader(f)}

    rows = export()
    assert rows["ontime"]["duedate"].startswith(str(DUE.replace(tzinfo=None)))
    for student, penalty in (("ontime", 0.0), ("late", 3.8), ("forger", 9.5)):
        row = rows[student]
        assert float(row["raw_score"]) == 19 and float(row["late_submission_penalty"]) == pytest.approx(penalty)
        assert float(row["score"]) == pytest.approx(19 - penalty), row
    with Gradebook(course.gradebook_url()) as gb:   # the written answers (2 points) graded in the formgrader
        for student in ("ontime", "late"):
            for nb in gb.find_submission(ASSIGNMENT, student).notebooks:
                for grade in nb.grades:
                    if grade.cell.cell_type != "code":
                        grade.manual_score = grade.max_score
        gb.db.commit()
    rows = export()
    assert float(rows["ontime"]["score"]) == 21 and float(rows["ontime"]["late_submission_penalty"]) == 0
    assert float(rows["late"]["raw_score"]) == 21
    assert float(rows["late"]["late_submission_penalty"]) == pytest.approx(0.20 * 21)
    assert float(rows["late"]["score"]) == pytest.approx(21 * 0.8)


def test_files_not_recorded_by_collect_get_no_time(late_class, tmp_path):
    """Grading hands nbgrader the time collect recorded for these very files; files copied in another way
    (as `nbgrader collect` does, with the student's own timestamp.txt) get none, and that is reported."""
    course, _, _, _ = late_class
    staging = tmp_path / "staging"
    events, readable = _stage(course, GradeResult("late", ASSIGNMENT), staging, None, True)
    assert readable == 1 and not events
    assert (staging / "late" / ASSIGNMENT / "timestamp.txt").read_text() == duedates.stamp(
        DUE + timedelta(hours=25))
    folder = course.submitted("late", ASSIGNMENT)
    (folder / "timestamp.txt").write_text(FORGED)   # only the time changed: still the recorded time
    _stage(course, GradeResult("late", ASSIGNMENT), staging, None, True)
    assert (staging / "late" / ASSIGNMENT / "timestamp.txt").read_text() != FORGED
    (folder / NOTEBOOK).write_text((folder / NOTEBOOK).read_text() + " ")   # other files: no recorded time
    try:
        events, _ = _stage(course, GradeResult("late", ASSIGNMENT), staging, None, True)
    finally:
        shutil.copy(SOLUTION, folder / NOTEBOOK)
    assert not (staging / "late" / ASSIGNMENT / "timestamp.txt").exists()
    assert any("no submission time recorded by collect" in e for e in events), events


def test_an_exchange_entry_is_timed_by_its_last_change_on_disk(tmp_path, capsys):
    """From nbgrader's exchange inbox: the latest entry by its ctime (not by the time in its name, nor by
    its timestamp.txt, both written by the student); an entry naming another student than its owner is refused."""
    me = pwd.getpwuid(os.getuid()).pw_name
    if not SAFE_NAME.match(me) or me == "mallory":
        pytest.skip(f"the user name {me!r} cannot be a student id here")
    course = Course.open(root=tmp_path / "course", repo=REPO, db_url=f"sqlite:///{tmp_path / 'gb.db'}")
    (course.root / "schedule.toml").write_text(_schedule())
    inbox = tmp_path / "exchange" / "dl-course" / "inbound"
    before = datetime.now(timezone.utc)
    for name, text in ((f"{me}+{ASSIGNMENT}+2030-01-01 00:00:00.000000 UTC+aaa", "first"),
                       (f"{me}+{ASSIGNMENT}+{FORGED}+bbb", "second"),
                       (f"mallory+{ASSIGNMENT}+{FORGED}+ccc", "not mallory's")):
        (inbox / name).mkdir(parents=True)
        (inbox / name / NOTEBOOK).write_text(text)
        (inbox / name / "timestamp.txt").write_text(name.split("+")[2])
        os.utime(inbox / name / NOTEBOOK, (0, 0))   # an mtime set back: its ctime moves forward all the same
        time.sleep(0.05)
    assert collect(course, inbox) == [(me, ASSIGNMENT)]
    after = datetime.now(timezone.utc)
    printed = capsys.readouterr().out
    assert "it names 'mallory' but" in printed and "1 earlier hand-in(s) in the exchange not taken" in printed
    assert (course.submitted(me, ASSIGNMENT) / NOTEBOOK).read_text() == "second"
    assert "its last change on disk (late by 10 days" in printed, printed
    when = duedates.recorded_time(course, me, ASSIGNMENT)
    assert before <= when <= after, when
    assert (course.submitted(me, ASSIGNMENT) / "timestamp.txt").read_text() == duedates.stamp(when)


def test_penalty_policies():
    """per_day counts started days and stops at its cap; zero takes everything; nothing on time."""
    per_day = duedates.Policy("per_day", 10, 50)
    assert per_day.penalty(20, 0) is None
    assert per_day.penalty(20, 1) == pytest.approx(2) and per_day.penalty(20, 86400) == pytest.approx(2)
    assert per_day.penalty(20, 86401) == pytest.approx(4) and per_day.penalty(20, 30 * 86400) == pytest.approx(10)
    assert duedates.Policy("zero").penalty(17, 5) == 17 and duedates.Policy("none").penalty(17, 5) is None


def test_schedule_is_checked(tmp_path):
    """The committed schedule.toml loads; a misspelt assignment, a date without a time or a zone, or an
    unknown method is refused with the file named; no schedule.toml changes nothing."""
    names = Course.open(repo=REPO, root=REPO).assignments()
    committed = duedates.load_schedule(REPO, names)
    assert committed.path is not None and set(committed.due) <= set(names)
    assert duedates.load_schedule(tmp_path, names).path is None
    course = Course.open(root=tmp_path, repo=REPO, db_url=f"sqlite:///{tmp_path / 'gb.db'}")
    assert duedates.apply_schedule(course) == [] and not (tmp_path / "gb.db").exists()
    for text, why in (('[due]\n"01_backprob" = 2027-03-01T23:59:00+08:00\n', "no assignment"),
                      ('[due]\n"01_backprop" = 2027-03-01\n', "a date without a time"),
                      ('[due]\n"01_backprop" = 2027-03-01T23:59:00\n', "has no time zone"),
                      ('[late_penalty]\nmethod = "half"\n', "method"),
                      ('[late]\nmethod = "zero"\n', "unknown key")):
        (tmp_path / "schedule.toml").write_text(text)
        with pytest.raises(duedates.ScheduleError, match=why) as err:
            duedates.load_schedule(tmp_path, names)
        assert "schedule.toml" in str(err.value)


def test_nbgraders_own_apps_apply_the_same_policy(late_class):
    """Plain `nbgrader autograde` and the formgrader's button, configured by the course root's
    nbgrader_config.py, penalise with this course's schedule.toml through the same plugin."""
    from nbgrader.preprocessors import AssignLatePenalties
    from traitlets.config.loader import PyFileConfigLoader

    course, _, _, _ = late_class
    course.write_nbgrader_config()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
    late = AssignLatePenalties(config=config)
    late.init_plugin()
    assert isinstance(late.plugin_inst, duedates.SchedulePenalty)
    assert late.plugin_inst.late_submission_penalty("late", 19, 25 * 3600) == pytest.approx(3.8)
