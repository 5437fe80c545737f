"""``python -m sdsgsm train-patch --sizes 32,48,64``: train universal targeted patches (Brown et al., 2017)
with ART and save them as toaster_<side>.png plus patches.json.

The training flags (--steps, --seed, --batch-size, --target) come from ``PATCH_TRAIN_PARAMS``; ``--sizes`` is a
comma-separated list (a spec entry holds one number), each side checked against the spec's ``size``."""

from __future__ import annotations

from sdsgsm.cli.common import (
    CliError,
    add_model_flags,
    add_run_flags,
    add_threads_flag,
    model_from_args,
    plural,
    run_context,
)
from sdsgsm.params import PATCH_TRAIN_PARAMS, add_flags, check, values_from_args

FLAGS = {n: p for n, p in PATCH_TRAIN_PARAMS.items() if n != "size"}  # size: the list flag --sizes


def add_parser(sub) -> None:
    p = sub.add_parser("train-patch", help="train universal 'toaster' patches with ART (progress bar); writes "
                                           "toaster_<s>.png and patches.json")
    size = PATCH_TRAIN_PARAMS["size"]
    p.add_argument("--sizes", default=str(size.default), help=f"comma-separated patch sides in px, e.g. 32,48,64 "
                   f"[each {size.lo} … {size.hi}; default {size.default}]")
    add_flags(p, spec=FLAGS)
    p.add_argument("--data", default="gallery:photo", help="training images, as benchmark --data (default: the "
                   "gallery photos, which are not in the 20-image ImageNet evaluation gallery)")
    p.add_argument("--curve-every", type=int, default=0, help="every this many iterations, paste the patch on the "
                   "--eval-data images at Ω* and at random and record the target-hit rate (the training curve, kept "
                   "in patches.json; 0: no curve; the patch is the same either way)")
    p.add_argument("--eval-data", default="gallery:imagenet", help="held-out images of the training curve, as "
                   "benchmark --data (default: the 20-image ImageNet evaluation gallery)")
    add_threads_flag(p)
    p.add_argument("--fresh", action="store_true", help="retrain sizes an earlier run with the same settings already "
                   "wrote to --out (default: skip them)")
    add_run_flags(p, fresh=False)
    p.add_argument("--out", default=None, help="output directory (default: assets/patches)")
    add_model_flags(p)
    p.set_defaults(run=run)


def run(args) -> str:
    """Train one universal patch per size and save them; returns the line to print."""
    from sdsgsm.experiments.patch_train import (
        PATCH_DIR,
        PatchTraining,
        curve_evaluator,
        finished,
        save_patch,
        train_universal_patch,
    )
    from sdsgsm.experiments.runner import load_benchmark_data

    sizes = parse_sizes(args.sizes)
    if args.curve_every < 0:
        raise CliError(f"--curve-every must be 0 (no curve) or a positive number of iterations "
                       f"(got {args.curve_every})")
    values = values_from_args(args, {n: p.default for n, p in FLAGS.items()}, FLAGS)
    paths = []
    with run_context(args) as ctx:
        model = model_from_args(args)
        x, _, _, _ = load_benchmark_data(args.data, model)
        out = args.out or PATCH_DIR
        xe, ye = load_benchmark_data(args.eval_data, model)[:2] if args.curve_every else (None, None)
        ctx.say(f"train-patch: {plural(len(sizes), 'size')} ({','.join(map(str, sizes))}), "
                f"{plural(values['steps'], 'iteration')} each over {plural(len(x), 'image')} of {args.data}, "
                f"on {model.name}")
        for i, size in enumerate(sizes):
            if ctx.should_stop():
                break
            run = PatchTraining(size=size, data=args.data, **values)
            done = None if args.fresh else finished(run, getattr(model, "name", ""), len(x), out)
            if done is not None:
                paths.append(done)
                ctx.say(f"{done.name}: written by an earlier run with the same settings (--fresh retrains it)")
            else:
                ctx.progress(f"training the {size}-px patch", i, len(sizes))
                on_chunk = None
                if args.curve_every:
                    evaluate = curve_evaluator(model, xe, ye, size, run.target)

                    def on_chunk(done, patch, size=size, evaluate=evaluate):
                        point = evaluate(done, patch)
                        ctx.say(f"{size} px, iteration {done}: target hit {point['hit_omega_star']:.0f} % at Ω*, "
                                f"{point['hit_random']:.0f} % at random; top-1 {point['acc_omega_star']:.0f} % at Ω*")
                        return point
                patch, info = train_universal_patch(model, x, run, verbose=ctx.progress.tty and not args.curve_every,
                                                    every=args.curve_every or None, on_chunk=on_chunk,
                                                    should_stop=ctx.should_stop)
                if info["iterations"] < run.steps:
                    ctx.say(f"{size} px: stopped after {info['iterations']} of {run.steps} iterations; not saved")
                    break
                if args.curve_every:
                    info["curve_data"] = args.eval_data
                paths.append(save_patch(patch, info, out, ctx.command))
                ctx.say(f"{paths[-1].name}: {info['seconds']} s on {info['device']}")
            ctx.progress(f"{size}-px patch done", i + 1, len(sizes))
    return "wrote " + ", ".join(p.name for p in paths)


def parse_sizes(text: str) -> list[int]:
    """'32,48,64' -> [32, 48, 64], each checked against PATCH_TRAIN_PARAMS' size; CliError (one line)."""
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--sizes must be comma-separated integers (got {text!r})") from None
    if not sizes:
        raise CliError("--sizes names no patch side")
    for s in sizes:
        try:
            check("size", s, PATCH_TRAIN_PARAMS)
        except ValueError as exc:
            raise CliError(f"--sizes: {exc}") from None
    return sizes
