"""GPU attack core, measured: per-sample time of batched SD-SGSM (T = 10, with its
zero-out scan) and PGD (T = 10) on the embedded EfficientNet-Lite0 at 224 px at several batch
sizes, the scan alone per image (196 windows at m = 16), and the whole ``table2`` preset on the
gallery. Runs on CUDA when present, else on the CPU (``--quick`` for a short smoke run there).

Timing: ``torch.cuda.synchronize()`` around each timed region (sdsgsm.timing), one untimed warm-up
call per configuration first; images are gallery photos repeated to the batch size (speed does
not depend on the content). Targets from the issue, printed as ratios measured in this run:
SD-SGSM ≤ 3.6 ms/sample (the paper's 0.181 s/sample on an RTX 4070 laptop at 32 px, ÷ 50) and
the scan ≤ 10 ms/image in batch. The last line is ``key=value`` pairs for bench/RESULTS.md.

    python bench/gpu.py                       # batches 1,16,64,256 + scan + table2 on the gallery
    python bench/gpu.py --quick               # CPU smoke run: batches 1,2, 2 images, no table2
    python bench/gpu.py --profile sd-sgsm     # torch.profiler table of one batch (top kernels)
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks import AttackConfig, run_attack  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.experiments.benchmark import preset_config, run_benchmark  # noqa: E402
from sdsgsm.models import default_device, load_model  # noqa: E402
from sdsgsm.occlusion import ScanConfig, occlusion_scan  # noqa: E402
from sdsgsm.timing import clock  # noqa: E402

PAPER_S_PER_SAMPLE = 0.181  # SD-SGSM, RTX 4070 laptop, CIFAR-10 32 px (paper Table 2)
TARGET_SDSGSM_S = PAPER_S_PER_SAMPLE / 50  # 3.6 ms
TARGET_SCAN_S = 0.010


def images(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n gallery images (repeated) at 224 px and their labels."""
    x, y, _ = load_gallery("imagenet", 224)
    reps = -(-n // len(x))
    return x.repeat(reps, 1, 1, 1)[:n].to(device), y.repeat(reps)[:n].to(device)


def per_sample_attack(model, x, y, cfg: AttackConfig, method: str, batch: int, rounds: int) -> float:
    """Best of ``rounds`` synchronised seconds per sample for one batch of ``batch`` images
    (the method's own scan included for spatial methods)."""
    xb, yb = x[:batch], y[:batch]
    run_attack(model, xb, yb, cfg, method)  # warm-up: kernels, allocator, folded networks
    best = float("inf")
    for _ in range(rounds):
        t0 = clock(xb.device)
        run_attack(model, xb, yb, cfg, method)
        best = min(best, (clock(xb.device) - t0) / batch)
    return best


def per_image_scan(model, x, cfg: ScanConfig, batch: int, rounds: int) -> tuple[float, str]:
    """Best seconds per image of the zero-out scan of a batch, and the engine that ran."""
    res = occlusion_scan(model, x[:batch], cfg)
    best = min(occlusion_scan(model, x[:batch], cfg).seconds for _ in range(rounds))
    return best / batch, res.engine


def profile(model, x, y, cfg: AttackConfig, method: str, batch: int) -> None:
    """torch.profiler table (top 20 by device time) of one batch, after a warm-up."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    run_attack(model, x[:batch], y[:batch], cfg, method)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.device.type == "cuda" else [])
    with prof(activities=acts) as p:
        run_attack(model, x[:batch], y[:batch], cfg, method)
        clock(x.device)
    key = "cuda_time_total" if x.device.type == "cuda" else "cpu_time_total"
    print(p.key_averages().table(sort_by=key, row_limit=20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,16,64,256", help="batch sizes for SD-SGSM and PGD")
    ap.add_argument("--scan-batch", type=int, default=64, help="images per scan call for the scan-alone figure")
    ap.add_argument("--rounds", type=int, default=3, help="timed repetitions (best kept)")
    ap.add_argument("--no-table2", action="store_true", help="skip the table2 preset on the gallery")
    ap.add_argument("--quick", action="store_true", help="smoke run: batches 1,2; scan batch 2; 1 round; no table2")
    ap.add_argument("--profile", default=None, help="print a torch.profiler table for this method and stop")
    args = ap.parse_args()
    if args.quick:
        args.batches, args.scan_batch, args.rounds, args.no_table2 = "1,2", 2, 1, True
    batches = [int(b) for b in args.batches.split(",")]
    dev = default_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.machine()} CPU"
    cuda = torch.version.cuda if dev.type == "cuda" else None
    print(f"# {datetime.now(UTC).isoformat(timespec='seconds')} device {name}, torch {torch.__version__}, "
          f"CUDA {cuda}, threads {torch.get_num_threads()}")
    model = load_model("efficientnet_lite0", device=str(dev))
    x, y = images(max(batches + [args.scan_batch]), dev)
    cfg = AttackConfig(steps=10, alpha=4 / 255)  # Table 2: T = 10, α = 4/255, ε = 8/255
    if args.profile:
        profile(model, x, y, cfg, args.profile, batches[-1])
        return
    out = {}
    for b in batches:
        sd = per_sample_attack(model, x, y, cfg, "sd-sgsm", b, args.rounds)
        pgd = per_sample_attack(model, x, y, cfg, "pgd", b, args.rounds)
        out[f"sdsgsm_b{b}_ms"], out[f"pgd_b{b}_ms"] = sd * 1e3, pgd * 1e3
        print(f"batch {b:4d}: sd-sgsm {sd * 1e3:9.2f} ms/sample ({TARGET_SDSGSM_S / sd:6.2f}× the 3.6 ms target, "
              f"{PAPER_S_PER_SAMPLE / sd:7.1f}× faster than the paper's 0.181 s); pgd {pgd * 1e3:9.2f} ms/sample; "
              f"sd-sgsm/pgd {sd / pgd:.2f}", flush=True)
    scan_s, engine = per_image_scan(model, x, cfg.scan, args.scan_batch, args.rounds)
    out["scan_ms"] = scan_s * 1e3
    print(f"scan alone ({engine}, 196 windows at m = 16, batch {args.scan_batch}): {scan_s * 1e3:.2f} ms/image "
          f"({TARGET_SCAN_S / scan_s:.2f}× the 10 ms target)", flush=True)
    if not args.no_table2:
        methods, t2 = preset_config("table2")
        xg, yg, _ = load_gallery("imagenet", 224)
        t0 = time.perf_counter()
        res = run_benchmark(model, xg, yg, methods, t2, batch_size=20)
        out["table2_s"] = time.perf_counter() - t0
        print(res.markdown())
        print(f"table2 preset on the gallery ({len(methods)} methods, 20 images): {out['table2_s']:.1f} s wall")
    print(f"device={name.replace(' ', '_')} torch={torch.__version__} cuda={cuda} "
          + " ".join(f"{k}={v:.3f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
