"""Cold start in a real browser: fresh server → Home's example (four images) rendered.

Each round starts a fresh server of each app (the current tree, and with --baseline REV that git revision
too, alternately, so both see the same machine load), waits for its health endpoint, waits --delay seconds
(0: the visitor arrives as soon as the server answers; 10: a visitor who comes a little later), then opens
Home in headless Chromium and times until the example's four images are decoded and the page is idle.
Printed per round: seconds from the process launch and from the moment the visitor opens the page, and the
server's resident memory (VmRSS) at health, at the visit and after the example. Last line:
``cold_start_hero_median_s=<before>-><after> ratio=<r>`` (seconds from the visit).

    python bench/cold_start.py [--repeats 3] [--delay 0] [--baseline REV]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from latency import ARGS, CHROMIUM, TIMEOUT_MS, worktree  # noqa: E402

from sdsgsm.ui.server import start_server, stop_server  # noqa: E402

HERO_JS = """
() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const app = document.querySelector('[data-testid="stApp"]');
  if (!main || !app || app.dataset.testScriptState === 'running') return false;
  if (!main.innerText.includes('The change × 5')) return false;
  const imgs = [...main.querySelectorAll('[data-testid="stImage"] img')];
  return imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(browser, cwd: Path, name: str, delay: float) -> dict:
    t0 = time.perf_counter()
    proc, url = start_server(cwd)
    try:
        healthy = time.perf_counter()
        rss0 = rss_mib(proc.pid)
        time.sleep(delay)
        rss1 = rss_mib(proc.pid)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t1 = time.perf_counter()
        page.goto(url, timeout=TIMEOUT_MS)
        page.wait_for_function(HERO_JS, polling="raf", timeout=TIMEOUT_MS)
        t2 = time.perf_counter()
        rss2 = rss_mib(proc.pid)
        page.close()
    finally:
        stop_server(proc)
    row = {"launch": t2 - t0, "visit": t2 - t1, "health": healthy - t0, "rss": (rss0, rss1, rss2)}
    print(f"[{name}] hero {row['visit']:.2f} s after the visit, {row['launch']:.2f} s after launch "
          f"(healthy at {row['health']:.2f} s); RSS MiB health {rss0:.0f}, visit {rss1:.0f}, hero {rss2:.0f}",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds between health and the visit")
    ap.add_argument("--baseline", metavar="REV")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    base_dir = worktree(args.baseline) if args.baseline else None
    apps = ([(f"baseline {args.baseline}", base_dir)] if base_dir else []) + [("current", ROOT)]
    rows = {name: [] for name, _ in apps}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            for _ in range(args.repeats):
                for name, cwd in apps:
                    rows[name].append(one(browser, cwd, name, args.delay))
            browser.close()
    finally:
        if base_dir is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=ROOT, check=False)
    med = {}
    for name, rs in rows.items():
        med[name] = statistics.median(r["visit"] for r in rs)
        print(f"[{name}] median: hero {med[name]:.2f} s after the visit, "
              f"{statistics.median(r['launch'] for r in rs):.2f} s after launch; RSS after the hero "
              f"{statistics.median(r['rss'][2] for r in rs):.0f} MiB, at the visit "
              f"{statistics.median(r['rss'][1] for r in rs):.0f} MiB")
    if base_dir is not None:
        before, after = med.values()
        print(f"cold_start_hero_median_s={before:.2f}->{after:.2f} ratio={after / before:.2f} "
              f"n={args.repeats} delay={args.delay}")
    else:
        print(f"cold_start_hero_median_s={med['current']:.2f} n={args.repeats} delay={args.delay}")


if __name__ == "__main__":
    main()
