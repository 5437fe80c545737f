"""Batched attack throughput per sample: SD-SGSM vs PGD at T = 10 (GPU when present, else CPU).

Models: the paper's CIFAR ResNet-18 architecture at 32 px (random fixed-seed weights: speed does
not depend on the weights) and the embedded EfficientNet-Lite0 at 224 px. Timing uses
``torch.cuda.synchronize()``; the zero-out scan may use AMP (ScanConfig default), attack
gradients are always float32. Compares with the paper's 0.181 s/sample (RTX 4070 laptop).
Last line: ``device=<name> cifar_sdsgsm_s=<t> cifar_pgd_s=<t> lite0_sdsgsm_s=<t> lite0_pgd_s=<t>
speedup_vs_paper=<x>``.

    python bench/gpu.py [--batch 256] [--lite-batch 32] [--n 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks import AttackConfig, run_attack  # noqa: E402
from sdsgsm.attacks.base import sync  # noqa: E402
from sdsgsm.models import CIFAR10_LABELS, Classifier, cifar_resnet18, default_device, load_model  # noqa: E402
from sdsgsm.occlusion import ScanConfig  # noqa: E402

PAPER_S_PER_SAMPLE = 0.181


def per_sample(model, x, y, cfg, method: str, batch: int) -> float:
    """Seconds per sample over x, in batches (one warm-up batch first)."""
    run_attack(model, x[:batch], y[:batch], cfg, method)
    sync(x.device)
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        run_attack(model, x[i:i + batch], y[i:i + batch], cfg, method)
    sync(x.device)
    return (time.perf_counter() - t0) / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lite-batch", type=int, default=32)
    ap.add_argument("--n", type=int, default=1024, help="CIFAR-size samples")
    ap.add_argument("--lite-n", type=int, default=128)
    args = ap.parse_args()
    dev = default_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    torch.manual_seed(0)
    cifar = Classifier(cifar_resnet18(), "cifar_resnet18", CIFAR10_LABELS, 32).to(dev)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (args.n,), generator=g).to(dev)
    cfg32 = AttackConfig(steps=10, alpha=4 / 255, scan=ScanConfig(patch=4))
    c_sd = per_sample(cifar, x, y, cfg32, "sd-sgsm", args.batch)
    c_pgd = per_sample(cifar, x, y, cfg32, "pgd", args.batch)
    print(f"{name}: cifar_resnet18 32px batch {args.batch}: sd-sgsm {c_sd * 1e3:.3f} ms/sample, "
          f"pgd {c_pgd * 1e3:.3f} ms/sample")
    lite = load_model("efficientnet_lite0")
    xl = torch.rand(args.lite_n, 3, 224, 224, generator=g).to(dev)
    yl = torch.randint(0, 1000, (args.lite_n,), generator=g).to(dev)
    cfg224 = AttackConfig(steps=10, alpha=4 / 255)
    l_sd = per_sample(lite, xl, yl, cfg224, "sd-sgsm", args.lite_batch)
    l_pgd = per_sample(lite, xl, yl, cfg224, "pgd", args.lite_batch)
    print(f"{name}: efficientnet_lite0 224px batch {args.lite_batch}: sd-sgsm {l_sd * 1e3:.2f} ms/sample, "
          f"pgd {l_pgd * 1e3:.2f} ms/sample")
    print(f"device={name.replace(' ', '_')} cifar_sdsgsm_s={c_sd:.5f} cifar_pgd_s={c_pgd:.5f} "
          f"lite0_sdsgsm_s={l_sd:.5f} lite0_pgd_s={l_pgd:.5f} speedup_vs_paper={PAPER_S_PER_SAMPLE / c_sd:.1f}")


if __name__ == "__main__":
    main()
