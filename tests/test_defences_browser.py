"""The Defences page in headless Debian Chromium: a link with the grid's settings runs, the heat maps and the
defended image appear, and a link with odd values is answered with warnings, never a traceback.

Screenshots go to pytest's tmp_path, or to $SDSGSM_SCREENSHOTS when it is set.
"""

import os
from pathlib import Path

import pytest
from test_browser import CHROMIUM, FLAGS, LONG, assert_clean_page, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def test_defences_page_runs_a_linked_grid_and_survives_odd_links(tmp_path):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (.ci/run installs it with apt-get install -y chromium)")
    shots = Path(os.environ.get("SDSGSM_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    proc, url = start_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/Defences?methods=fgsm&defences=jpeg,bitdepth&limit=1&jpeg_quality=50", timeout=120_000)
            page.get_by_text("Press Run", exact=False).wait_for(timeout=LONG)
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("One image through a defence").wait_for(timeout=LONG)
            page.wait_for_selector(IDLE, timeout=LONG)
            assert page.url.split("?")[0].endswith("/Defences") and "jpeg_quality=50" in page.url
            assert page.locator('[data-testid="stMetric"]', has_text="Clean accuracy · jpeg").count() == 1
            assert page.locator(".js-plotly-plot").count() == 1
            assert page.get_by_text("clean, defended → ", exact=False).count() == 1
            assert_clean_page(page)
            page.screenshot(path=str(shots / "defences.png"), full_page=True)
            page.goto(f"{url}/Defences?methods=zzz&defences=&jpeg_quality=abc&median_window=4&limit=99&eps=nan",
                      timeout=120_000)
            page.get_by_text("Choose at least one method", exact=False).wait_for(timeout=LONG)
            page.wait_for_selector(IDLE, timeout=LONG)
            warnings = page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
            for fragment in ("jpeg_quality", "median_window", "methods 'zzz'", "limit='99'"):
                assert any(fragment in w for w in warnings), (fragment, warnings)
            assert_clean_page(page)
            page.screenshot(path=str(shots / "defences_odd_link.png"), full_page=True)
            browser.close()
    finally:
        stop_server(proc)
