"""``python -m sdsgsm transfer --sources … --targets … --methods … --data gallery --out DIR``.

Crafts x_adv once per (method, source) and classifies it with every target (:mod:`sdsgsm.experiments.transfer`);
writes transfer.csv, transfer_per_sample.csv, transfer.md, transfer.json and the matrix figure
(transfer_matrix.pdf/.png/.svg/.json). Models: registered names or aliases (lite0, lite1, lite2, r18,
r50) and ensembles ``ens:a+b``. Bad input (unknown or unavailable model, empty list, bad method) is a
one-line ValueError (exit status 2 in :func:`sdsgsm.cli.main`); progress goes to stderr.
"""

from __future__ import annotations

from sdsgsm.cli.common import (
    add_run_flags,
    add_threads_flag,
    check_positive,
    config_from_args,
    plural,
    run_context,
    write,
)
from sdsgsm.ensemble import ALIASES, WORK_SIZE
from sdsgsm.experiments.transfer import DEFAULT_METHODS
from sdsgsm.params import PRESETS, TRANSFER_PARAMS, add_flags, values_from_args


def add_parser(sub) -> None:
    """Add ``transfer`` to the CLI's subparsers."""
    p = sub.add_parser("transfer", help="craft on source models, evaluate on target models: transfer matrix "
                                        "(CSV, Markdown, JSON, figure)")
    p.add_argument("--sources", required=True, help="comma-separated models crafted on: registered names, aliases "
                   f"({', '.join(ALIASES)}) or ensembles ens:a+b (mean of logits), e.g. lite0,ens:lite0+lite1")
    p.add_argument("--targets", required=True, help="comma-separated models evaluated on, e.g. lite0,lite1,lite2")
    p.add_argument("--methods", default=None, help="comma-separated registry names "
                   f"(default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--data", default="gallery", help="gallery | gallery:imagenet|photo | an image folder")
    p.add_argument("--limit", type=int, default=None, help="use at most N images")
    p.add_argument("--batch-size", type=int, default=16, help="images per attack call")
    p.add_argument("--size", type=int, default=WORK_SIZE, help="the one image size every model sees; a model of "
                   "another native size resizes bilinearly inside its forward (default: %(default)s)")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS),
                   help="paper setting whose numbers explicit flags override (its method list is not used)")
    add_threads_flag(p)
    add_run_flags(p)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", required=True, help="output directory")
    add_flags(p, preset_defaults=True)
    add_flags(p, spec=TRANSFER_PARAMS)
    p.set_defaults(run=run)


def _models(text: str, what: str, size: int, device):
    """[(ModelSpec, model)] of a comma-separated list; every name is checked before any model loads."""
    from sdsgsm.ensemble import build, check_available, parse_specs

    specs = parse_specs(text, what)
    for spec in specs:
        check_available(spec)
    return [(s, build(s, size, device)) for s in specs]



def run(args) -> str:
    """Run the transfer matrix from flags, write its files; returns the text to print (the matrices)."""
    from sdsgsm.experiments.runner import load_benchmark_data, parse_methods
    from sdsgsm.experiments.transfer import figure_files, run_transfer, transfer_files, transfer_markdown

    check_positive(args, "batch_size", "limit", "threads", "size")
    methods = parse_methods(args.methods if args.methods is not None else list(DEFAULT_METHODS))
    cfg = config_from_args(args)
    sources = _models(args.sources, "sources", args.size, args.device)
    targets = _models(args.targets, "targets", args.size, args.device)
    x, y, keys, info = load_benchmark_data(args.data, sources[0][1], args.limit)
    with run_context(args) as ctx:
        default = " (the default list; choose with --methods)" if args.methods is None else ""
        ctx.say(f"transfer: {plural(len(methods), 'method')} ({','.join(methods)}){default} × "
                f"{plural(len(sources), 'source')} ({args.sources}) = {plural(len(methods) * len(sources), 'unit')} "
                f"over {plural(len(x), 'image')}, evaluated on {plural(len(targets), 'target')} ({args.targets})")
        meta = {"command": ctx.command, "preset": args.preset, "data_label_source": info["label_source"]}
        units = ctx.units()
        res = run_transfer(sources, targets, x.to(sources[0][1].device), y, methods, cfg,
                           batch_size=args.batch_size, progress=ctx.progress, should_stop=ctx.should_stop,
                           keys=keys, data=info["name"], meta=meta, units=units,
                           **values_from_args(args, spec=TRANSFER_PARAMS))
    write({**transfer_files(res), **figure_files(res)}, args.out)
    if units is not None:
        units.close() if res.stopped else units.clear()
    note = "stopped early: partial results\n" if res.stopped else ""
    return f"{transfer_markdown(res)}{note}wall time {res.config['wall_time_s']:.1f} s -> {args.out}"
