"""``python -m sdsgsm train-patch --sizes 32,48,64``: train universal targeted patches (Brown et al., 2017)
with ART and save them as toaster_<side>.png plus patches.json."""

from __future__ import annotations

import sys

from sdsgsm.cli.common import CliError, add_model_flags, add_threads_flag, model_from_args, run_context


def add_parser(sub) -> None:
    p = sub.add_parser("train-patch", help="train universal 'toaster' patches with ART (progress bar); writes "
                                           "toaster_<s>.png and patches.json")
    p.add_argument("--sizes", default="48", help="comma-separated patch sides in px, e.g. 32,48,64")
    p.add_argument("--steps", type=int, default=30, help="ART iterations (each a pass over the data)")
    p.add_argument("--seed", type=int, default=0, help="seed of numpy/torch (ART's random placements)")
    p.add_argument("--batch-size", type=int, default=8, help="images per optimisation step")
    p.add_argument("--target", type=int, default=859, help="target class (default 859, ImageNet 'toaster')")
    p.add_argument("--data", default="gallery:photo", help="training images, as benchmark --data (default: the "
                   "gallery photos, which are not in the 20-image ImageNet evaluation gallery)")
    add_threads_flag(p)
    p.add_argument("--out", default=None, help="output directory (default: assets/patches)")
    add_model_flags(p)
    p.set_defaults(run=run)


def run(args) -> str:
    """Train one universal patch per size and save them; returns the line to print."""
    from sdsgsm.experiments.patch_train import PATCH_DIR, PatchTraining, save_patch, train_universal_patch
    from sdsgsm.experiments.runner import load_benchmark_data

    try:
        sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--sizes must be comma-separated integers (got {args.sizes!r})") from None
    paths = []
    with run_context(args) as ctx:
        model = model_from_args(args)
        x, _, _, _ = load_benchmark_data(args.data, model)
        for size in sizes:
            if ctx.should_stop():
                break
            run = PatchTraining(size=size, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                                target=args.target, data=args.data)
            patch, info = train_universal_patch(model, x, run)
            paths.append(save_patch(patch, info, args.out or PATCH_DIR, ctx.command))
            print(f"{paths[-1].name}: {info['seconds']} s on {info['device']}", file=sys.stderr, flush=True)
    return "wrote " + ", ".join(p.name for p in paths)
