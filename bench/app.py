"""Explorer timings through Streamlit's AppTest: first full render and an ω change (scan cached).

Runs the real page script in-process with cold caches, so the first render includes the model
load, the zero-out scan and the attack; the ω change reuses the cached scan. Last line:
``first_render_s=<t> omega_change_s=<t>``.

``--learn``: the Learn page instead, at the defaults (patch auto = 16 px, 196 windows; T = 5).
First a visit to every station with cold caches (station 2 pays the zero-out scan, 5 the input
gradient, 6 the recorded attack), then R rounds of re-rendering every station (its computations
cached), a new ω on station 5 (Proposition 1 and the histogram recomputed) and a move of the
replay slider on station 6. Prints per-station seconds; last line:
``learn_rerender_max_s=<t> learn_omega5_s=<t> learn_replay_t_s=<t>`` (medians over the rounds).

    python bench/app.py [--repeats R] [--learn]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = ROOT / "sdsgsm" / "ui" / "app"
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

OMEGAS = [5.0, 20.0, 2.0, 50.0, 1.0]


def timed_run(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return time.perf_counter() - t0


def learn(repeats: int) -> None:
    """Per-station re-render times of the Learn page after its first visit (module docstring)."""
    from sdsgsm.ui.learn import STATIONS

    at = AppTest.from_file(str(APP_DIR / "pages" / "4_Learn.py"), default_timeout=900)
    print(f"station 1 first render (model load): {timed_run(at):.2f} s")
    for name in STATIONS[1:]:
        at.radio(key="ln_station").set_value(name)
        print(f"station {name}: first visit {timed_run(at):.2f} s")
    rerender: dict[str, list[float]] = {name: [] for name in STATIONS}
    omega5, replay_t = [], []
    for r in range(repeats):
        for name in STATIONS:
            at.radio(key="ln_station").set_value(name)
            rerender[name].append(timed_run(at))
            if name.startswith("5"):
                at.select_slider(key="ln_omega").set_value(OMEGAS[r % len(OMEGAS)])
                omega5.append(timed_run(at))
                at.select_slider(key="ln_omega").set_value(10.0)
                timed_run(at)
            if name.startswith("6"):
                at.slider(key="ln_t").set_value((r % 5) + 1)
                replay_t.append(timed_run(at))
    for name, times in rerender.items():
        med = statistics.median(times)
        print(f"station {name}: re-render median {med:.3f} s (max {max(times):.3f}, n={len(times)})")
    print(f"station 5 new omega: median {statistics.median(omega5):.3f} s; station 6 step slider: "
          f"median {statistics.median(replay_t):.3f} s")
    worst = max(statistics.median(t) for t in rerender.values())
    print(f"learn_rerender_max_s={worst:.3f} learn_omega5_s={statistics.median(omega5):.3f} "
          f"learn_replay_t_s={statistics.median(replay_t):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--learn", action="store_true", help="time the Learn page's stations instead")
    args = ap.parse_args()
    if args.learn:
        learn(args.repeats)
        return
    at = AppTest.from_file(str(APP_DIR / "pages" / "1_Explorer.py"), default_timeout=900)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    assert not at.exception and at.metric, "Explorer did not render its metrics"
    changes = []
    for omega in OMEGAS[:args.repeats]:
        t0 = time.perf_counter()
        at.select_slider(key="ex_omega").set_value(omega).run()
        changes.append(time.perf_counter() - t0)
        assert not at.exception and at.metric
        print(f"omega={omega:g}: {changes[-1]:.3f} s, L2 {[m.value for m in at.metric if m.label == 'L2'][0]}")
    steps = at.slider(key="ex_steps").value
    print(f"defaults: steps={steps}, patch={at.select_slider(key='ex_patch').value}; first render {first:.2f} s")
    print(f"first_render_s={first:.2f} omega_change_s={statistics.median(changes):.3f}")


if __name__ == "__main__":
    main()
