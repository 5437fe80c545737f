"""The table2 preset's slow baselines before and after, side by side in one run.

Per method, the wall time of run_method on the same gallery images (1 torch thread), interleaved in
alternating order, so drift in machine load hits both alike:

* deepfool, cw: the attack core (art_core) against what the previous revision ran, ART's attack on
  the plain PyTorchClassifier (a forward pass per class gradient), one image at a time; x_adv bit-equal?
* fab (and any other method): run_method with the current code only, to show its share.

Last line: ``cw_speedup=<x> cw_same=<k>/<n> deepfool_speedup=… share_s=<method>:<s>,…``.

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
from sdsgsm.attacks.art_baselines import art_classifier, art_core, baseline_params, seeded  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402
from sdsgsm.params import get_preset  # noqa: E402


def art_plain(name: str, model, x: torch.Tensor, y: torch.Tensor, cfg) -> torch.Tensor:
    """What the previous revision ran for ``name``: ART's attack on the plain cached classifier, one image at a time."""
    from art.attacks import evasion

    p = baseline_params(name, cfg)
    params = {k: v for k, v in p.items() if k != "art_class"}
    clf = art_classifier(model, tuple(x.shape[1:]), model.num_classes)
    attack = getattr(evasion, p["art_class"])(clf, batch_size=1, verbose=False, **params)
    with seeded(cfg.seed, x.device):
        out = [attack.generate(x=x[i:i + 1].numpy(), y=y[i:i + 1].numpy()) for i in range(len(x))]
    return torch.from_numpy(np.concatenate(out)).clamp(0, 1)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--methods", default="deepfool,cw")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from sdsgsm.attacks import build_config

    preset = get_preset("table2")
    cfg = build_config(dict(preset.values))
    model = load_model("efficientnet_lite0", device="cpu")
    x, y, keys = load_gallery("imagenet", model.input_size, args.limit)
    with torch.no_grad():
        clean = model(x)
    runs = {}
    for name in args.methods.split(","):
        if name in ("deepfool", "cw"):  # the core alone, as the previous revision's ART call below
            runs[name] = lambda name=name: art_core(model, x, y, clean, cfg, name=name).x_adv.clamp(0, 1)
            runs[f"{name} (ART)"] = lambda name=name: art_plain(name, model, x, y, cfg)
        else:
            runs[name] = lambda name=name: get_method(name).fn(model, x, y, cfg).x_adv
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
    for name in ("deepfool", "cw"):
        if name in runs:
            same = sum(torch.equal(outs[name][i], outs[f"{name} (ART)"][i]) for i in range(n))
            line = f"{name}_speedup={med[f'{name} (ART)'] / med[name]:.2f} {name}_same={same}/{n} " + line
    print(line)


if __name__ == "__main__":
    main()
