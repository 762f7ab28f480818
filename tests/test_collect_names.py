"""Hand-in that scores: notebooks named as Colab, browsers and LMSs name them are graded as the release's."""
from __future__ import annotations

import zipfile

from autograder.collect import collect, notebook_stem, place_notebooks
from autograder.course import Course
from autograder.grade import Autograder
from autograder.release import release
from autograder.reports import scores
from conftest import REPO

ASSIGNMENT = "01_backprop"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def test_names_that_stand_for_the_release_notebook():
    """Colab's "Copy of", a browser's " (1)", ".ipynb.json" and macOS's " copy" map to the notebook; others do not."""
    for name in ("Copy of 01_backprop.ipynb", "01_backprop (1).ipynb", "01_backprop.ipynb.json",
                 "Copy of 01_backprop (2).ipynb.json", "01_backprop copy 2.ipynb", "01_Backprop.ipynb"):
        assert notebook_stem(name) == "01_backprop", name
    assert notebook_stem("01_backprop_v2.ipynb") == "01_backprop_v2"
    assert notebook_stem("model.pth") is None and notebook_stem("notes.txt") is None


def test_placing_keeps_the_exact_name_and_reports_what_it_cannot_place(tmp_path):
    """The release's own name wins over a copy; an unknown notebook beside others is reported by name, not graded."""
    both = tmp_path / "both"
    both.mkdir()
    (both / "01_backprop.ipynb").write_text("exact")
    (both / "Copy of 01_backprop.ipynb").write_text("copy")
    notes = place_notebooks(both, ["01_backprop.ipynb"], "s/a")
    assert (both / "01_backprop.ipynb").read_text() == "exact" and (both / "Copy of 01_backprop.ipynb").exists()
    assert len(notes) == 1 and "'01_backprop.ipynb' is graded" in notes[0]

    two = tmp_path / "two"
    two.mkdir()
    (two / "a.ipynb").write_text("{}")
    (two / "b.ipynb").write_text("{}")
    notes = place_notebooks(two, ["01_backprop.ipynb"], "s/a")
    assert sorted(p.name for p in two.iterdir()) == ["a.ipynb", "b.ipynb"]
    assert any("'a.ipynb'" in n and "not graded" in n for n in notes)
    assert any("'b.ipynb'" in n and "not graded" in n for n in notes)
    assert any("no '01_backprop.ipynb' handed in" in n for n in notes)


def test_renamed_submissions_in_an_lms_zip_get_full_marks(tmp_path, capsys):
    """A perfect notebook saved as "Copy of …", "… (1).ipynb.json" or under another name, in a zip of folders, a
    Canvas or a Moodle download, scores full marks; what cannot be placed is reported by name."""
    course = Course.open(root=tmp_path / "course", repo=REPO, db_url=f"sqlite:///{tmp_path / 'gb.db'}")
    release(course, [ASSIGNMENT])
    text = SOLUTION.read_text(encoding="utf-8")
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"submissions/alice/{ASSIGNMENT}/Copy of {ASSIGNMENT}.ipynb", text)
        zf.writestr(f"submissions/bob/{ASSIGNMENT}/{ASSIGNMENT} (1).ipynb.json", text)
        zf.writestr(f"submissions/carol/{ASSIGNMENT}/my homework.ipynb", text)
        zf.writestr(f"submissions/dave/{ASSIGNMENT}/draft.ipynb", text)
        zf.writestr(f"submissions/dave/{ASSIGNMENT}/final.ipynb", text)
    assert sorted(s for s, _ in collect(course, archive)) == ["alice", "bob", "carol", "dave"]
    printed = capsys.readouterr().out
    for expected in ("alice/01_backprop: 'Copy of 01_backprop.ipynb' renamed to '01_backprop.ipynb'",
                     "bob/01_backprop: '01_backprop (1).ipynb.json' renamed to '01_backprop.ipynb'",
                     "carol/01_backprop: 'my homework.ipynb', its only notebook, renamed to '01_backprop.ipynb'",
                     "dave/01_backprop: cannot tell which notebook 'draft.ipynb' is"):
        assert expected in printed, printed

    # a Canvas download: flat files "<name>[_LATE]_<user id>_<attachment id>_<file>"; the latest upload counts
    blank = (course.release_dir / ASSIGNMENT / SOLUTION.name).read_text(encoding="utf-8")
    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as zf:
        zf.writestr(f"doejane_4021_98765_{ASSIGNMENT}.ipynb", blank)                        # first upload: blank
        zf.writestr(f"doejane_LATE_4021_98790_Copy of {ASSIGNMENT}-1.ipynb", text)          # re-upload: perfect
        zf.writestr(f"leeann_77_98800_Copy of {ASSIGNMENT}.ipynb", text)
        zf.writestr("doejane_4021_98791_notes.txt", "not a notebook")
        zf.writestr("readme.txt", "not named as Canvas names submissions")
    assert sorted(s for s, _ in collect(course, canvas)) == ["4021", "77"]
    printed = capsys.readouterr().out
    assert "Canvas download of 01_backprop" in printed and "'readme.txt' is not named" in printed, printed
    assert "uploaded '01_backprop' more than once" in printed and "(the LMS marks it late)" in printed, printed
    assert sorted(p.name for p in course.submitted("4021", ASSIGNMENT).iterdir()) == \
        sorted([f"{ASSIGNMENT}.ipynb", "notes.txt", "timestamp.txt"])

    # a Moodle download: a folder per submission; a roster maps the LMS's ids to the course's
    moodle = tmp_path / "moodle.zip"
    with zipfile.ZipFile(moodle, "w") as zf:
        zf.writestr(f"Eve Moss_3301_assignsubmission_file_/{ASSIGNMENT} (1).ipynb", text)
        zf.writestr("Eve Moss_3301_assignsubmission_onlinetext_/onlinetext.html", "<p>hi</p>")
        zf.writestr(f"Nobody Known_9999_assignsubmission_file_/{ASSIGNMENT}.ipynb", text)
    roster = tmp_path / "roster.csv"
    roster.write_text("lms_id,student_id\n3301,eve\n")
    assert collect(course, moodle, roster=roster) == [("eve", ASSIGNMENT)]
    printed = capsys.readouterr().out
    assert "LMS id 9999 is not in the roster" in printed and "online text" in printed, printed

    results = {r.student: r for r in Autograder(course, workers=1, show_progress=False).run()}
    got = scores(course)
    for student in ("alice", "bob", "carol", "4021", "77", "eve"):
        auto, auto_max, _ = got[(ASSIGNMENT, student)]
        assert results[student].status == "graded" and auto == auto_max > 0, (student, results[student], got)
    assert results["dave"].status == "failed" or got.get((ASSIGNMENT, "dave"), (0,))[0] == 0
