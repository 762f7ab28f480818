"""The class dashboard (reports/dashboard.html) in Chromium: its figures render, its tables say what is left."""
from __future__ import annotations

from autograder.dashboard import write_dashboard
from autograder.reports import pending_manual
from test_browser import SCREENSHOTS, playwright_chromium  # noqa: F401  (a fixture)


def test_dashboard_shows_histograms_pass_rates_heatmap_and_what_is_left(graded_class, playwright_chromium):
    """Three figures load in the browser; the page counts the class and lists the written answers pending."""
    course, results = graded_class
    path = write_dashboard(course)
    page = playwright_chromium.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.goto(path.as_uri(), wait_until="load")
        loaded = page.evaluate("() => [...document.querySelectorAll('img.figure')]"
                               ".map(i => [i.dataset.figure, i.complete && i.naturalWidth > 100])")
        assert sorted(loaded) == [["heatmap", True], ["histogram", True], ["pass-rates", True]], loaded
        text = page.inner_text("body")
        students = {k[1] for k in results}
        assert f"{len(students)} students" in text
        assert "Written answers to grade" in text and ("None pending" in text) == (not any(pending_manual(course).values()))
        assert page.locator("script").count() == 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))
    finally:
        page.close()
