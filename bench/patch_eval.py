"""Accuracy and target-hit rate under the adversarial patch, per patch size and placement.

    python bench/patch_eval.py [--limit N] [--mode universal|paste]

On the 20-image ImageNet gallery with the embedded EfficientNet-Lite0: top-1 accuracy (prediction
= gallery label) and target-hit rate (prediction = 'toaster', 859) for sides 32/48/64 at every
placement, plus the clean accuracy. The zero-out scan (default window 16 px) is computed once and
shared by the omega-star and least-sensitive placements.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from sdsgsm.attacks import AttackConfig, run_attack  # noqa: E402
from sdsgsm.attacks.patch import TARGET  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402
from sdsgsm.occlusion import occlusion_scan  # noqa: E402
from sdsgsm.params import PLACEMENTS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--mode", default="universal", choices=("universal", "paste"))
    args = ap.parse_args()
    model = load_model("efficientnet_lite0", device="cpu")
    x, y, _ = load_gallery("imagenet", model.input_size, args.limit)
    cfg0 = AttackConfig(patch_mode=args.mode)
    t0 = time.perf_counter()
    scan = occlusion_scan(model, x, cfg0.scan)
    print(f"{len(x)} images; clean accuracy {(scan.clean_logits.argmax(1) == y).float().mean():.0%}; "
          f"scan {time.perf_counter() - t0:.1f} s; mode {args.mode}")
    print("| size | placement | accuracy | target hit (toaster) |\n|---|---|---|---|")
    for size in (32, 48, 64):
        for placement in PLACEMENTS:
            cfg = AttackConfig(patch_size=size, placement=placement, patch_mode=args.mode)
            pred = run_attack(model, x, y, cfg, "patch", scan=scan).adv_pred
            acc, hit = (pred == y).float().mean().item(), (pred == TARGET).float().mean().item()
            print(f"| {size} | {placement} | {acc:.0%} | {hit:.0%} |", flush=True)


if __name__ == "__main__":
    with torch.inference_mode(False):
        main()
