"""``python -m sdsgsm figure grid|radar|bars|sweep …`` and ``python -m sdsgsm sweep …`` (see sdsgsm/cli/__init__.py).

Every command writes ``<stem>.pdf``, ``<stem>.png`` (300 dpi), ``<stem>.svg`` and ``<stem>.json``
(the caption: every parameter, model, seed and package versions); ``sweep`` also writes
sweep.csv, sweep_per_sample.csv and sweep.json. Errors are ValueError/CliError with one line
(exit status 2 in :func:`sdsgsm.cli.main`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sdsgsm.attacks import build_config
from sdsgsm.cli.common import (
    Parser,
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
    write,
)
from sdsgsm.experiments.sweep import SWEEPABLE, VALUE_HELP
from sdsgsm.metrics import METRICS
from sdsgsm.params import PARAMS, PRESETS, add_flags


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--stem", default=None, help="file name stem (default: the figure kind)")
    add_model_flags(p)




def _sweep_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", choices=SWEEPABLE, help="parameter to sweep (give twice for a heat map)")
    p.add_argument("--values", action="append", help=VALUE_HELP + "; one --values per --param")
    p.add_argument("--metric", default=None, choices=tuple(METRICS), metavar="METRIC",
                   help="the heat map's metric for a two-parameter sweep, one of: " + ", ".join(METRICS)
                   + " (default: the first of accuracy under attack, ASR, L2, L∞, SSIM, time that varies)")


def add_parser(sub) -> None:
    """Add ``figure`` (grid, radar, bars, sweep) and ``sweep`` to the CLI's subparsers."""
    fig = sub.add_parser("figure", help="paper figures as PDF/PNG/SVG + JSON caption: grid (Fig. 5/6), radar "
                                        "(Fig. 3), bars (Fig. 4), sweep")
    kinds = fig.add_subparsers(dest="kind", required=True, parser_class=Parser)
    grid = kinds.add_parser("grid", help="rows = images, column groups = methods (paper Fig. 5/6)")
    grid.add_argument("--images", required=True, help="comma-separated gallery keys, image paths or folders; "
                                                      "'gallery' = the 20 ImageNet samples")
    grid.add_argument("--methods", default="sd-sgsm", help="comma-separated registry names")
    grid.add_argument("--columns", default=None, help="comma-separated from original, saliency, adversarial, "
                                                      "perturbation, budget (default: the first four)")
    grid.add_argument("--preset", default=None, choices=tuple(PRESETS))
    _common(grid)
    add_flags(grid, preset_defaults=True)
    for kind, what in (("radar", "Fig. 3"), ("bars", "Fig. 4")):
        p = kinds.add_parser(kind, help=f"paper {what} from a results.csv, or from a benchmark run on the spot")
        p.add_argument("--results", default=None, help="a benchmark's results.csv (else run --methods on --data)")
        p.add_argument("--methods", default=None, help="comma-separated registry names (run on the spot)")
        p.add_argument("--preset", default=None, choices=tuple(PRESETS))
        add_data_flags(p)
        _common(p)
        add_flags(p, preset_defaults=True)
    sw = kinds.add_parser("sweep", help="plot a sweep.csv (--from) or run a sweep and plot it")
    sw.add_argument("--from", dest="from_csv", default=None, help="a sweep.csv written by `python -m sdsgsm sweep`")
    _add_sweep_run(sw)
    sweep = sub.add_parser("sweep", help="one or two parameters over a list or range: sweep.csv + figure")
    _add_sweep_run(sweep)
    for p in (fig, sweep):
        p.set_defaults(run=run)


def _add_sweep_run(p) -> None:
    _sweep_flags(p)
    p.add_argument("--methods", default="fgsm,sd-sgsm", help="comma-separated registry names")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS))
    add_data_flags(p)
    add_run_flags(p)
    add_threads_flag(p)
    _common(p)
    add_flags(p, preset_defaults=True)




def cmd_grid(args) -> str:
    from sdsgsm.experiments import figure_grid
    from sdsgsm.experiments.runner import parse_methods
    from sdsgsm.render import figures

    values = attack_values(args)
    cfg = build_config(values)
    methods = parse_methods(args.methods)
    columns = figures.parse_columns(args.columns)
    images = figure_grid.image_list(args.images.split(","))
    model = model_from_args(args)
    rows, names = figure_grid.grid_records(model, images, methods, cfg)
    fig = figures.build(figures.grid_figure, rows, names, methods, columns)
    info = {"images": images, "methods": methods, "columns": list(columns), "model": model.name,
            "parameters": {k: v for k, v in values.items() if k in PARAMS}, "seed": cfg.seed,
            "panels": figures.grid_layout(len(images), len(methods), columns)[2],
            "command": command_line(args)}
    return write(figures.figure_files(fig, args.stem or "grid", info, "grid"), args.out)


def _summary_rows(args, ctx) -> tuple[list[dict], dict]:
    """Summary rows from --results, or from a benchmark run made on the spot."""
    import pandas as pd

    if args.results:
        try:
            df = pd.read_csv(args.results)
        except (OSError, ValueError, pd.errors.ParserError):
            raise ValueError(f"Cannot read {Path(args.results).name!r} as a results.csv.") from None
        if "method" not in df or "asr" not in df:
            raise ValueError(f"{Path(args.results).name!r} is not a benchmark results.csv (no method/asr columns).")
        return df.to_dict("records"), {"results": Path(args.results).name}
    from sdsgsm.experiments.benchmark import run_benchmark
    from sdsgsm.experiments.runner import load_benchmark_data, parse_methods

    if not args.methods and not args.preset:
        raise ValueError("Give --results results.csv, or --methods a,b (or --preset) to run a benchmark first.")
    methods = parse_methods(args.methods) if args.methods else list(PRESETS[args.preset].methods)
    values = attack_values(args)
    model = model_from_args(args)
    x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
    ctx.say(f"figure {args.kind}: benchmark of {plural(len(methods), 'method')} ({','.join(methods)}) × "
            f"{plural(len(x), 'image')}, batches of {args.batch_size}, on {model.name}")
    res = run_benchmark(model, x, y, methods, build_config(values), batch_size=args.batch_size,
                        criterion=args.criterion, progress=ctx.progress, should_stop=ctx.should_stop, keys=keys,
                        data=info["name"])
    return res.summary.to_dict("records"), {"data": info["name"], "model": model.name, "methods": methods,
                                            "parameters": values, "seed": values.get("seed"),
                                            "criterion": res.criterion_text, "n_total": len(keys)}


def cmd_chart(args, ctx) -> str:
    from sdsgsm.render import figures

    rows, info = _summary_rows(args, ctx)
    builder = figures.radar_figure if args.kind == "radar" else figures.bars_figure
    fig = figures.build(builder, rows, )
    info = {**info, "rows": [{k: r[k] for k in r if isinstance(k, str)} for r in rows]}
    return write(figures.figure_files(fig, args.stem or args.kind, info, args.kind), args.out)


def _axes(args):
    from sdsgsm.experiments.sweep import Axis, parse_values

    params, values = args.param or [], args.values or []
    if not params or len(params) != len(values) or len(params) > 2:
        raise ValueError("Give --param NAME --values SPEC once (a curve) or twice (a heat map).")
    return [Axis(p, parse_values(p, v)) for p, v in zip(params, values)]


def cmd_sweep(args, ctx) -> str:
    """Run a sweep (or read --from sweep.csv), write the CSVs and the figure; returns a summary line."""
    from sdsgsm.experiments.sweep import load_points, run_sweep, sweep_files
    from sdsgsm.render import figures

    units = None
    if getattr(args, "from_csv", None):
        try:
            points = load_points(args.from_csv)
        except (OSError, ValueError) as exc:
            raise ValueError(str(exc).splitlines()[0] or "Cannot read the sweep.csv.") from None
        names = args.param or [c for c in points.columns if c in SWEEPABLE and f"{c}_shown" in points.columns]
        info, files = {"from": Path(args.from_csv).name}, {}
    else:
        axes = _axes(args)
        from sdsgsm.experiments.runner import load_benchmark_data, parse_methods

        methods = parse_methods(args.methods)
        values = attack_values(args)
        model = model_from_args(args)
        x, y, keys, data = load_benchmark_data(args.data, model, args.limit)
        n_points = 1
        for a in axes:
            n_points *= len(a.values)
        ctx.say(f"sweep: {plural(n_points, 'point')} of {' × '.join(a.name for a in axes)} × "
                f"{plural(len(methods), 'method')} ({','.join(methods)}) = {n_points * len(methods)} units over "
                f"{plural(len(x), 'image')}, on {model.name}")
        units = ctx.units()
        res = run_sweep(model, x, y, methods, axes, values, batch_size=args.batch_size, criterion=args.criterion,
                        progress=ctx.progress, should_stop=ctx.should_stop, keys=keys, data=data["name"],
                        units=units)
        points, names, files = res.points, [a.name for a in axes], sweep_files(res)
        info = {k: v for k, v in res.config.items() if k != "versions"}
        info["command"] = command_line(args)
    if args.metric is not None and args.metric not in figures.METRICS:
        raise ValueError(f"Unknown metric {args.metric!r}; choose one of {', '.join(figures.METRICS)}.")
    fig = figures.build(figures.sweep_figure, points, names, metric2d=args.metric)
    files |= figures.figure_files(fig, args.stem or "sweep", info, "sweep")
    written = write(files, args.out)
    if units is not None:
        units.close() if res.stopped else units.clear()
    return written


def run(args) -> str:
    """Dispatch ``figure …`` / ``sweep``; returns the line to print."""
    check_positive(args, "batch_size", "limit")
    with run_context(args) as ctx:
        if args.command == "sweep" or args.kind == "sweep":
            written = cmd_sweep(args, ctx)
        elif args.kind == "grid":
            written = cmd_grid(args)
        else:
            written = cmd_chart(args, ctx)
    return f"wrote {written} -> {args.out}"
