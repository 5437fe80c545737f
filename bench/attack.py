"""SD-SGSM (T = 10, cached scan) against PGD (T = 10) on the same images, side by side in one run.

Also times the full SD-SGSM pipeline with an uncached zero-out scan. Prints per-image timings
and, as its last line: ``sdsgsm_over_pgd=<x> full_pipeline_s=<t>``.

    python bench/attack.py [--limit N] [--device cpu|cuda] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks import AttackConfig, run_attack  # noqa: E402
from sdsgsm.attacks.base import sync  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402
from sdsgsm.occlusion import occlusion_scan  # noqa: E402


def timed(fn, *args, **kwargs) -> float:
    """Wall seconds of one call, device-synchronised."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    sync(out.x_adv.device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    model = load_model("efficientnet_lite0", device=args.device)
    x, y, keys = load_gallery("imagenet", model.input_size, args.limit)
    x, y = x.to(model.device), y.to(model.device)
    cfg = AttackConfig(steps=10, alpha=4 / 255)
    print(f"device={model.device} torch_threads={torch.get_num_threads()} images={len(x)} T=10 alpha=4/255")
    run_attack(model, x[:1], y[:1], cfg, "pgd")  # warm-up
    sd_times, pgd_times, full_times = [], [], []
    for i in range(len(x)):
        xi, yi = x[i:i + 1], y[i:i + 1]
        scan = occlusion_scan(model, xi, cfg.scan, y=yi)
        sync(model.device)
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            pgd_times.append(timed(run_attack, model, xi, yi, cfg, "pgd"))
            sd_times.append(timed(run_attack, model, xi, yi, cfg, "sd-sgsm", scan=scan))
        full_times.append(timed(run_attack, model, xi, yi, cfg, "sd-sgsm"))
        print(f"{keys[i]}: pgd {statistics.median(pgd_times[-args.repeats:]):.3f} s  "
              f"sd-sgsm(cached scan) {statistics.median(sd_times[-args.repeats:]):.3f} s  "
              f"sd-sgsm(full) {full_times[-1]:.3f} s")
    ratio = statistics.median(sd_times) / statistics.median(pgd_times)
    print(f"median pgd {statistics.median(pgd_times):.3f} s, sd-sgsm {statistics.median(sd_times):.3f} s, "
          f"full pipeline mean {statistics.mean(full_times):.3f} s (max {max(full_times):.3f} s)")
    print(f"sdsgsm_over_pgd={ratio:.3f} full_pipeline_s={statistics.mean(full_times):.3f}")


if __name__ == "__main__":
    main()
