"""Figure and sweep costs, measured side by side in one process.

    python bench/figures.py                       # 6 images × 4 methods grid; sweep scan reuse on 4 images
    python bench/figures.py --images 2 --methods fgsm,sd-sgsm --points 4

1. Grid (paper Fig. 5/6): seconds to scan and attack every (image, method) — each image is
   scanned once and shared by the methods — then seconds to render PDF, PNG (300 dpi) and SVG.
2. Sweep scan reuse: the same ε sweep (sd-sgsm, --points values) run twice back to back: once
   with one shared ScanCache (what ``run_sweep`` does) and once with a fresh cache per point (a
   scan per point, what a loop of independent runs would do). The two must give identical
   metrics; the line printed last is

       sweep_scan_reuse_speedup=<x> scans_shared=<a> scans_per_point=<b> identical=<True|False>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdsgsm.attacks import build_config
from sdsgsm.data import gallery, load_gallery  # noqa: E402
from sdsgsm.experiments import figure_grid  # noqa: E402
from sdsgsm.experiments.sweep import Axis, ScanCache, run_sweep  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402
from sdsgsm.render import figures  # noqa: E402


def bench_grid(model, n_images: int, methods: list[str]) -> None:
    keys = [g.key for g in gallery("imagenet")][:n_images]
    cfg = build_config({})
    t0 = time.perf_counter()
    rows, names = figure_grid.grid_records(model, keys, methods, cfg)
    t_attack = time.perf_counter() - t0
    t0 = time.perf_counter()
    fig = figures.build(figures.grid_figure, rows, names, methods)
    t_build = time.perf_counter() - t0
    sizes, times = {}, {}
    for fmt in figures.FORMATS:
        t0 = time.perf_counter()
        sizes[fmt] = len(figures.render(fig, fmt))
        times[fmt] = time.perf_counter() - t0
    print(f"grid {n_images} images × {len(methods)} methods ({','.join(methods)}; defaults: patch 16, T = 5): "
          f"scan+attacks {t_attack:.1f} s, figure {t_build:.2f} s, "
          + ", ".join(f"{f} {times[f]:.1f} s / {sizes[f] / 1e6:.1f} MB" for f in figures.FORMATS)
          + f"; total {t_attack + t_build + sum(times.values()):.1f} s")


def bench_reuse(model, n_images: int, points: int) -> None:
    x, y, _ = load_gallery("imagenet", model.input_size, n_images)
    axis = Axis("eps", tuple(np.linspace(2 / 255, 8 / 255, points).tolist()))
    base = {"steps": 1}
    t0 = time.perf_counter()
    shared = run_sweep(model, x, y, ["sd-sgsm"], [axis], base, batch_size=n_images, criterion="all")
    t_shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = [run_sweep(model, x, y, ["sd-sgsm"], [Axis("eps", (v,))], base, batch_size=n_images, criterion="all",
                       scans=ScanCache(model, model.input_size)) for v in axis.values]
    t_fresh = time.perf_counter() - t0
    cols = ["success", "l2", "linf", "ssim"]
    fresh = np.concatenate([p.per_sample[cols].to_numpy(float) for p in parts])
    same = np.array_equal(shared.per_sample[cols].to_numpy(float), fresh)
    print(f"sweep {points} ε points × sd-sgsm (T = 1) on {n_images} images: shared scan {t_shared:.1f} s, "
          f"scan per point {t_fresh:.1f} s")
    print(f"sweep_scan_reuse_speedup={t_fresh / t_shared:.2f} scans_shared={shared.config['n_scans']} "
          f"scans_per_point={sum(p.config['n_scans'] for p in parts)} identical={same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--methods", default="fgsm,sgsm,sd-fgsm,sd-sgsm")
    ap.add_argument("--sweep-images", type=int, default=4)
    ap.add_argument("--points", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("efficientnet_lite0", device="cpu")
    bench_grid(model, args.images, args.methods.split(","))
    bench_reuse(model, args.sweep_images, args.points)


if __name__ == "__main__":
    main()
