"""Regenerate the tour's screenshots (docs/img/tour/*.png) from the running app, in headless Chromium.

    python docs/screenshots.py            # every page of the menu at 1400×1000, plus the projector view
    python docs/screenshots.py --only Explorer,Learn

Starts the app of this checkout on a free port (sdsgsm.ui.server), opens each page of the one menu
(sdsgsm.ui.nav.PAGES) at its default state, waits until Streamlit is idle, and saves the first screen.
Needs Playwright and Debian's chromium (/usr/bin/chromium). Takes a few minutes on a laptop CPU: every page
computes its default example once.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sdsgsm.ui.nav import PAGES  # noqa: E402
from sdsgsm.ui.server import start_server, stop_server  # noqa: E402

OUT = ROOT / "docs" / "img" / "tour"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
EXTRA = {  # name -> (url path and query, viewport): views the tour shows besides each page's default
    "explorer-present": ("Explorer?present=1", (1280, 720)),
}


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def url_path(path: str) -> str:
    """Where Streamlit serves a page file: its name minus the number prefix ('' for the landing page)."""
    return "" if path == PAGES[0].path else re.sub(r"^\d+_", "", Path(path).stem)


def shoot(page, url: str, out: Path, viewport: tuple[int, int], settle_s: float = 1.5) -> float:
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=600_000)
    time.sleep(settle_s)  # a fragment or a late element may start one more run
    page.wait_for_selector(IDLE, timeout=600_000)
    page.screenshot(path=str(out))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated page labels (default: all, plus the extra views)")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    proc, base = start_server(ROOT)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            jobs = [(slug(pg.label), url_path(pg.path), (1400, 1000)) for pg in PAGES if not only or pg.label in only]
            jobs += [(name, path, size) for name, (path, size) in EXTRA.items() if not only]
            for name, path, size in jobs:
                seconds = shoot(page, f"{base}/{path}", OUT / f"{name}.png", size)
                print(f"{name}.png  {size[0]}×{size[1]}  {seconds:.1f} s", flush=True)
            browser.close()
    finally:
        stop_server(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
