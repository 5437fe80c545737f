"""Forward + input-gradient backward per image for each transfer model, side by side in one run.

Every model takes the same 224-px gallery image (sdsgsm/ensemble.py: Lite1 and Lite2 resize it
bilinearly to 240 / 260 px inside their forward); the ensemble is the mean of the members' logits.
Models are timed interleaved in rotating order, so drift in machine load hits all alike. Prints one
line per model (median seconds per image, ratio to Lite0, and top-1 accuracy on the 20 gallery
images at 224 px, resized inside the model as in a transfer run) and, as its last line,
``lite0_s=… lite1_s=… lite2_s=… ens_…_s=…``.

    python bench/transfer.py [--models lite0,lite1,lite2,ens:lite0+lite1] [--repeats R] [--batch B]
                             [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks.base import sync  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.ensemble import build, parse_specs  # noqa: E402


def step(model, x: torch.Tensor) -> None:
    """One attack step's work: forward and the input gradient of the summed logits' max."""
    xr = x.clone().requires_grad_(True)
    torch.autograd.grad(model(xr).max(1).values.sum(), xr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lite0,lite1,lite2,ens:lite0+lite1,ens:lite0+lite1+lite2")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=1, help="images per call (times are per image)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = parse_specs(args.models)
    models = {s.label: build(s, device=args.device) for s in specs}
    x, _, _ = load_gallery("imagenet", 224, args.batch)
    x = x.to(args.device)
    times: dict[str, list[float]] = {k: [] for k in models}
    for model in models.values():  # warm-up: prepared networks, kernels
        step(model, x)
    names = list(models)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            step(models[name], x)
            sync(x.device)
            times[name].append((time.perf_counter() - t0) / len(x))
    xs, ys, _ = load_gallery("imagenet", 224)
    with torch.inference_mode():
        acc = {n: (m(xs.to(args.device)).argmax(1).cpu() == ys).float().mean().item() for n, m in models.items()}
    base = statistics.median(times[names[0]])
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, batch {len(x)}, {args.repeats} repeats")
    for name in names:
        med = statistics.median(times[name])
        print(f"{name:24s} forward+backward {med * 1e3:7.1f} ms/image  ×{med / base:.2f} of {names[0]}  "
              f"top-1 {100 * acc[name]:.0f} % of {len(ys)} gallery images")
    print(" ".join(f"{n.replace('ens:', 'ens_').replace('+', '_')}_s={statistics.median(t):.4f}"
                   for n, t in times.items()))


if __name__ == "__main__":
    main()
