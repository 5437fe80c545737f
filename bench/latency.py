"""Explorer latency in a real browser: key press on the ω slider until the new "L2" metric is shown.

Starts `streamlit run serve.py` (--script app.py: without the start-up warm-up; or uses --url), opens
`/Explorer?patch=16&steps=5` (defaults otherwise) in
headless Debian Chromium, waits for the metrics, then N times: focus the ω slider, press a key, and time
from the key press until the "L2" metric shows a new value AND the app is idle again (script state
"notRunning", no stale elements). A change of ω reuses the cached zero-out scan, so this is the attack,
the re-render and the round trip.

Keys (--keys):
  fresh      (default) every press lands on an ω not shown before in this session, so nothing comes from
             the attack cache: ArrowRight/ArrowLeft while they reach a new value, else End/Home.
  alternate  ArrowLeft, ArrowRight, ArrowLeft, ...: after the first two presses every value is a cache hit,
             so this measures the cached re-render.
A press whose run ends with an unchanged L2 text (two ω giving the same 3-digit L2) is timed to the end of
the run and marked "(L2 unchanged)". Each press also prints what it cost the browser: the websocket messages
(Streamlit's forward messages: count and KiB), the images fetched over HTTP, and the Chrome DevTools
Performance metrics' script, layout, style and task seconds, and the CPU seconds the server process used
(user + system, all its threads: unlike wall time, hardly changed by other work on a shared machine). The
messages are counted by kind (an element's type for a delta: ``plotly_chart``, ``imgs``, ``metric``, …;
listed as count×KiB) and the four largest kinds are shown.
Last line: ``omega_change_browser_median_s=<x> n=<N>``.

``--images N``: then picks N gallery images in the sidebar, one after another, each new to the server (the
first render of a new image with the model loaded: the zero-out scan, the attack and the whole page), timed
from the pick until its first L2 is on screen; last line ``new_image_browser_median_s=<x> n=<N>``.

    python bench/latency.py [--repeats 10] [--keys fresh|alternate] [--url http://127.0.0.1:8501]
    python bench/latency.py --baseline REV   # the app at git revision REV side by side, presses interleaved
    python bench/latency.py --repeats 0 --images 5   # only the first render of 5 new gallery images
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sdsgsm.ui.server import start_server, stop_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
QUERY = "patch=16&steps=5"
TIMEOUT_MS = 600_000

# State of the page, read in the browser: the L2 metric's value text and whether a script run is going on.
STATE_JS = """
() => {
  const m = [...document.querySelectorAll('[data-testid="stMetric"]')].find(e => e.innerText.startsWith('L2'));
  const v = m && m.querySelector('[data-testid="stMetricValue"]');
  const app = document.querySelector('[data-testid="stApp"]');
  const running = !app || app.dataset.testScriptState === 'running'
      || document.querySelectorAll('[data-stale="true"]').length > 0;
  return {l2: v ? v.innerText : null, running};
}"""

# True once the run that the key press started is over: a new L2 value on an idle page, or (fallback) the
# page was seen running and is idle again with the same L2 text. Polled on every animation frame.
DONE_JS = """
([before]) => {
  const s = (STATE)();
  if (s.running) { window.__sawRunning = true; return false; }
  if (s.l2 !== null && s.l2 !== before) return {l2: s.l2, changed: true};
  if (window.__sawRunning) return {l2: s.l2, changed: false};
  return false;
}""".replace("STATE", STATE_JS)


def next_key(index: int, lo: int, hi: int, seen: set[int], mode: str, i: int) -> str:
    """The key for the i-th press from slider position `index` (see --keys)."""
    if mode == "alternate":
        return "ArrowLeft" if i % 2 == 0 else "ArrowRight"
    for key, target in (("ArrowRight", index + 1), ("ArrowLeft", index - 1), ("End", hi), ("Home", lo)):
        if lo <= target <= hi and target not in seen:
            return key
    return "ArrowLeft" if index > lo else "ArrowRight"  # every value seen: a cache hit, said in the output


class Explorer:
    """One browser page on one server's Explorer; :meth:`press` times one ω key press."""

    def __init__(self, browser, url: str, name: str, mode: str, server_pid: int | None = None):
        self.name, self.mode, self.i, self.server_pid = name, mode, 0, server_pid
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.frames: list[bytes] = []  # the websocket messages the server sent (forward messages)
        self.page.on("websocket", lambda ws: ws.on("framereceived", lambda f: self.frames.append(
            f if isinstance(f, bytes) else str(f).encode())))
        self.media: list[int] = []  # sizes of media files (images) fetched over HTTP
        self.page.on("response", self._media)
        self.cdp = self.page.context.new_cdp_session(self.page)
        if self.cdp is not None:  # the browser's own timeline: script, layout and style time per press
            self.cdp.send("Performance.enable")
        t0 = time.perf_counter()
        self.page.goto(f"{url}/Explorer?{QUERY}", timeout=TIMEOUT_MS)
        self.page.wait_for_function(f"() => {{ const s = ({STATE_JS})(); return s.l2 !== null && !s.running; }}",
                                    polling="raf", timeout=TIMEOUT_MS)
        print(f"[{name}] first render (model load, scan, attack): {time.perf_counter() - t0:.2f} s; "
              f"/Explorer?{QUERY}, keys={mode}", flush=True)
        self.images_done = 0
        self.slider = self.page.get_by_role("slider", name=re.compile("ω"))
        self.lo, self.hi = int(self.slider.get_attribute("min")), int(self.slider.get_attribute("max"))
        self.seen = {int(self.slider.input_value())}

    def _media(self, response) -> None:
        if "/media/" in response.url:
            try:
                self.media.append(len(response.body()))
            except Exception:  # noqa: BLE001 - a page closed mid-transfer
                pass

    def perf(self) -> dict[str, float]:
        out = {"server_cpu": self.server_cpu()}
        if self.cdp is None:
            return out
        return {**out, **{m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}}

    def press(self) -> float:
        page, slider = self.page, self.slider
        before = page.evaluate(f"({STATE_JS})()")["l2"]
        key = next_key(int(slider.input_value()), self.lo, self.hi, self.seen, self.mode, self.i)
        slider.focus()
        page.evaluate("() => { window.__sawRunning = false; }")
        del self.frames[:], self.media[:]
        perf0 = self.perf()
        t0 = time.perf_counter()
        slider.press(key)
        done = page.wait_for_function(DONE_JS, arg=[before], polling="raf", timeout=TIMEOUT_MS).json_value()
        seconds = time.perf_counter() - t0
        new = int(slider.input_value())
        note = ("" if done["changed"] else " (L2 unchanged)") + (" (cached ω)" if new in self.seen else "")
        self.seen.add(new)
        self.i += 1
        print(f"[{self.name}] {self.i:2d}: {key:<10} ω={slider.get_attribute('aria-valuetext'):<8} "
              f"L2 {before} -> {done['l2']}  {seconds:.3f} s{note}; {self.cost(perf0)}", flush=True)
        return seconds

    def server_cpu(self) -> float:
        """CPU seconds (user + system, all threads) the app's server process has used so far; 0 if unknown.
        Unlike wall time it hardly depends on what else the machine runs."""
        if self.server_pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cost(self, perf0: dict[str, float]) -> str:
        """What the last action cost the browser: messages (count, KiB, the largest element kinds), images
        fetched, DevTools Performance seconds."""
        perf1 = self.perf()
        busy = f"server cpu {self.server_cpu() - perf0.get('server_cpu', 0.0):.3f} " * (self.server_pid is not None)
        busy += " ".join(f"{k[:-8].lower()} {perf1[k] - perf0[k]:.3f}" for k in
                        ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration") if k in perf1)
        kinds = message_kinds(self.frames)
        top = ", ".join(f"{k} {n}×{b / 1024:.1f} KiB" for k, (n, b) in
                        sorted(kinds.items(), key=lambda kv: -kv[1][1])[:4])
        return (f"{len(self.frames)} messages {sum(map(len, self.frames)) / 1024:.1f} KiB ({top}), "
                f"{len(self.media)} images {sum(self.media) / 1024:.0f} KiB; s: {busy}")

    def new_image(self, caption: str) -> tuple[float, float]:
        """Pick gallery image ``caption`` in the sidebar; seconds until its first L2 is on screen and until
        the page is idle again."""
        page = self.page
        before = page.evaluate(f"({STATE_JS})()")["l2"]
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Gallery image").locator("input")
        box.click()
        box.fill(caption)
        page.evaluate("() => { window.__sawRunning = false; }")
        del self.frames[:], self.media[:]
        perf0 = self.perf()
        t0 = time.perf_counter()
        box.press("Enter")
        page.wait_for_function(f"([b]) => {{ const s = ({STATE_JS})(); return s.l2 !== null && s.l2 !== b; }}",
                               arg=[before], polling="raf", timeout=TIMEOUT_MS)
        shown = time.perf_counter() - t0
        page.wait_for_function(f"() => !({STATE_JS})().running", polling="raf", timeout=TIMEOUT_MS)
        idle = time.perf_counter() - t0
        self.images_done += 1
        print(f"[{self.name}] image {self.images_done}: {caption[:30]:<30} L2 {before} -> "
              f"{page.evaluate(f'({STATE_JS})()')['l2']}  shown {shown:.3f} s, idle {idle:.3f} s; "
              f"{self.cost(perf0)}", flush=True)
        return shown, idle


def message_kinds(frames: list[bytes]) -> dict[str, tuple[int, int]]:
    """Streamlit forward messages by kind (an element's type for a delta): {kind: (count, bytes)}."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    out: dict[str, tuple[int, int]] = {}
    for raw in frames:
        try:
            msg = ForwardMsg.FromString(raw)
        except Exception:  # noqa: BLE001 - not a forward message
            kind = "other"
        else:
            kind = msg.WhichOneof("type") or "other"
            if kind == "delta":
                d = msg.delta
                kind = d.WhichOneof("type") or "delta"
                if kind == "new_element":
                    kind = d.new_element.WhichOneof("type") or kind
        n, b = out.get(kind, (0, 0))
        out[kind] = (n + 1, b + len(raw))
    return out


def gallery_captions(n: int) -> list[str]:
    """The Explorer's picker text of the default collection's images 2 … n + 1 (the first is shown at start)."""
    from sdsgsm.data import gallery

    return [g.caption.split(";")[0][:60] for g in gallery("imagenet")[1:n + 1]]


def worktree(rev: str) -> Path:
    """A detached git worktree of ``rev`` (the baseline app), reusing this checkout's virtual environment."""
    path = Path(tempfile.mkdtemp(prefix="sdsgsm-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--keys", choices=["fresh", "alternate"], default="fresh")
    ap.add_argument("--url", help="use this running app instead of starting `streamlit run app.py`")
    ap.add_argument("--baseline", metavar="REV", help="also serve git revision REV and interleave its key presses "
                    "with the current tree's (side by side in one run); prints both medians and their ratio")
    ap.add_argument("--script", choices=["serve.py", "app.py"], help="serve the current tree with this "
                    "script (default: serve.py where the tree has it)")
    ap.add_argument("--baseline-script", choices=["serve.py", "app.py"], help="the same for --baseline "
                    "(--baseline HEAD --baseline-script app.py compares the two entries of one tree)")
    ap.add_argument("--current-env", action="append", default=[], metavar="NAME=VALUE", help="start the current "
                    "tree's server with this environment variable too (e.g. OMP_WAIT_POLICY=PASSIVE; with "
                    "--baseline HEAD it compares one setting against the default on the same code)")
    ap.add_argument("--images", type=int, default=0, metavar="N", help="after the key presses, pick N new gallery "
                    "images one after another (never computed in this server) and time each until its first L2 "
                    "is on screen: the first render of a new image with the model loaded")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    servers, base_dir = [], worktree(args.baseline) if args.baseline else None
    try:
        url = args.url.rstrip("/") if args.url else None
        if url is None:
            extra = dict(kv.split("=", 1) for kv in args.current_env)
            saved = {k: os.environ.get(k) for k in extra}
            os.environ.update(extra)
            try:
                servers.append(start_server(script=args.script))
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
            url = servers[-1][1]
        if base_dir is not None:
            servers.append(start_server(base_dir, script=args.baseline_script))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            pages = [Explorer(browser, url, "current", args.keys, servers[0][0].pid if servers and not args.url
                              else None)]
            if base_dir is not None:
                pages.insert(0, Explorer(browser, servers[-1][1], f"baseline {args.baseline}", args.keys,
                                         servers[-1][0].pid))
            times = {e.name: [] for e in pages}
            firsts = {e.name: [] for e in pages}
            for _ in range(args.repeats):  # interleaved: both apps see the same machine load
                for e in pages:
                    times[e.name].append(e.press())
            for caption in gallery_captions(args.images):
                for e in pages:
                    firsts[e.name].append(e.new_image(caption)[0])
            browser.close()
    finally:
        for proc, _ in servers:
            stop_server(proc)
        if base_dir is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=ROOT, check=False)
    for what, runs, n, extra in (("omega_change_browser_median_s", times, args.repeats, f" keys={args.keys}"),
                                 ("new_image_browser_median_s", firsts, args.images, "")):
        if not n:
            continue
        for name, ts in runs.items():
            print(f"[{name}] {what[:-9]}: median {statistics.median(ts):.3f} s, min {min(ts):.3f} s, "
                  f"max {max(ts):.3f} s")
        if base_dir is not None:
            before, after = (statistics.median(ts) for ts in runs.values())
            print(f"{what}={before:.3f}->{after:.3f} ratio={after / before:.2f} n={n}{extra}")
        else:
            print(f"{what}={statistics.median(runs['current']):.3f} n={n}{extra}")


if __name__ == "__main__":
    main()
