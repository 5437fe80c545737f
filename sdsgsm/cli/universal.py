"""``python -m sdsgsm universal --inner deepfool,smoothfool --sigmas 1,5,10 --out DIR``.

Universal perturbations (Moosavi-Dezfooli et al., CVPR 2017) with DeepFool or, as in Dabouei et al.
(WACV 2020, Algorithm 3), SmoothFool as the inner step, trained on one fold of the images and evaluated
on the other (:mod:`sdsgsm.experiments.universal`). Writes universal.csv, universal_per_sample.csv,
universal.md, universal.json, the figure (universal_figure.pdf/.png/.svg/.json) and, in ``DIR/assets``,
the perturbations trained on fold A (``<setting>.npy``) with their recipe ``universal.json`` (the files
shipped in the package's assets/universal). Bad names or values are one-line errors (exit status 2).
"""

from __future__ import annotations

from pathlib import Path

from sdsgsm.cli.common import add_run_flags, add_threads_flag, check_positive, plural, run_context, write
from sdsgsm.params import parse_number


def _numbers(text: str, what: str) -> list[float]:
    try:
        out = [parse_number(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise ValueError(f"--{what}: {exc}") from None
    if not out:
        raise ValueError(f"--{what} needs a number (got {text!r}).")
    return out


def add_parser(sub) -> None:
    """Add ``universal`` to the CLI's subparsers."""
    from sdsgsm.attacks.universal import INNER, UniversalConfig
    from sdsgsm.params import SF_KERNELS

    d = UniversalConfig()
    p = sub.add_parser("universal", help="universal perturbations (DeepFool UAP vs smooth UAP): two folds, "
                                         "held-out fooling rate, transfer (CSV, Markdown, JSON, figure, .npy)")
    p.add_argument("--inner", default=",".join(INNER), help=f"comma-separated inner steps: {', '.join(INNER)} "
                   "(default: %(default)s)")
    p.add_argument("--sigmas", default="1,5,10", help="SmoothFool σ_g values, one setting each (default: %(default)s)")
    p.add_argument("--kernel", default=d.kernel, choices=SF_KERNELS, help="SmoothFool's low-pass g")
    p.add_argument("--xi", default="10/255", help="L∞ radius ξ of v (default: %(default)s)")
    p.add_argument("--tau", default=str(d.tau),
                   help="target fooling rate τ on the training fold (default: %(default)s)")
    p.add_argument("--max-passes", type=int, default=d.max_passes, help="at most this many passes over the "
                   "training fold (default: %(default)s)")
    p.add_argument("--sf-max-iter", type=int, default=d.sf_max_iter, help="SmoothFool's iteration cap per image")
    p.add_argument("--sf-clip-eps", default=str(d.sf_clip_eps), help="SmoothClip step ε (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the data order (default: %(default)s)")
    p.add_argument("--model", default="efficientnet_lite0", help="the model v is trained on")
    p.add_argument("--targets", default="lite1,lite2", help="comma-separated models v is also evaluated on "
                   "(transfer; empty for none)")
    p.add_argument("--data", default="gallery:imagenet", help="gallery:imagenet | an image folder (folds: even / "
                   "odd indices)")
    p.add_argument("--limit", type=int, default=None, help="use at most N images")
    add_threads_flag(p)
    add_run_flags(p)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=run)


def run(args) -> str:
    """Run the two-fold experiment from flags, write its files; returns the table to print."""
    from sdsgsm.attacks.universal import INNER, UniversalConfig
    from sdsgsm.ensemble import WORK_SIZE, build, check_available, parse_specs
    from sdsgsm.experiments.runner import load_benchmark_data, model_device
    from sdsgsm.experiments.universal import (
        asset_files,
        figure_files,
        run_universal,
        settings,
        universal_files,
        universal_markdown,
    )
    from sdsgsm.models import load_model

    check_positive(args, "limit", "threads", "max_passes", "sf_max_iter")
    inners = [t.strip().lower() for t in args.inner.split(",") if t.strip()]
    bad = [t for t in inners if t not in INNER]
    if bad or not inners:
        raise ValueError(f"Unknown inner step {bad[0] if bad else ''!r}; choose from {', '.join(INNER)}.")
    xi, tau = _numbers(args.xi, "xi")[0], _numbers(args.tau, "tau")[0]
    eps = _numbers(args.sf_clip_eps, "sf-clip-eps")[0]
    base = UniversalConfig(xi=xi, tau=tau, max_passes=args.max_passes, kernel=args.kernel, sf_clip_eps=eps,
                           sf_max_iter=args.sf_max_iter, seed=args.seed)
    cfgs = settings(inners, _numbers(args.sigmas, "sigmas") if "smoothfool" in inners else [], base)
    specs = parse_specs(args.targets, "targets") if args.targets.strip() else []
    for spec in specs:
        check_available(spec)
    model = load_model(args.model, device=args.device)
    targets = [(s.label, build(s, WORK_SIZE, args.device)) for s in specs]
    x, _, keys, info = load_benchmark_data(args.data, model, args.limit)
    with run_context(args) as ctx:
        ctx.say(f"universal: {plural(len(cfgs), 'setting')} ({', '.join(c.name for c in cfgs)}) × 2 folds over "
                f"{plural(len(x), 'image')} on {args.model}, transfer to {args.targets or 'none'}")
        units = ctx.units()
        res = run_universal(model, targets, x.to(model_device(model)), cfgs, keys=keys,
                            data=info["name"], units=units, progress=ctx.progress, should_stop=ctx.should_stop,
                            meta={"command": ctx.command})
    write({**universal_files(res), **figure_files(res)}, args.out)
    write(asset_files(res), Path(args.out) / "assets")
    if units is not None:
        units.close() if res.stopped else units.clear()
    note = "stopped early: partial results\n" if res.stopped else ""
    return f"{universal_markdown(res)}{note}wall time {res.config['wall_time_s']:.1f} s -> {args.out}"
