"""Cost of the input-transform defences and of attacking through them.

    python bench/defences.py [--images N] [--methods fgsm,pgd,sd-sgsm] [--defences jpeg,median,gaussian,bitdepth,tvm]

1. Forward time of each transform T per image (224 px gallery images, batch of N; TVM on one image).
2. Side by side on the same N images, per method and defence: the non-adaptive cost (craft on the bare
   model, then classify T(x_adv)) against the adaptive one (craft on f∘T, BPDA where T is not
   differentiable), and their ratio. The bare-model craft is shared by every defence in a real grid;
   here it is timed with each defence so the ratio is per cell. TVM's adaptive run is skipped for the
   spatial methods (their zero-out scan would apply TVM once per window), as in the grid.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from sdsgsm.attacks import METHODS, build_config, run_attack  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.defences import DEFENCES, DefenceConfig, Defended, params_text, seconds_per_image  # noqa: E402
from sdsgsm.experiments.defence_grid import defended_logits  # noqa: E402
from sdsgsm.models import load_model  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def transform_times(x: torch.Tensor, defences: list[str], dcfg: DefenceConfig) -> None:
    print(f"## Transform forward, per image ({x.shape[-1]} px; batch {len(x)}, TVM 1 image)\n")
    print("| defence | parameters | computed by | ms / image |\n|---|---|---|---|")
    for d in defences:
        xs = x[:1] if DEFENCES[d].slow else x
        ms = 1000 * seconds_per_image(d, dcfg, xs)
        code = f"ART {DEFENCES[d].art_class}" if DEFENCES[d].art_class else "sdsgsm.smoothing"
        print(f"| {d} | {params_text(d, dcfg)} | {code} | {ms:.1f} |", flush=True)


def attack_costs(model, x, y, methods: list[str], defences: list[str], dcfg: DefenceConfig, cfg) -> None:
    print(f"\n## Non-adaptive vs adaptive, seconds per image ({len(x)} images, T = {cfg.steps}, "
          f"ε = {cfg.eps * 255:g}/255)\n")
    print("| method | defence | non-adaptive (craft + T(x_adv)) | adaptive (craft through T) | ratio |")
    print("|---|---|---|---|---|")
    for method in methods:
        run_attack(model, x[:1], y[:1], cfg, method)  # warm-up (kernels, ART import)
        for d in defences:
            craft, t_craft = _timed(lambda m=method: run_attack(model, x, y, cfg, m))
            _, t_eval = _timed(lambda c=craft, dd=d: defended_logits(model, c.x_adv, dd, dcfg, len(x)))
            if DEFENCES[d].slow and METHODS[method].spatial:
                print(f"| {method} | {d} | {(t_craft + t_eval) / len(x):.2f} | not run (scan through TVM) | – |")
                continue
            _, t_ad = _timed(lambda m=method, dd=d: run_attack(Defended(model, dd, dcfg), x, y, cfg, m))
            na, ad = (t_craft + t_eval) / len(x), t_ad / len(x)
            print(f"| {method} | {d} | {na:.2f} | {ad:.2f} | {ad / na:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--methods", default="fgsm,pgd,sd-sgsm")
    ap.add_argument("--defences", default="jpeg,median,gaussian,bitdepth,tvm")
    ap.add_argument("--skip-attacks", action="store_true", help="only the transform times")
    args = ap.parse_args()
    model = load_model("efficientnet_lite0", device="cpu")
    x, y, _ = load_gallery("imagenet", model.input_size, max(4, args.images))
    dcfg, cfg = DefenceConfig(), build_config()
    defences = [d for d in args.defences.split(",") if d]
    print(f"torch threads {torch.get_num_threads()}; model {model.name}\n")
    transform_times(x, defences, dcfg)
    if not args.skip_attacks:
        attack_costs(model, x[:args.images], y[:args.images], args.methods.split(","), defences, dcfg, cfg)


if __name__ == "__main__":
    main()
