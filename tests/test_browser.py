"""End to end: `streamlit run app.py` driven by Playwright in headless Debian Chromium.

Screenshots go to pytest's tmp_path, or to $SDSGSM_SCREENSHOTS when it is set (to look at them).
"""

import re
from pathlib import Path

import pytest
from helpers import LONG, assert_clean_page, heading, menu_labels, metric, page_url, url_path

from sdsgsm.ui.nav import PAGES

pytestmark = pytest.mark.browser


def _click_compare(page, shots: Path, name: str) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name=re.compile("Compare")).click()
    heading(page, "Compare methods").wait_for(timeout=LONG)
    page.get_by_text("Press Run comparison", exact=False).wait_for(timeout=LONG)
    assert page.url.split("?")[0].endswith("/" + page_url("Compare"))
    assert_clean_page(page)
    page.screenshot(path=str(shots / name), full_page=True)


def test_explorer_in_chromium_updates_after_a_slider_change(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{page_url('Explorer')}?patch=56&steps=2", timeout=120_000)
    page.get_by_text("Attack success").wait_for(timeout=LONG)
    caption = page.get_by_text(re.compile(r"^Adversarial \(SD-SGSM\):")).inner_text()
    l2_before = metric(page, "L2")
    page.screenshot(path=str(shots / "explorer.png"), full_page=True)

    omega = page.get_by_role("slider", name=re.compile("ω"))
    omega.focus()
    omega.press("ArrowLeft")
    omega.press("ArrowLeft")
    page.wait_for_function(
        "([before]) => { const v = [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
        ".find(e => e.innerText.startsWith('L2'));"
        " return v && !v.innerText.includes(before); }", arg=[l2_before], timeout=300_000)
    page.wait_for_load_state("networkidle")
    assert metric(page, "L2") != l2_before
    assert page.get_by_text(re.compile(r"^Adversarial \(SD-SGSM\):")).inner_text().startswith("Adversarial")
    assert caption
    assert_clean_page(page)
    page.close()


def test_landing_page_links_every_page(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server, timeout=120_000)
    heading(page, "SD-SGSM Explorer").wait_for(timeout=LONG)
    page.get_by_text("Device:", exact=False).wait_for(timeout=LONG)
    assert_clean_page(page)
    body = page.locator('[data-testid="stMain"] [data-testid="stPageLink"] a')
    urls = [a.get_attribute("href").rstrip("/").rsplit("/", 1)[-1] for a in body.all()]
    assert urls == [url_path(p) for p in PAGES[1:]]  # every page but the landing one, in menu order
    assert [u.replace("_", " ") for u in urls] == menu_labels()[1:]  # a page's URL is its label, spaces as underscores
    page.screenshot(path=str(shots / "home.png"), full_page=True)
    page.close()


def test_fresh_server_deep_link_to_benchmark(fresh_server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{fresh_server}/{page_url('Benchmark')}", timeout=120_000)  # the server's very first page request
    heading(page, "Benchmark").wait_for(timeout=LONG)
    page.get_by_text("Press Run benchmark", exact=False).wait_for(timeout=LONG)
    assert page.url.split("?")[0].endswith("/" + page_url("Benchmark"))
    assert_clean_page(page)
    page.screenshot(path=str(shots / "fresh_benchmark.png"), full_page=True)
    _click_compare(page, shots, "fresh_benchmark_then_compare.png")
    page.close()


def test_fresh_server_deep_link_to_explorer_with_query(fresh_server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{fresh_server}/{page_url('Explorer')}?omega=5&patch=56&steps=2", timeout=120_000)  # first request
    heading(page, "Explorer").wait_for(timeout=LONG)
    omega = page.get_by_role("slider", name=re.compile("ω"))
    assert float(omega.get_attribute("aria-valuetext")) == 5.0  # the query value, not the default
    page.get_by_text("Attack success").wait_for(timeout=LONG)
    assert page.url.split("?")[0].endswith("/" + page_url("Explorer"))
    assert float(omega.get_attribute("aria-valuetext")) == 5.0
    assert_clean_page(page)
    page.screenshot(path=str(shots / "fresh_explorer.png"), full_page=True)
    _click_compare(page, shots, "fresh_explorer_then_compare.png")
    page.close()
