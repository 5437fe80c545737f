"""The table2 preset's slow baselines before and after, side by side in one run.

Per method, the wall time of run_method on the same gallery images (1 torch thread), interleaved in
alternating order, so drift in machine load hits both alike:

* deepfool: ART's ``DeepFool.generate`` (the code of the previous revision: a forward pass per class
  gradient) against :func:`sdsgsm.attacks.deepfool.deepfool` (one per iteration); x_adv bit-equal?
* cw, fab: the current code only, to show each method's share of the preset's time.

Last line: ``deepfool_speedup=<x> deepfool_same=<k>/<n> share_s=<method>:<s>,…``.

    python bench/table2.py [--limit N] [--repeats R] [--methods deepfool,cw,fab]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks import get_method  # noqa: E402
from sdsgsm.attacks.art_baselines import art_classifier, baseline_params, seeded  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402
from sdsgsm.params import get_preset  # noqa: E402


def art_deepfool(model, x: torch.Tensor, cfg) -> torch.Tensor:
    """What the previous revision ran for 'deepfool': ART's DeepFool, one image at a time."""
    from art.attacks.evasion import DeepFool

    params = {k: v for k, v in baseline_params("deepfool", cfg).items() if k != "art_class"}
    clf = art_classifier(model, tuple(x.shape[1:]), model.num_classes)
    attack = DeepFool(clf, batch_size=1, verbose=False, **params)
    with seeded(cfg.seed, x.device):
        out = [attack.generate(x=x[i:i + 1].numpy()) for i in range(len(x))]
    return torch.from_numpy(np.concatenate(out)).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--methods", default="deepfool,cw,fab")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from sdsgsm.attacks import build_config

    preset = get_preset("table2")
    cfg = build_config(dict(preset.values))
    model = load_model("efficientnet_lite0", device="cpu")
    x, y, keys = load_gallery("imagenet", model.input_size, args.limit)
    runs = {}
    for name in args.methods.split(","):
        runs[name] = lambda name=name: get_method(name).fn(model, x, y, cfg).x_adv
    if "deepfool" in runs:
        runs["deepfool (ART)"] = lambda: art_deepfool(model, x, cfg)
    times: dict[str, list[float]] = {k: [] for k in runs}
    outs = {}
    names = list(runs)
    for r in range(args.repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            outs[k] = runs[k]()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(x)
    for k in names:
        print(f"{k}: median {med[k]:.2f} s for {n} images ({med[k] / n:.2f} s/image), runs {times[k]}")
    line = "share_s=" + ",".join(f"{k}:{med[k] / n:.2f}" for k in names if "ART" not in k)
    if "deepfool" in runs:
        same = sum(torch.equal(outs["deepfool"][i], outs["deepfool (ART)"][i]) for i in range(n))
        line = f"deepfool_speedup={med['deepfool (ART)'] / med['deepfool']:.2f} deepfool_same={same}/{n} " + line
    print(line)


if __name__ == "__main__":
    main()
