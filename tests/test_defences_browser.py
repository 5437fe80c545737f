"""The Defences page in headless Debian Chromium: a link with the grid's settings runs, the heat maps and the
defended image appear, and a link with odd values is answered with warnings, never a traceback.

Screenshots go to pytest's tmp_path, or to $SDSGSM_SCREENSHOTS when it is set.
"""

import pytest
from helpers import IDLE, LONG, assert_clean_page, page_url

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_defences_page_runs_a_linked_grid_and_survives_odd_links(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{page_url('Defences')}?methods=fgsm&defences=jpeg,bitdepth&limit=1&jpeg_quality=50",
              timeout=120_000)
    page.get_by_text("Press Run", exact=False).wait_for(timeout=LONG)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("One image through a defence").wait_for(timeout=LONG)
    page.wait_for_selector(IDLE, timeout=LONG)
    assert page.url.split("?")[0].endswith("/" + page_url("Defences")) and "jpeg_quality=50" in page.url
    assert page.locator('[data-testid="stMetric"]', has_text="Clean accuracy · jpeg").count() == 1
    assert page.locator(".js-plotly-plot").count() == 1
    assert page.get_by_text("clean, defended → ", exact=False).count() == 1
    assert_clean_page(page)
    page.screenshot(path=str(shots / "defences.png"), full_page=True)
    page.goto(f"{server}/{page_url('Defences')}?methods=zzz&defences=&jpeg_quality=abc&median_window=4&limit=99&eps=nan",
              timeout=120_000)
    page.get_by_text("Choose at least one method", exact=False).wait_for(timeout=LONG)
    page.wait_for_selector(IDLE, timeout=LONG)
    warnings = page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
    for fragment in ("jpeg_quality", "median_window", "methods 'zzz'", "limit='99'"):
        assert any(fragment in w for w in warnings), (fragment, warnings)
    assert_clean_page(page)
    page.screenshot(path=str(shots / "defences_odd_link.png"), full_page=True)
    page.close()
