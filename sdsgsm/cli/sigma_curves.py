"""``python -m sdsgsm sigma-curves --data gallery:imagenet --values 1,2,5,10 --out DIR``.

SmoothFool's smoothing-factor curves (Dabouei et al., SmoothFool, WACV 2020, Fig. 6): fooling rate, mean L2
and Ω_n against σ_g for the Gaussian, uniform and linear kernels (uniform and linear: k = 5σ_g), one sweep
per kernel (:mod:`sdsgsm.experiments.sigma_curves`). Writes sigma_curves.csv (one row per kernel and σ_g),
sigma_curves_per_sample.csv, sigma_curves.md, sigma_curves.json and the figure
sigma_curves_figure.pdf/.png/.svg/.json (its caption).
Every other SmoothFool parameter (--sf-clip-eps, --sf-max-iter, …) comes from its spec flag. Ctrl-C keeps the
finished points (written as partial results), and after a kill the next run with the same flags and --out
resumes them. ``--from a.csv,b.csv`` joins sigma_curves.csv tables of earlier runs (e.g. one run per kernel) and
redraws the figure without attacking anything.
"""

from __future__ import annotations

import shutil

from sdsgsm.cli.common import (
    PARTIAL,
    add_data_flags,
    add_model_flags,
    add_run_flags,
    add_threads_flag,
    attack_values,
    check_positive,
    command_line,
    model_from_args,
    plural,
    run_context,
    say,
    write,
)
from sdsgsm.params import PRESETS, SF_KERNELS, add_flags


def add_parser(sub) -> None:
    """Add ``sigma-curves`` to the CLI's subparsers."""
    p = sub.add_parser("sigma-curves", help="SmoothFool: fooling rate, L2 and Ω_n against σ_g for the Gaussian, "
                                            "uniform and linear kernels (CSV, Markdown, JSON, figure)")
    p.add_argument("--values", default="1,2,5,10,20,50",
                   help="σ_g values, comma-separated (uniform and linear kernels: side k = 5σ_g rounded up to odd) "
                        "(default: %(default)s)")
    p.add_argument("--kernels", default=",".join(SF_KERNELS),
                   help=f"comma-separated from {', '.join(SF_KERNELS)} (default: %(default)s)")
    p.add_argument("--from", dest="from_csv", default=None,
                   help="comma-separated sigma_curves.csv files of earlier runs: join them (a later file's "
                        "(kernel, σ_g) rows replace an earlier one's) and redraw the figure; nothing is attacked")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS),
                   help="paper setting whose numbers explicit flags override")
    add_model_flags(p)
    add_data_flags(p, default="gallery:imagenet", batch_size=16)
    add_run_flags(p)
    add_threads_flag(p)
    p.add_argument("--out", required=True, help="output directory")
    add_flags(p, preset_defaults=True)
    p.set_defaults(run=run)


def run(args) -> str:
    """Run the curves from flags, write the files; returns the table and a summary line."""
    from sdsgsm.experiments.runner import UnitStore, load_benchmark_data
    from sdsgsm.experiments.sigma_curves import markdown, parse_kernels, parse_sigmas, run_sigma_curves, sigma_files
    from sdsgsm.render import figures
    from sdsgsm.render.smoothfool import sigma_curves_figure

    check_positive(args, "batch_size", "limit", "threads")
    if args.from_csv:
        return _from_tables(args)
    kernels, sigmas = parse_kernels(args.kernels), parse_sigmas(args.values)
    values = attack_values(args)
    model = model_from_args(args)
    x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
    stores = []

    def units(kernel: str):
        store = UnitStore(ctx.out / PARTIAL / kernel, fresh=ctx.fresh, note=say)
        stores.append(store)
        return store

    with run_context(args) as ctx:
        ctx.say(f"sigma-curves: {plural(len(kernels), 'kernel')} ({','.join(kernels)}) × "
                f"{plural(len(sigmas), 'σ_g value')} = {plural(len(kernels) * len(sigmas), 'point')} of SmoothFool "
                f"over {plural(len(x), 'image')}, on {model.name}")
        res = run_sigma_curves(model, x, y, sigmas, kernels, values, batch_size=args.batch_size,
                               criterion=args.criterion, progress=ctx.progress, should_stop=ctx.should_stop,
                               keys=keys, data=info["name"], units=units)
    res.config["command"] = command_line(args)
    caption = {k: v for k, v in res.config.items() if k != "versions"}
    fig = figures.build(sigma_curves_figure, res.table, {"model": model.name})
    written = write({**sigma_files(res), **figures.figure_files(fig, "sigma_curves_figure", caption, "sigma_curves")},
                    args.out)
    for store in stores:
        store.close() if res.stopped else store.clear()
    partial = ctx.out / PARTIAL
    if not res.stopped and partial.is_dir() and not any(partial.iterdir()):
        shutil.rmtree(partial, ignore_errors=True)
    note = "stopped early: partial results\n" if res.stopped else ""
    return (f"{markdown(res.table)}{note}wall time {res.config['wall_time_s']:.1f} s; wrote {written} -> {args.out}")


def _from_tables(args) -> str:
    """``--from``: join earlier sigma_curves.csv tables, write the joined table and the figure."""
    from pathlib import Path

    from sdsgsm.experiments.sigma_curves import join_tables, markdown
    from sdsgsm.render import figures
    from sdsgsm.render.smoothfool import sigma_curves_figure

    paths = [Path(t.strip()) for t in args.from_csv.split(",") if t.strip()]
    table = join_tables(paths)
    info = {"from": [p.name for p in paths], "command": command_line(args)}
    fig = figures.build(sigma_curves_figure, table, {"model": args.model})
    files = {"sigma_curves.csv": table.to_csv(index=False).encode("utf-8"),
             "sigma_curves.md": markdown(table).encode("utf-8"),
             **figures.figure_files(fig, "sigma_curves_figure", info, "sigma_curves")}
    return f"{markdown(table)}wrote {write(files, args.out)} -> {args.out}"
