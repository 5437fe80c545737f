"""End to end: `streamlit run app.py` driven by Playwright in headless Debian Chromium.

Screenshots go to pytest's tmp_path, or to $SDSGSM_SCREENSHOTS when it is set (to look at them).
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from sdsgsm.ui.server import start_server, stop_server  # noqa: F401  (other browser tests import them here)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NAV = ["Home", "Explorer", "Learn", "Compare", "Benchmark", "Figures", "Sweeps", "Defences", "Robust training",
       "Transfer"]
LONG = 600_000  # ms: the first attack on 2 shared CPU cores can be slow
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'  # the app has finished its script run


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (.ci/run installs it with apt-get install -y chromium)")


@pytest.fixture(scope="module")
def server():
    _need_chromium()
    proc, url = start_server()
    yield url
    stop_server(proc)


@pytest.fixture
def fresh_server():
    """A server of its own, so that the test's request is the very first this server sees."""
    _need_chromium()
    proc, url = start_server()
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SDSGSM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text()


NAV_LINKS = '[data-testid="stSidebar"] :is([data-testid="stSidebarNav"], [data-testid="stPageLink"]) a'


def nav_labels(page) -> list[str]:
    """Every navigation entry in the sidebar, ours (page links) or Streamlit's own menu, icons left out.

    The main area can finish drawing before the sidebar does, so first wait (up to a minute) until
    the sidebar holds at least as many links as the menu should have; the assertion that follows
    still fails if the menu never appears or has other entries.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n",
                               arg=[NAV_LINKS, len(NAV)], timeout=60_000)
    except PlaywrightTimeout:  # report what is there instead
        pass
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].map(a => { const c = a.cloneNode(true);
                    c.querySelectorAll('[data-testid="stIconMaterial"]').forEach(i => i.remove());
                    return c.innerText.trim(); })""", NAV_LINKS)


def assert_clean_page(page) -> None:
    """One menu with exactly our four entries (none called "app"), and no error or traceback."""
    labels = nav_labels(page)
    assert "app" not in [label.lower() for label in labels]
    assert labels == NAV
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.content()


def _heading(page, text: str):
    return page.locator('[data-testid="stHeading"]').get_by_text(text, exact=True)


def _click_compare(page, shots: Path, name: str) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name=re.compile("Compare")).click()
    _heading(page, "Compare methods").wait_for(timeout=LONG)
    page.get_by_text("Press Run comparison", exact=False).wait_for(timeout=LONG)
    assert page.url.split("?")[0].endswith("/Compare")
    assert_clean_page(page)
    page.screenshot(path=str(shots / name), full_page=True)


def test_explorer_in_chromium_updates_after_a_slider_change(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Explorer?patch=56&steps=2", timeout=120_000)
    page.get_by_text("Attack success").wait_for(timeout=LONG)
    caption = page.get_by_text(re.compile(r"^Adversarial \(sd-sgsm\):")).inner_text()
    l2_before = _metric(page, "L2")
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
    assert _metric(page, "L2") != l2_before
    assert page.get_by_text(re.compile(r"^Adversarial \(sd-sgsm\):")).inner_text().startswith("Adversarial")
    assert caption
    assert_clean_page(page)
    page.close()


def test_landing_page_links_every_page(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server, timeout=120_000)
    _heading(page, "SD-SGSM Explorer").wait_for(timeout=LONG)
    page.get_by_text("Device:", exact=False).wait_for(timeout=LONG)
    assert_clean_page(page)
    body = page.locator('[data-testid="stMain"] [data-testid="stPageLink"] a')
    assert [a.get_attribute("href").rstrip("/").rsplit("/", 1)[-1].replace("_", " ") for a in body.all()] == NAV[1:]
    page.screenshot(path=str(shots / "home.png"), full_page=True)
    page.close()


def test_fresh_server_deep_link_to_benchmark(fresh_server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{fresh_server}/Benchmark", timeout=120_000)  # the server's very first page request
    _heading(page, "Benchmark").wait_for(timeout=LONG)
    page.get_by_text("Press Run benchmark", exact=False).wait_for(timeout=LONG)
    assert page.url.split("?")[0].endswith("/Benchmark")
    assert_clean_page(page)
    page.screenshot(path=str(shots / "fresh_benchmark.png"), full_page=True)
    _click_compare(page, shots, "fresh_benchmark_then_compare.png")
    page.close()


def test_fresh_server_deep_link_to_explorer_with_query(fresh_server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{fresh_server}/Explorer?omega=5&patch=56&steps=2", timeout=120_000)  # first request
    _heading(page, "Explorer").wait_for(timeout=LONG)
    omega = page.get_by_role("slider", name=re.compile("ω"))
    assert float(omega.get_attribute("aria-valuetext")) == 5.0  # the query value, not the default
    page.get_by_text("Attack success").wait_for(timeout=LONG)
    assert page.url.split("?")[0].endswith("/Explorer")
    assert float(omega.get_attribute("aria-valuetext")) == 5.0
    assert_clean_page(page)
    page.screenshot(path=str(shots / "fresh_explorer.png"), full_page=True)
    _click_compare(page, shots, "fresh_explorer_then_compare.png")
    page.close()
