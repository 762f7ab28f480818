"""The instructor's loop in a real browser: autograde, grade a written answer in the formgrader, export.

A course root kept apart from the repository is autograded; ``course.write_nbgrader_config()`` (what
``python -m autograder --course DIR lab`` does) lets nbgrader's formgrader, in a throwaway
``jupyter lab``, find it. Chromium opens the solution's submission, gives its written answer 1.5 of
its 2 points, and the exported CSV must then show the points and nothing pending.
"""
from __future__ import annotations

import csv

import nbformat
import pytest

from autograder.collect import collect
from autograder.course import Course
from autograder.grade import Autograder
from autograder.release import release
from autograder.reports import export_grades, pending_manual
from conftest import REPO, read
from test_browser import SCREENSHOTS, formgrader_for, playwright_chromium, submission_id  # noqa: F401  (a fixture)

ASSIGNMENT = "01_backprop"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
WRITTEN = "written_hidden_size"
MATHJAX_STUB = ("window.MathJax = {Hub: {Config() {}, Queue() {}, Typeset() {}, Register: {StartupHook() {}},"
                " Startup: {signal: {Interest(f) { setTimeout(() => f('End'), 0); }}}}};")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("manual") / "course"
    course = Course.open(root=root, repo=REPO, db_url=f"sqlite:///{root / 'gradebook.db'}")
    release(course, [ASSIGNMENT])
    inbox = root.parent / "inbox"
    (inbox / "student" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(read(SOLUTION), str(inbox / "student" / ASSIGNMENT / SOLUTION.name))
    collect(course, inbox)
    Autograder(course, workers=1, show_progress=False).run()
    return course


@pytest.fixture(scope="module")
def formgrader(graded, tmp_path_factory):
    with formgrader_for(graded, tmp_path_factory.mktemp("lab")) as server:
        yield server


def _row(course, tmp_path) -> dict:
    rows = list(csv.DictReader(export_grades(course, tmp_path / "grades.csv").open()))
    return next(r for r in rows if r["student_id"] == "student" and r["assignment"] == ASSIGNMENT)


def test_written_answer_graded_in_the_formgrader_reaches_the_export(graded, formgrader, playwright_chromium, tmp_path):
    """Before: 2 points pending and not in the score. After 1.5 points in the formgrader: in the score, none pending."""
    before = _row(graded, tmp_path)
    assert float(before["pending_written_points"]) == 2.0 and pending_manual(graded)
    submission = submission_id(graded, "student")
    page = playwright_chromium.new_page(viewport={"width": 1280, "height": 900})
    # the token in the page's URL does not reach the formgrader's own API calls: the header does
    page.set_extra_http_headers({"Authorization": f"token {formgrader.token}"})
    problems = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    # Offline (CI), the CDN's MathJax cannot load and the formgrader's own script then stops at its
    # first MathJax call; a stand-in with the two calls it makes lets it run (math is not rendered).
    page.route("**/mathjax/**", lambda route: route.fulfill(content_type="application/javascript", body=MATHJAX_STUB))
    try:
        page.goto(f"{formgrader.url}/formgrader/submissions/{submission}/?token={formgrader.token}", wait_until="load")
        score = page.locator(f"input.score#{WRITTEN}")
        score.wait_for(timeout=120_000)
        # the score box is in the page's HTML; it saves only once the grades are fetched and bound to it
        page.wait_for_function("() => window.formgrader && formgrader.grades && formgrader.grades.loaded",
                               timeout=60_000)
        score.scroll_into_view_if_needed()
        with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT",
                                  timeout=60_000) as saved:
            score.click()
            score.fill("1.5")
            score.dispatch_event("change")                   # what leaving the field does: the formgrader saves
        assert saved.value.ok, f"the formgrader did not save the score: HTTP {saved.value.status}; {problems}"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "formgrader_manual_grade.png"), full_page=True)
    except Exception:
        print("\n".join(problems))
        print(page.evaluate("() => [typeof formgrader, typeof Backbone, typeof MathJax, typeof $,"
                            " window.formgrader && formgrader.loaded, window.formgrader && !!formgrader.grades]"))
        raise
    finally:
        page.close()
    after = _row(graded, tmp_path)
    assert float(after["pending_written_points"]) == 0.0, after
    assert float(after["score"]) == pytest.approx(float(before["score"]) + 1.5), (before, after)
