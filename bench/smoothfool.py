"""SmoothFool before and after, side by side in one run: the core of git revision REV (loaded from git
beside the current code) and the current one on the same gallery images, interleaved.

Both cores attack one image at a time (the new one shares passes within an image). Prints, per
image, whether x_adv is bit-equal, each run's label change and Ω_n (normalised roughness,
SmoothFool eq. 4), then medians of the wall time per call and their ratio (1 torch thread by default).
Last line: ``smoothfool_speedup=<x> same_x_adv=<k>/<n>
fooled=<a>/<n>-><b>/<n>``.

    python bench/smoothfool.py [--limit N] [--repeats R] [--baseline REV] [--batch B]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks import AttackConfig  # noqa: E402
from sdsgsm.attacks.smoothfool import smoothfool_core  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402
from sdsgsm.smoothing import roughness_normalised  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def baseline_module(rev: str, path: str, name: str):
    """The module at ``path`` as it was at git revision ``rev``, loaded as ``sdsgsm.attacks.<name>``."""
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    mod = types.ModuleType(f"sdsgsm.attacks.{name}")
    mod.__package__ = "sdsgsm.attacks"
    sys.modules[mod.__name__] = mod
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="images per call of the new core (default: all)")
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    old = baseline_module(args.baseline, "sdsgsm/attacks/smoothfool.py", "_baseline_smoothfool")
    model = load_model("efficientnet_lite0", device=args.device)
    x, y, keys = load_gallery("imagenet", model.input_size, args.limit)
    x, y = x.to(model.device), y.to(model.device)
    cfg = AttackConfig()  # defaults: Gaussian σ_g = 2, SmoothClip ε = 0.1, N = 10
    bs = args.batch or len(x)

    def new_core():
        return torch.cat([smoothfool_core(model, x[i:i + bs], y[i:i + bs], None, cfg).x_adv
                          for i in range(0, len(x), bs)])

    def old_core():
        return old.smoothfool_core(model, x, y, None, cfg).x_adv

    runs = {"old": old_core, "new": new_core}
    times: dict[str, list[float]] = {k: [] for k in runs}
    outs = {}
    for r in range(args.repeats):
        for k in (("old", "new") if r % 2 == 0 else ("new", "old")):
            t0 = time.perf_counter()
            outs[k] = runs[k]()
            times[k].append(time.perf_counter() - t0)
    with torch.no_grad():
        pred = {k: model(v).argmax(1) for k, v in outs.items()}
    omega = {k: roughness_normalised(v - x) for k, v in outs.items()}
    same = 0
    for i in range(len(x)):
        eq = torch.equal(outs["old"][i], outs["new"][i])
        same += eq
        print(f"{keys[i]}: bit-equal {eq}  fooled old {bool(pred['old'][i] != y[i])} new "
              f"{bool(pred['new'][i] != y[i])}  Ω_n old {float(omega['old'][i]):.4f} new {float(omega['new'][i]):.4f}"
              f"  max|Δx_adv| {float((outs['old'][i] - outs['new'][i]).abs().max()):.2e}")
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(x)
    fooled = {k: int((pred[k] != y).sum()) for k in pred}
    print(f"{n} images, {args.repeats} interleaved repeats, torch threads {torch.get_num_threads()}: old "
          f"{med['old']:.2f} s ({med['old'] / n:.2f} s/image), new {med['new']:.2f} s ({med['new'] / n:.2f} s/image)")
    print(f"smoothfool_speedup={med['old'] / med['new']:.2f} same_x_adv={same}/{n} "
          f"fooled={fooled['old']}/{n}->{fooled['new']}/{n}")


if __name__ == "__main__":
    main()
