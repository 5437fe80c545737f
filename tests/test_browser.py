"""End to end: `streamlit run app.py` driven by Playwright in headless Debian Chromium."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (.ci/run installs it with apt-get install -y chromium)")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + (proc.stdout.read() if proc.stdout else ""))
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
        yield b
        b.close()


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def test_explorer_in_chromium_updates_after_a_slider_change(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Explorer?patch=56&steps=2", timeout=120_000)
    page.get_by_text("Attack success").wait_for(timeout=600_000)
    caption = page.get_by_text(re.compile(r"^Adversarial \(sd-sgsm\):")).inner_text()
    l2_before = _metric(page, "L2")
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)

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
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.content()
    page.close()
