"""The Transfer page in headless Chromium: a deep link runs a small matrix and shows it cleanly."""

import pytest
from helpers import LONG, assert_clean_page, page_url

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_transfer_page_in_chromium_runs_a_two_image_matrix(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{page_url('Transfer')}?sources=lite0&ens=&targets=lite0,lite1&methods=fgsm&limit=2&steps=2",
              timeout=120_000)
    page.get_by_text("Press Run transfer", exact=False).wait_for(timeout=LONG)
    assert_clean_page(page)
    page.get_by_role("button", name="Run transfer").click()
    page.get_by_text("Perturbation per source").wait_for(timeout=LONG)
    page.get_by_text("One example on every target").wait_for(timeout=LONG)
    page.wait_for_load_state("networkidle")
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)  # the interactive matrix
    assert page.locator(".js-plotly-plot").count() == 1
    page.get_by_role("button", name="transfer.csv", exact=True).wait_for(timeout=LONG)  # downloads come last
    assert f"/{page_url('Transfer')}?" in page.url and "targets=lite0%2Clite1" in page.url
    assert_clean_page(page)
    page.screenshot(path=str(shots / "transfer.png"), full_page=True)
    page.close()
