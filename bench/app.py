"""Explorer timings through Streamlit's AppTest: first full render and an ω change (scan cached).

Runs the real page script in-process with cold caches, so the first render includes the model
load, the zero-out scan and the attack; the ω change reuses the cached scan. Last line:
``first_render_s=<t> omega_change_s=<t>``.

    python bench/app.py [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

OMEGAS = [5.0, 20.0, 2.0, 50.0, 1.0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    at = AppTest.from_file(str(ROOT / "pages" / "1_Explorer.py"), default_timeout=900)
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
