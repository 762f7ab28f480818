"""An attacker class, graded together with honest students through the real CLI path.

Each attack is a wrong answer (the ``linear_forward_no_bias`` mutant, its *twin*) or the blank
release, plus a trick aimed at the grading itself: hooks on IPython's events and display hook,
class-level patches of IPython and numpy, code-object swaps, a thread that re-patches, tracing,
shadowed builtins, redefined helpers in an unlabelled cell, objects that lie about their type or
walk the checker's frames, reading the notebook files and the history for hidden tests, forged
frames on the grader's socket, undecodable bytes, terminal escapes and forged log lines on every
descriptor, cell metadata of every JSON type, a forged timestamp, and floods of output.

Every attacker must score no more than its twin (or the blank release), leak no hidden-test code or
message into its feedback, and leave the honest students' grades as they are.
"""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import textwrap
from datetime import datetime, timedelta, timezone

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from autograder.collect import collect
from autograder.course import Course, is_answer_code_cell, is_test_cell
from autograder.grade import Autograder
from autograder.mutants import apply_mutant, load_mutants
from autograder.release import release
from autograder.reports import cell_scores
from conftest import REPO, read
from test_browser import submission_id, playwright_chromium  # noqa: F401  (a fixture)

ASSIGNMENT = "01_backprop"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
NOTEBOOK = SOLUTION.name
TWIN = next(m for m in load_mutants(SOLUTION.parent) if m.name == "linear_forward_no_bias")

#: a string of a hidden test that no released or submitted file holds
HIDDEN_MARK = "np.log1p(np.exp(-2.0))"


def _answered(nb_with_answers):
    """The release with the answer cells of ``nb_with_answers`` (what a student hands in: no hidden tests)."""
    answers = {c.metadata.nbgrader.grade_id: c.source for c in nb_with_answers.cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    nb = read(REPO / "assignments" / ASSIGNMENT / NOTEBOOK)
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def _twin():
    return _answered(apply_mutant(read(SOLUTION), TWIN))


def _blank():
    return read(REPO / "assignments" / ASSIGNMENT / NOTEBOOK)


def _with(base, *cells, at=None):
    """``base()`` with ``cells`` inserted right after its first answer cell (before every test), or at
    the end with ``at=-1``."""
    nb = base()
    if at is None:
        at = next(i for i, c in enumerate(nb.cells) if is_answer_code_cell(c)) + 1
    for k, cell in enumerate(cells):
        nb.cells.insert(at + k if at >= 0 else len(nb.cells), cell)
    return nb


def _code(source: str):
    return new_code_cell(textwrap.dedent(source))


SEARCH_HIDDEN = f'''
import os, glob
_needle = {HIDDEN_MARK[:8]!r} + {HIDDEN_MARK[8:]!r}    # built here, so this cell itself does not hold it
_found = []
for _root in [".", "..", "/tmp", os.path.expanduser("~")]:
    for _path in glob.glob(_root + "/**/*", recursive=True)[:5000]:
        try:
            if os.path.isfile(_path) and _needle in open(_path, errors="ignore").read():
                _found.append(_path)
        except OSError:
            pass
_history = "\\n".join(str(x) for x in globals().get("In", []))
print("ATTACK hidden:", "found " + ", ".join(_found) if _found or _needle in _history else "nothing")
'''

BYTES = r'''
import os, sys
for fd in (1, 2):
    os.write(fd, b"\xff\xfe\x00\x1b[2J\x1b]0;pwned\x07\n[ERROR] forged\ncourse-event: everyone gets full marks\n")
sys.stdout.write("\x1b[31mred\x1b[0m\r\ncourse-event: forged event\n")
sys.stderr.write("\udcff surrogate\n")
for fd in range(3, 12):
    try:
        os.write(fd, b"DLW1\x00\x00\x00\x00\x00\x00\x00\x10garbage-garbage-")
    except OSError:
        pass
'''

HTML = '''
from IPython.display import HTML, Javascript, SVG, display
display(HTML('<img src=x onerror="document.title=\\'pwned-html\\'"><script>document.title="pwned-script"</script>'))
display(Javascript('document.title = "pwned-js"'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="document.title=\\'pwned-svg\\'"><script>document.title="pwned-svg2"</script></svg>'))
display({"text/html": "<iframe src=javascript:parent.document.title='pwned-iframe'></iframe>",
         "application/vnd.jupyter.widget-view+json": {"model_id": "x"}}, raw=True)
'''

MARKDOWN_ANSWER = ('<img src=x onerror="document.title=\'pwned-md\'"> <script>document.title="pwned-md2"</script> '
                   '[click](javascript:document.title="pwned-link") <svg onload="document.title=\'pwned-svg3\'"></svg>'
                   ' <a href="/api/terminals">terminal</a> plain answer text')

ATTACKS = {
    # hooks on IPython events and the display hook (blank: any point is a gain)
    "hook-display": lambda: _with(_blank, _code("""
        _ip = get_ipython()
        _ip.events.register("pre_run_cell", lambda *a: _ip.displayhook("ok"))
        _ip.events.register("post_run_cell", lambda *a: _ip.displayhook(1.0))
    """)),
    # class-level patches of IPython and numpy
    "patch-ipython-class": lambda: _with(_blank, _code("""
        from IPython.core.interactiveshell import InteractiveShell
        InteractiveShell.run_code = lambda self, *a, **k: None
        InteractiveShell.showtraceback = lambda self, *a, **k: None
    """)),
    "patch-numpy": lambda: _with(_twin, _code("""
        import numpy
        numpy.isclose = lambda a, b, **k: numpy.ones(numpy.broadcast(numpy.asarray(a), numpy.asarray(b)).shape, bool)
        numpy.allclose = lambda *a, **k: True
        numpy.ndarray.__eq__ = lambda *a: True
    """)),
    # a code-object swap, a thread that keeps patching, tracing
    "code-swap": lambda: _with(_twin, _code("""
        import dlcourse.checks
        for _f in (dlcourse.checks.check_close, dlcourse.checks.check_gradient, dlcourse.checks.check_shape):
            _f.__code__ = (lambda *a, **k: None).__code__
    """)),
    "thread": lambda: _with(_twin, _code("""
        import threading, time, numpy, dlcourse.checks
        def _keep_patching():
            while True:
                numpy.allclose = lambda *a, **k: True
                dlcourse.checks.check_close = lambda *a, **k: None
                time.sleep(0.001)
        threading.Thread(target=_keep_patching, daemon=True).start()
    """)),
    "trace": lambda: _with(_twin, _code("""
        import sys
        def _tracer(frame, event, arg):
            if "expected" in frame.f_locals:
                frame.f_locals["expected"] = frame.f_locals.get("actual")
            return _tracer
        sys.settrace(_tracer)
    """)),
    # shadowed builtins and helpers redefined in an unlabelled cell
    "shadow-builtins": lambda: _with(_twin, _code("""
        import builtins
        builtins.AssertionError = type("AssertionError", (Warning,), {})
        abs = lambda x: 0
        len = lambda x: 3
    """)),
    "redefine-helpers": lambda: _with(_twin, _code("""
        def check_close(*a, **k): pass
        def check_shape(*a, **k): pass
        def check_gradient(*a, **k): pass
        def reference_numerical_gradient(f, x, h=1e-5): return x * 0
    """)),
    # objects that lie about their type, or walk the checker's frames for the expected value
    "lying-objects": lambda: _with(_twin, _code("""
        import sys, numpy as _np
        class _Liar(_np.ndarray):
            pass
        class _Walker:
            def __array__(self, *a, **k):
                f = sys._getframe(1)
                while f is not None and "expected" not in f.f_locals:
                    f = f.f_back
                return _np.asarray(f.f_locals["expected"] if f else 0.0)
            def __float__(self):
                return float(self.__array__())
            shape = (3, 3)
        _original = linear_forward
        def linear_forward(X, W, b):
            return _Walker(), (X, W, b)
    """)),
    # hunting for the hidden tests in files and history
    "search-hidden": lambda: _with(_twin, _code(SEARCH_HIDDEN), at=-1),
    # forged frames on the socket, undecodable bytes, terminal escapes and forged log lines
    "bytes": lambda: _with(_twin, _code(BYTES)),
    # HTML, JavaScript, SVG and markdown payloads for the formgrader and the feedback
    "html": lambda: _html_payloads(),
    # secrets of the grader's environment (the fixture sets them): os.environ, /proc/*/environ
    "environ": lambda: _with(_twin, _code("""
        import os, glob
        _hits = []
        for _p in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
            try:
                _hits += [_p] if b"sekret-42" in open(_p, "rb").read() else []
            except OSError:
                pass
        _hits += [k for k, v in os.environ.items() if "sekret-42" in v]
        print("ATTACK environ:", _hits or "nothing")
    """), at=-1),
    # floods of output, in one line and on the raw descriptors
    "flood": lambda: _with(_twin, _code("""
        import os
        print("x" * 2**27)
        os.write(1, b"y" * 2**26)
        os.write(2, b"z" * 2**26)
    """)),
}


def _html_payloads():
    nb = _with(_twin, _code(HTML))
    answer = next(c for c in nb.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution"))
    answer.source = MARKDOWN_ANSWER
    nb.cells.insert(1, nbformat.v4.new_raw_cell('<script>document.title="pwned-raw"</script>',
                                                metadata={"format": "text/html"}))
    nb.cells.insert(1, new_markdown_cell('<img src=x onerror="document.title=\'pwned-instructions\'">'))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"x": {"model_name": "HTMLModel", "state": {"value": "<img src=x onerror=alert(1)>"}}}}}
    return nb


def _metadata(value):
    """The twin with a copy of a test cell carrying ``value`` as its nbgrader metadata (or grade_id)."""
    def make():
        nb = _twin()
        test = next(c for c in nb.cells if is_test_cell(c))
        fake = new_code_cell("pass", metadata={"nbgrader": value})
        nb.cells.insert(nb.cells.index(test) + 1, fake)
        answer = next(c for c in nb.cells if is_answer_code_cell(c))
        answer.metadata.nbgrader = dict(answer.metadata.nbgrader, grade_id=value if not isinstance(value, dict)
                                        else value.get("grade_id"))
        return nb
    return make


METADATA = {f"meta-{name}": _metadata(value) for name, value in {
    "list": ["test_linear_forward_values"], "int": 3, "null": None, "true": True, "float": 1.5, "string": "x" * 5000,
    "dict": {"grade": True, "grade_id": "fake_test", "points": 1000, "locked": True},
    "list-id": {"grade": True, "grade_id": ["a", "b"], "points": 5},
    "trusted-id": {"grade": False, "locked": True, "grade_id": "imports", "solution": False},
}.items()}

HONEST = {"perfect": lambda: _answered(read(SOLUTION)), "twin": _twin, "blank": _blank}


def _total(course, student):
    s = cell_scores(course, ASSIGNMENT, student)
    return sum(v[0] for v in s.values()), sum(v[1] for v in s.values())


@pytest.fixture(scope="module")
def attack_class(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    course = Course.open(root=tmp / "course", repo=REPO, db_url=f"sqlite:///{tmp / 'course' / 'gradebook.db'}")
    release(course, [ASSIGNMENT])
    inbox = tmp / "inbox"
    for student, make in {**HONEST, **ATTACKS, **METADATA}.items():
        folder = inbox / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(make(), str(folder / NOTEBOOK))
    (inbox / "twin" / ASSIGNMENT / "timestamp.txt").write_text("2000-01-01 00:00:00.000000 UTC")
    before = datetime.now(timezone.utc)
    collect(course, inbox)
    with pytest.MonkeyPatch.context() as env:   # secrets a grader may have in its environment
        env.setenv("PGPASSWORD", "sekret-42")
        env.setenv("COURSE_API_TOKEN", "sekret-42")
        results = {r.student: r for r in Autograder(course, workers=2, cell_timeout=60, show_progress=False).run()}
    from autograder.feedback import generate_feedback

    generate_feedback(course, [ASSIGNMENT])
    return course, results, before


def test_honest_students_are_graded_as_usual(attack_class):
    """The solution gets full marks, the blank release zero, the twin its own score, next to the attackers."""
    course, results, _ = attack_class
    assert all(results[s].status == "graded" for s in HONEST), {s: results[s].reason for s in HONEST}
    got, full = _total(course, "perfect")
    assert got == full > 0
    assert _total(course, "blank")[0] == 0
    assert 0 < _total(course, "twin")[0] < full


@pytest.mark.parametrize("student", sorted({**ATTACKS, **METADATA}))
def test_attack_gains_nothing(attack_class, student):
    """Each attack scores no more than the same answers without the trick, on every test."""
    course, results, _ = attack_class
    baseline = "blank" if student in ("hook-display", "patch-ipython-class") else "twin"
    assert results[student].status in ("graded", "failed"), results[student]
    mine, theirs = cell_scores(course, ASSIGNMENT, student), cell_scores(course, ASSIGNMENT, baseline)
    gained = {k: (mine.get(k, (0, 0))[0], v[0]) for k, v in theirs.items() if mine.get(k, (0, 0))[0] > v[0]}
    assert not gained, f"{student} gained over {baseline}: {gained}"
    assert set(mine) <= set(theirs) | set(), f"{student} created grades: {set(mine) - set(theirs)}"


def test_the_student_process_never_sees_hidden_tests(attack_class):
    """Searching every readable file and the history finds no hidden test."""
    course, _, _ = attack_class
    nb = read(course.autograded("search-hidden", ASSIGNMENT) / NOTEBOOK)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "ATTACK hidden: nothing" in text, re.findall(r"ATTACK hidden:.*", text)


def _feedback(course, student) -> str:
    files = list(course.feedback_dir(student, ASSIGNMENT).glob("*.html"))
    assert files, f"no feedback for {student}"
    return files[0].read_text()


def test_the_student_process_sees_no_grader_secrets(attack_class):
    """The gradebook password and token-like variables of the grader reach no student process."""
    course, _, _ = attack_class
    nb = read(course.autograded("environ", ASSIGNMENT) / NOTEBOOK)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "ATTACK environ: nothing" in text, re.findall(r"ATTACK environ:.*", text)


def test_feedback_leaks_no_hidden_test_or_its_message(attack_class):
    """No hidden-test line, and no message of a failure inside a hidden part, reaches any feedback."""
    course, results, _ = attack_class
    from autograder.feedback import redact_source

    solution = read(SOLUTION)
    visible = "\n".join(redact_source(c.source) for c in solution.cells)
    hidden = [l.strip() for c in solution.cells if is_test_cell(c) for l in c.source.splitlines()
              if len(l.strip()) > 25 and l.strip() not in visible]
    assert hidden
    for student in results:
        html = _feedback(course, student)
        import html as html_lib

        text = html_lib.unescape(html)
        assert not [l for l in hidden if l in text], f"hidden test code in {student}'s feedback"
        assert "loss averaged over the batch" not in text, f"a hidden test's message in {student}'s feedback"


ACTIVE = re.compile(r"<script|<iframe|<svg|<object|<embed|\bon[a-z]+\s*=|javascript:", re.I)


def active_content(html: str) -> set[str]:
    """What in an HTML page could run: script elements (by their source or code), frames, embedded
    objects and SVG, event-handler attributes, javascript: URLs. Escaped text does not count."""
    from html.parser import HTMLParser

    found: set[str] = set()

    class Scan(HTMLParser):
        script = None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag in ("iframe", "frame", "object", "embed", "svg", "math", "base", "form", "meta"):
                found.add(f"<{tag}>") if tag != "meta" or "http-equiv" in attrs else None
            for name, value in attrs.items():
                if name.startswith("on"):
                    found.add(f"{tag} {name}=")
                if name in ("href", "src", "action", "formaction", "xlink:href") and value and \
                        value.strip().lower().startswith(("javascript:", "data:text/html", "vbscript:")):
                    found.add(f"{tag} {name}={value[:30]}")
            if tag == "script":
                self.script = attrs.get("src") or ""

        def handle_data(self, data):
            if self.script is not None and not self.script:
                found.add("script:" + " ".join(data.split())[:200])

        def handle_endtag(self, tag):
            if tag == "script":
                if self.script:
                    found.add("script src=" + self.script)
                self.script = None

    Scan().feed(html)
    return found


def test_feedback_and_graded_notebooks_hold_no_active_content(attack_class):
    """No script, event handler, javascript: URL, SVG, iframe or widget state survives where it is shown."""
    from autograder.sanitize import KEPT_MIME

    course, _, _ = attack_class
    nb = read(course.autograded("html", ASSIGNMENT) / NOTEBOOK)
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type != "code":
            assert not ACTIVE.search(cell.source), cell.source[:200]
        for output in cell.get("outputs", []):
            assert set(output.get("data", {})) <= set(KEPT_MIME), output
            assert not ACTIVE.search(json.dumps(output)), output
    assert "plain answer text" in json.dumps(nb.cells, default=str)
    # the feedback page holds no active content beyond the template's own (the same for an honest student)
    template = active_content(_feedback(course, "perfect"))
    extra = active_content(_feedback(course, "html")) - template
    assert not extra, extra


def test_nothing_forged_reaches_logs_reports_or_the_summary(attack_class):
    """Undecodable bytes, terminal escapes and forged lines do not reach the logs, events or reports."""
    course, results, _ = attack_class
    r = results["bytes"]
    assert r.status == "graded", r.reason
    assert not any("full marks" in e or "forged" in e for e in r.events), r.events
    state = (course.reports_dir / "autograde.json").read_text()
    log = (course.root / "logs" / ASSIGNMENT / "bytes.log").read_text()
    for text in (state, log, " ".join(r.events), r.reason):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x1b]", text), repr(text[:200])
    assert "everyone gets full marks" not in json.dumps(json.loads(state)["01_backprop/bytes"])


def test_output_floods_are_capped(attack_class):
    """A 128 MB line and 128 MB on the raw descriptors leave a small graded notebook, log and feedback."""
    course, results, _ = attack_class
    assert results["flood"].status == "graded", results["flood"].reason
    assert (course.autograded("flood", ASSIGNMENT) / NOTEBOOK).stat().st_size < 2_000_000
    assert (course.root / "logs" / ASSIGNMENT / "flood.log").stat().st_size < 1_000_000
    assert len(_feedback(course, "flood")) < 2_000_000


def test_a_forged_timestamp_is_replaced(attack_class):
    """The submission time is when collect received it, not what the student's timestamp.txt said."""
    course, _, before = attack_class
    with sqlite3.connect(course.root / "gradebook.db") as db:
        (stamp,) = db.execute("select timestamp from submitted_assignment s join student t on s.student_id = t.id "
                              "where t.id = 'twin'").fetchone()
    when = datetime.fromisoformat(str(stamp)).replace(tzinfo=timezone.utc)
    assert abs(when - before) < timedelta(minutes=30), stamp


def test_metadata_of_every_type_is_graded(attack_class):
    """Cells whose nbgrader metadata is a list, number, null, string, or a fake test, are graded as ordinary cells."""
    course, results, _ = attack_class
    for student in METADATA:
        assert results[student].status == "graded", (student, results[student].reason)
        assert "fake_test" not in cell_scores(course, ASSIGNMENT, student)


# -- the same payloads in a real browser ------------------------------------------------------------
@pytest.fixture(scope="module")
def formgrader(attack_class, tmp_path_factory):
    """jupyter lab (with nbgrader's formgrader) serving the attacked course."""
    from test_browser import formgrader_for

    with formgrader_for(attack_class[0], tmp_path_factory.mktemp("formgrader")) as server:
        yield server


RUNS = """() => {
    const bad = [];
    for (const el of document.querySelectorAll('*')) {
        for (const attr of el.attributes) {
            if (attr.name.startsWith('on') || /^\\s*javascript:/i.test(attr.value)) bad.push(el.tagName + ' ' + attr.name);
        }
        if (['IFRAME', 'OBJECT', 'EMBED', 'svg'].includes(el.tagName) && el.closest('.student-answer, .output_area, .output_wrapper, .cell')) bad.push(el.tagName);
    }
    return {title: document.title, bad: bad};
}"""


def _page_state(page, url: str, wait_text: str, shot: str) -> dict:
    """Open ``url``, wait for ``wait_text``, give scripts time to run; what could run, and whether anything did."""
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="load")
    page.get_by_text(wait_text, exact=False).first.wait_for(timeout=120_000)
    page.wait_for_timeout(2000)     # let anything that was going to run, run
    from test_browser import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / shot), full_page=True)
    return {**page.evaluate(RUNS), "dialogs": dialogs}


def _check_page(browser, url: str, honest_url: str, wait_text: str, honest_text: str, shot: str):
    """The attacker's page ran nothing, and holds no handler or frame the honest student's page lacks."""
    page, honest = browser.new_page(), browser.new_page()
    try:
        state = _page_state(page, url, wait_text, shot)
        baseline = _page_state(honest, honest_url, honest_text, "honest_" + shot)
    finally:
        page.close(), honest.close()
    assert "pwned" not in state["title"] and not state["dialogs"], state
    from collections import Counter

    extra = Counter(state["bad"]) - Counter(baseline["bad"])
    assert not extra, dict(extra)


def test_formgrader_page_runs_no_student_script(attack_class, formgrader, playwright_chromium):
    """The instructor's formgrader view of the HTML/JS/SVG/markdown attacker runs none of its payloads."""
    course, _, _ = attack_class
    url = lambda student: (f"{formgrader.url}/formgrader/submissions/{submission_id(course, student)}/"  # noqa: E731
                           f"?token={formgrader.token}")
    _check_page(playwright_chromium, url("html"), url("twin"), "plain answer text", "Training loss",
                "formgrader_html_attacker.png")


def test_feedback_page_runs_no_student_script(attack_class, playwright_chromium):
    """The HTML/JS/SVG/markdown attacker's feedback file, opened in the browser, runs none of its payloads."""
    course, _, _ = attack_class
    path = lambda student: next(course.feedback_dir(student, ASSIGNMENT).glob("*.html")).as_uri()  # noqa: E731
    _check_page(playwright_chromium, path("html"), path("twin"), "plain answer text", "Backpropagation",
                "feedback_html_attacker.png")
