"""The Robust training page in headless Debian Chromium: a deep link on a fresh server shows the shipped lab
(chart, table, CW, saturation, example digits) with the link's state, and a bad link value is said in one line.

Screenshots go to pytest's tmp_path, or to $SDSGSM_SCREENSHOTS when it is set.
"""

import os
from pathlib import Path

import pytest
from test_browser import CHROMIUM, FLAGS, LONG, assert_clean_page, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


@pytest.fixture(scope="module")
def lab_server():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (.ci/run installs it with apt-get install -y chromium)")
    proc, url = start_server()
    yield url
    stop_server(proc)


def test_robust_training_deep_link_shows_the_lab(lab_server, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SDSGSM_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{lab_server}/Robust_training?xmethod=pgd&xeps=24&epochs=oops", timeout=120_000)
        page.get_by_text("CW-L2 on the distilled model").wait_for(timeout=LONG)
        page.wait_for_selector(IDLE, timeout=LONG)
        page.locator(".js-plotly-plot").first.wait_for(timeout=LONG)
        assert_clean_page(page)
        body = page.locator("body").inner_text()
        assert "Ignored from the link (not valid values): epochs='oops'" in body and "distilled model keeps" in body
        assert "pgd, ε = 24/255" in body and "fooled" in body
        assert page.locator('[data-testid="stImage"] img').count() == 3 * 6
        assert "xmethod=pgd" in page.url and "xeps=24" in page.url
        page.screenshot(path=str(shots / "robust_training.png"), full_page=True)
        browser.close()
