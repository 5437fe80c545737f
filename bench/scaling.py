"""How the zero-out scan and the SD-SGSM attack grow with the image: one gallery image resized to
each side, EfficientNet-Lite0 (fully convolutional, so any side runs), 1 torch thread by default.

* scan: occlusion_scan (engine auto) per side (224, 384, 512) and window side m (16, 32, and the
  default for the side, sdsgsm.params.default_patch); windows = (side/m)², seconds, ms per window;
* attack: SD-SGSM with the scan cached, per side, T (5, 10, 20) and batch size (1, 2, 4: the same
  image repeated), seconds per image.

Prints one table per part (median of ``--repeats`` runs). Large sides are slow on a shared CPU: pick
with --sides / --patches / --steps / --batches.

    python bench/scaling.py [--sides 224,384,512] [--patches 16,32] [--steps 5,10,20] [--batches 1,2,4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks import AttackConfig, run_attack  # noqa: E402
from sdsgsm.attacks.base import sync  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402
from sdsgsm.occlusion import ScanConfig, grid_shape, occlusion_scan  # noqa: E402
from sdsgsm.params import default_patch  # noqa: E402


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def median_time(repeats: int, fn, *args, **kwargs) -> tuple[float, object]:
    """(median wall seconds of fn(*args, **kwargs) over ``repeats`` calls, the last result)."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(torch.device("cpu"))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", default="224,384,512")
    ap.add_argument("--patches", default="16,32")
    ap.add_argument("--steps", default="5,10,20")
    ap.add_argument("--batches", default="1,2,4")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-attack", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("efficientnet_lite0", device="cpu")
    x224, y, _ = load_gallery("imagenet", model.input_size, 1)
    print(f"torch threads {torch.get_num_threads()}, repeats {args.repeats}")
    print("\nscan (engine auto)\n| side | m | windows | engine | s | ms/window |\n|---|---|---|---|---|---|")
    scans = {}
    for side in ints(args.sides):
        x = F.interpolate(x224, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
        for m in sorted(set(ints(args.patches) + [default_patch(side)])):
            cfg = ScanConfig(patch=m)
            occlusion_scan(model, x, cfg, y=y)  # warm-up (compiles the incremental plan for this shape)
            sec, scan = median_time(args.repeats, occlusion_scan, model, x, cfg, y=y)
            nh, nw = grid_shape(side, side, cfg)
            scans[(side, m)] = scan
            print(f"| {side} | {m}{' (default)' if m == default_patch(side) else ''} | {nh * nw} | {scan.engine} | "
                  f"{sec:.2f} | {1000 * sec / (nh * nw):.1f} |", flush=True)
    if args.skip_attack:
        return
    print("\nSD-SGSM attack, scan cached (default m)\n| side | T | batch | s per image |\n|---|---|---|---|")
    for side in ints(args.sides):
        x = F.interpolate(x224, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
        m = default_patch(side)
        for b in ints(args.batches):
            xb, yb = x.expand(b, -1, -1, -1).contiguous(), y.expand(b)
            scan = occlusion_scan(model, xb, ScanConfig(patch=m), y=yb)
            for t in ints(args.steps):
                cfg = AttackConfig(steps=t, scan=replace(ScanConfig(), patch=m))
                sec, _ = median_time(args.repeats, run_attack, model, xb, yb, cfg,
                                       "sd-sgsm", scan=scan)
                print(f"| {side} | {t} | {b} | {sec / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
