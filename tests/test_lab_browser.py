"""The Robust training page in headless Debian Chromium: a deep link shows the shipped lab
(chart, table, CW, saturation, example digits) with the link's state, and a bad link value is said in one line.

Screenshots go to pytest's tmp_path, or to $SDSGSM_SCREENSHOTS when it is set.
"""

import pytest
from helpers import IDLE, LONG, assert_clean_page, page_url

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_robust_training_deep_link_shows_the_lab(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{page_url('Robust training')}?xmethod=pgd&xeps=24&epochs=oops", timeout=120_000)
    page.get_by_text("CW-L2 on the distilled model").wait_for(timeout=LONG)
    page.wait_for_selector(IDLE, timeout=LONG)
    page.locator(".js-plotly-plot").first.wait_for(timeout=LONG)
    assert_clean_page(page)
    body = page.locator("body").inner_text()
    assert "Ignored epochs='oops' from the link: not a number." in body and "distilled model keeps" in body
    assert "PGD, ε = 24/255" in body and "fooled" in body
    assert page.locator('[data-testid="stImage"] img').count() == 3 * 6 + 1  # digits + certificate
    assert "xmethod=pgd" in page.url and "xeps=24" in page.url
    page.screenshot(path=str(shots / "robust_training.png"), full_page=True)
    page.close()
