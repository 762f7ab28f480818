"""The student's view: the blank assignment opened in JupyterLab in a real (headless) Chromium.

A throwaway ``jupyter lab`` (127.0.0.1, a free port, a random token, a temporary root folder holding a
copy of the released notebook, no network checks) is driven with Playwright. Every code cell is run
from the browser, one after the other, as a student would (select it, Ctrl+Enter, wait for it):
JupyterLab's "Run All Cells" stops at the first error (each cell is sent with ``stop_on_error``), and
on the blank notebook the first test cell already fails, so "Run All" would leave most cells unrun.

Checked: the test cells that show an error in the browser are exactly those that nbgrader's validator
finds failing on the same notebook, and the course's self-check table in the last cell lists the same
failures. Screenshots go to ``build/test-output/browser/``.

The browser is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it); Playwright never downloads one.
Without it the tests are skipped, except under CI (``CI`` set), where they fail.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:  # reported by the fixture: a skip here, a failure under CI
    sync_playwright = None

from autograder.course import is_test_cell
from conftest import REPO

ASSIGNMENT = "01_backprop"
NOTEBOOK = REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "build" / "test-output" / "browser"
SERVER_START_S = 120   # jupyter lab on a loaded 2-core machine
KERNEL_START_S = 120   # a kernel start can take 30+ s on a loaded machine
CELL_S = 180           # one cell of the blank notebook (they fail fast; the imports take longest)
RUN_ACK_S = 15         # from Ctrl+Enter to the [*] prompt
STDERR_MIME = "application/vnd.jupyter.stderr"  # error and stderr outputs: what nbgrader scores 0
CELLS = ".jp-NotebookPanel-notebook .jp-Cell"
MAX_SCREENSHOT_PX = 16_000  # about Chromium's largest texture
PROMPT_DONE = re.compile(r"^\[\d+\]:?$")


def unavailable(reason: str):
    """Skip on a developer machine, fail under CI: CI must run the browser check."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def exception_name(text: str) -> str | None:
    """The exception class a traceback ends with, e.g. 'NotImplementedError' (ANSI colours removed)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    names = re.findall(r"^(\w+(?:Error|Exception|Exit|Interrupt))\b", plain, flags=re.MULTILINE)
    return names[-1] if names else None


class JupyterLab:
    """One ``jupyter lab`` in a temporary folder, its own settings and config, reachable on loopback only."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.root = folder / "root"
        self.log_path = folder / "server.log"
        self.token = secrets.token_hex(24)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def write_settings(self) -> Path:
        """No virtual scrolling (every cell stays in the DOM, in notebook order) and no news or update checks."""
        settings = self.folder / "user-settings"
        for plugin, values in {
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        }.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return settings

    def start(self) -> None:
        self.root.mkdir(exist_ok=True)
        settings = self.write_settings()
        env = {**os.environ,
               "JUPYTER_CONFIG_DIR": str(self.folder / "config"),    # no personal ~/.jupyter config
               "JUPYTER_RUNTIME_DIR": str(self.folder / "runtime"),
               "IPYTHONDIR": str(self.folder / "ipython"),
               "COURSE_FAST": "1", "PYTHONUNBUFFERED": "1"}
        for _attempt in range(3):  # another process may take the free port first
            self.port = free_port()
            cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                   f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.folder / 'workspaces'}",
                   "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
            if os.geteuid() == 0:
                cmd.append("--ServerApp.allow_root=True")
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            if self.wait_until_ready():
                return
            self.stop()
        raise RuntimeError(f"jupyter lab did not start; its log ends with:\n{self.log_tail()}")

    def wait_until_ready(self) -> bool:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as reply:
                    if reply.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        """SIGTERM to the whole process group (server and kernels), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # kernels live in the same group and may outlive the server by a moment
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@contextmanager
def formgrader_for(course, workdir):
    """jupyter lab with nbgrader's formgrader serving ``course`` (a root kept apart from the repository)."""
    course.write_nbgrader_config()
    server = JupyterLab(workdir)
    server.root = course.root
    try:
        server.start()
        yield server
    finally:
        server.stop()


def submission_id(course, student) -> str:
    """The gradebook id of ``student``'s submitted notebook (what a formgrader URL names)."""
    with sqlite3.connect(course.root / "gradebook.db") as db:
        (notebook_id,) = db.execute(
            "select n.id from submitted_notebook n join submitted_assignment a on n.assignment_id = a.id "
            "where a.student_id = ?", (student,)).fetchone()
    return notebook_id


@pytest.fixture(scope="module")
def playwright_chromium():
    """Headless Debian Chromium through Playwright (never a downloaded browser)."""
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)")
    if sync_playwright is None:
        unavailable("the playwright Python package is missing (pip install -e '.[grader,dev]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """jupyter lab serving a copy of the released blank notebook; always stopped afterwards."""
    server = JupyterLab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        shutil.copy(NOTEBOOK, server.root / NOTEBOOK.name)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def released():
    return nbformat.read(str(NOTEBOOK), as_version=4)


@pytest.fixture(scope="module")
def validator_failures(released, tmp_path_factory):
    """grade_id -> exception name of each visible test cell that nbgrader's validator finds failing."""
    from nbgrader.validator import Validator

    copy = tmp_path_factory.mktemp("validate") / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COURSE_FAST", "1")  # the same conditions as the kernel behind the browser
        results = Validator().validate(str(copy))
    assert set(results) <= {"failed"}, f"the validator reports more than failures: {sorted(results)}"
    test_ids = {cell.source.strip(): grade_id(cell) for cell in released.cells if is_test_cell(cell)}
    return {test_ids[f["source"]]: exception_name(f["raw_error"]) for f in results.get("failed", [])
            if f["source"] in test_ids}


@pytest.fixture(scope="module")
def notebook_page(playwright_chromium, lab, released):
    """The notebook open in JupyterLab with every code cell run from the browser, one cell at a time.

    As the notebook asks, it is saved (Ctrl+S) before the last cell, the self-check, runs.
    """
    page = playwright_chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda error: print(f"page error: {error}"))
    start = time.monotonic()
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}", wait_until="domcontentloaded")
    cells = page.locator(CELLS)
    cells.first.wait_for(state="visible", timeout=SERVER_START_S * 1000)
    kernel = released.metadata.kernelspec.display_name
    wait_for_kernel_idle(page, kernel, KERNEL_START_S)
    assert cells.count() == len(released.cells), "every cell is in the DOM (windowing off), in notebook order"
    print(f"notebook open, kernel {kernel!r} idle after {time.monotonic() - start:.0f}s")

    last = last_code_cell_index(released)
    for index, cell in enumerate(released.cells):
        if cell.cell_type == "code":
            if index == last:
                save_notebook(page, index)
            run_cell(page, index, kernel)
    print(f"all {sum(c.cell_type == 'code' for c in released.cells)} code cells run in the browser "
          f"after {time.monotonic() - start:.0f}s")
    yield page
    page.close()


def wait_for_kernel_idle(page, kernel: str, timeout_s: float) -> None:
    """The notebook's kernel is connected and idle: the status bar reads 'KERNEL | Idle'.

    The toolbar's execution indicator alone is not enough: it reads 'idle' before any kernel exists.
    """
    page.wait_for_function(
        """(kernel) => {
            const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
            const items = Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'));
            return indicator && indicator.dataset.status === 'idle'
                && items.some(item => item.textContent.trim() === `${kernel} | Idle`);
        }""", arg=kernel, timeout=timeout_s * 1000)


def prompt_of(page, index: int) -> str:
    return page.locator(CELLS).nth(index).locator(".jp-InputArea-prompt").inner_text().strip()


def run_cell(page, index: int, kernel: str) -> None:
    """Select the cell by clicking its prompt (command mode), press Ctrl+Enter, wait until it has run.

    JupyterLab shows [*] as soon as it sends a cell; a prompt still blank after RUN_ACK_S means the key
    press never reached it, and it is pressed once more.
    """
    cell = page.locator(CELLS).nth(index)
    try:
        for attempt in range(2):
            cell.locator(".jp-InputArea-prompt").click()
            page.keyboard.press("Control+Enter")
            try:
                page.wait_for_function(
                    """([selector, index]) => document.querySelectorAll(selector)[index]
                        .querySelector('.jp-InputArea-prompt').textContent.trim() !== '[ ]:'""",
                    arg=[CELLS, index], timeout=RUN_ACK_S * 1000)
                break
            except PlaywrightTimeout:
                print(f"cell {index} did not start after Ctrl+Enter (attempt {attempt + 1})")
                if attempt:
                    raise
        page.wait_for_function(
            """([selector, index]) => {
                const prompt = document.querySelectorAll(selector)[index].querySelector('.jp-InputArea-prompt');
                return /^\\[\\d+\\]:?$/.test(prompt.textContent.trim());
            }""", arg=[CELLS, index], timeout=CELL_S * 1000)
        wait_for_kernel_idle(page, kernel, CELL_S)
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{ASSIGNMENT}_stuck_cell_{index}.png"
        page.screenshot(path=str(path))
        print(f"cell {index} did not finish: prompt {prompt_of(page, index)!r}, screenshot {path}")
        raise


def save_notebook(page, index: int) -> None:
    """Ctrl+S, as the self-check cell asks, and wait until the tab no longer shows unsaved changes."""
    page.locator(CELLS).nth(index).locator(".jp-InputArea-prompt").click()  # focus the notebook, not a link
    page.keyboard.press("Control+s")
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty").wait_for(state="detached", timeout=CELL_S * 1000)


def code_cell_prompts(page) -> list[str]:
    return page.eval_on_selector_all(
        CELLS, "cells => cells.filter(c => c.classList.contains('jp-CodeCell'))"
               ".map(c => c.querySelector('.jp-InputArea-prompt').textContent.trim())")


def cells_showing_errors(page) -> dict[int, str]:
    """DOM index -> text of every cell whose outputs include an error or stderr (JupyterLab's stderr mime)."""
    texts = page.eval_on_selector_all(
        CELLS, f"""cells => cells.map(c => Array.from(c.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="{STDERR_MIME}"], '
            + '.jp-OutputArea-output [data-mime-type="{STDERR_MIME}"]'
        )).map(o => o.textContent).join('\\n'))""")
    return {index: text for index, text in enumerate(texts) if text}


def last_code_cell_index(released) -> int:
    return max(i for i, cell in enumerate(released.cells) if cell.cell_type == "code")


def test_every_code_cell_runs_in_the_browser(notebook_page, released):
    """Each code cell of the blank notebook got an execution count from the browser, and the kernel is idle."""
    prompts = code_cell_prompts(notebook_page)
    assert len(prompts) == sum(cell.cell_type == "code" for cell in released.cells)
    assert all(PROMPT_DONE.match(p) for p in prompts), f"cells not run or still running: {prompts}"
    counts = [int(re.search(r"\d+", p).group()) for p in prompts]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), f"not run top to bottom: {prompts}"
    assert notebook_page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count() >= 1


def test_browser_shows_the_tests_nbgrader_fails(notebook_page, released, validator_failures):
    """The test cells with an error in the browser are exactly the validator's failing tests, same exceptions."""
    assert validator_failures, "the blank notebook fails no visible test: this check would be vacuous"
    shown = cells_showing_errors(notebook_page)
    failing_tests = {grade_id(released.cells[i]): text for i, text in shown.items() if is_test_cell(released.cells[i])}

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{ASSIGNMENT}_blank.png"
    full_page_screenshot(notebook_page, path)
    print(f"screenshot: {path}")

    assert set(failing_tests) == set(validator_failures)
    for test, text in failing_tests.items():
        assert exception_name(text) == validator_failures[test], f"{test} shows another error:\n{text[-500:]}"


def test_self_check_reports_the_failing_tests(notebook_page, released, validator_failures):
    """The last cell's self-check table is shown and marks exactly the validator's failing tests as failed."""
    last = notebook_page.locator(CELLS).nth(last_code_cell_index(released))
    output = last.locator(".jp-Cell-outputArea")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{ASSIGNMENT}_blank_self_check.png"
    target = output if output.locator(".jp-OutputArea-output").count() else last
    target.scroll_into_view_if_needed()
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")

    assert "self_check" in released.cells[last_code_cell_index(released)].source, \
        f"the last code cell of the released {NOTEBOOK.name} does not run the self-check"
    table = output.locator("table.dlcourse-self-check")
    assert table.count() == 1 and table.is_visible(), "the self-check table is not shown in the last cell"
    rows = dict(table.locator("tr[data-test]").evaluate_all(
        "rows => rows.map(r => [r.dataset.test, r.dataset.status])"))
    test_ids = {grade_id(cell) for cell in released.cells if is_test_cell(cell)}
    assert rows and set(rows) <= test_ids, f"rows that are not test cells: {sorted(set(rows) - test_ids)}"
    assert set(rows.values()) <= {"passed", "failed", "hidden"}, rows  # hidden: only hidden tests in the cell
    assert {test for test, status in rows.items() if status == "failed"} == set(validator_failures)


def full_page_screenshot(page, path: Path) -> None:
    """JupyterLab scrolls inside the notebook panel, so grow the window to the notebook's height first."""
    extra = page.evaluate("""() => {
        const scroller = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')
            || document.querySelector('.jp-NotebookPanel-notebook');
        return scroller.scrollHeight - scroller.clientHeight;
    }""")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(size["height"] + extra + 20, MAX_SCREENSHOT_PX)})
    try:
        page.locator(CELLS).first.scroll_into_view_if_needed()
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
