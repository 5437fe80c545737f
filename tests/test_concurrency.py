"""Issue 14, concurrent sessions in the real app: 8 browser contexts at once on different images and
parameters, each showing exactly the numbers of the same request made alone, none showing another's
link values. The alone-requests run on a second fresh server (cold caches, so nothing is reused from
the concurrent run). Wall times and the servers' peak memory are printed (run with ``-s``).
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from helpers import CHROMIUM, FLAGS, LONG, need_chromium, page_url

from sdsgsm.attacks import METHODS as REGISTRY
from sdsgsm.attacks import method_label
from sdsgsm.data import gallery
from sdsgsm.ui.server import start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
METHODS = ["sd-sgsm", "fgsm", "sgsm", "ifgsm", "sd-fgsm", "mifgsm", "sd-sgsm", "nifgsm"]
OMEGAS = [2, 5, 20, 50, 100, 1000, 0.5, 10]


def _requests() -> list[dict]:
    keys = [g.key for g in gallery("imagenet")][:8]
    return [{"image": k, "method": m, "omega": str(w), "patch": "56", "steps": "2"}
            for k, m, w in zip(keys, METHODS, OMEGAS)]


def _peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))


def _read(browser, url: str, query: dict) -> dict:
    """Open one fresh browser context on the link and read back what the page shows."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{url}/{page_url('Explorer')}?" + "&".join(f"{k}={v}" for k, v in query.items()), timeout=LONG)
    page.get_by_text("Attack success").wait_for(timeout=LONG)
    page.wait_for_load_state("networkidle")
    metrics = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid="stMetric"]')]
        .map(m => [m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
                   m.querySelector('[data-testid="stMetricValue"]').innerText.trim()]))""")
    caption = page.get_by_text(re.compile(r"^Adversarial \(")).first.inner_text()
    slider = page.get_by_role("slider", name=re.compile("ω"))  # only the methods that read ω show it
    omega = slider.get_attribute("aria-valuetext") if slider.count() else None
    assert page.locator('[data-testid="stException"]').count() == 0 and "Traceback" not in page.content()
    ctx.close()
    metrics.pop("Time", None)  # wall time differs between runs; every other number must not
    return {"metrics": {k: v for k, v in metrics.items() if "time" not in k.lower()}, "caption": caption,
            "omega": None if omega is None else float(omega)}


def _in_threads(fn, items):
    out, errors = [None] * len(items), []

    def work(i, item):
        try:
            out[i] = fn(item)
        except Exception as exc:  # noqa: BLE001 - re-raised below in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, it)) for i, it in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def test_eight_concurrent_sessions_show_exactly_their_own_numbers():
    need_chromium()
    from playwright.sync_api import sync_playwright

    requests = _requests()
    figures = {}
    proc, url = start_server()
    try:
        t0 = time.perf_counter()

        def one(query):  # Playwright's sync API: one driver per thread
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
                try:
                    return _read(b, url, query)
                finally:
                    b.close()

        together = _in_threads(one, requests)
        figures["concurrent_wall_s"] = time.perf_counter() - t0
        figures["concurrent_peak_mib"] = _peak_mib(proc.pid)
    finally:
        stop_server(proc)
    proc, url = start_server()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
            t0 = time.perf_counter()
            alone = [_read(b, url, q) for q in requests]
            figures["sequential_wall_s"] = time.perf_counter() - t0
            b.close()
        figures["sequential_peak_mib"] = _peak_mib(proc.pid)
    finally:
        stop_server(proc)
    print("\nconcurrency: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))
    for query, mine, ref in zip(requests, together, alone):
        assert mine == ref, (query, mine, ref)
        if "omega" in REGISTRY[query["method"]].widgets:
            assert mine["omega"] == float(query["omega"])  # its own link's value, not a neighbour's
        assert f"({method_label(query['method'])})" in mine["caption"]
    assert len({str(r["metrics"]) for r in together}) > 4  # the eight requests really differ
