"""``python -m sdsgsm defend --methods fgsm,pgd,sd-sgsm --defences jpeg,median,gaussian,bitdepth --data gallery
--out DIR``: the attack × defence grid, non-adaptive and adaptive (:mod:`sdsgsm.experiments.defence_grid`).

Writes defences.csv (one row per method, defence and mode), defences_per_sample.csv, defences.json (every
parameter, the ASR criterion, clean accuracy per defence, package versions) and the figure
defences_asr.pdf/.png/.svg/.json; prints a Markdown table. Progress goes to stderr. Errors are
ValueError with one line (exit status 2 in :func:`sdsgsm.cli.main`).
"""

from __future__ import annotations

import argparse

from sdsgsm.cli.common import (
    add_model_flags,
    add_run_flags,
    add_threads_flag,
    check_positive,
    config_from_args,
    model_from_args,
    plural,
    run_context,
    write,
)
from sdsgsm.defences import DEFENCES
from sdsgsm.params import DEFENCE_PARAMS, PRESETS, add_flags, values_from_args

DEFAULT_DEFENCES = "jpeg,median,gaussian,bitdepth"


def add_parser(sub) -> None:
    """Add the ``defend`` sub-command to the CLI's subparsers."""
    p = sub.add_parser("defend", help="attack × input-transform defence grid, non-adaptive vs adaptive (BPDA): "
                                      "defences.csv, per-sample CSV, JSON, ASR figure")
    p.add_argument("--methods", default="fgsm,pgd,sd-sgsm", help="comma-separated registry names")
    p.add_argument("--defences", default=DEFAULT_DEFENCES,
                   help=f"comma-separated from {', '.join(DEFENCES)} ('none' is always added; "
                        f"default {DEFAULT_DEFENCES}; tvm takes seconds per image)")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS), help="paper setting for the attack parameters")
    p.add_argument("--data", default="gallery",
                   help="gallery | gallery:imagenet|cifar10|photo | cifar10:PATH | a folder")
    p.add_argument("--limit", type=int, default=None, help="use at most N images")
    p.add_argument("--batch-size", type=int, default=8, help="images per attack call")
    add_threads_flag(p)
    add_run_flags(p)
    p.add_argument("--eot-table", action="store_true",
                   help="also write randomisation.csv/.json: non-adaptive vs adaptive (one draw) vs EOT ASR against "
                        "the random resize defence (--eot-samples draws per step, default 10 here)")
    p.add_argument("--stem", default="defences", help="output file name stem")
    p.add_argument("--out", required=True, help="output directory")
    add_model_flags(p)
    add_flags(p, preset_defaults=True)
    add_flags(p, spec=DEFENCE_PARAMS)
    p.set_defaults(run=run)



def configs_from_args(args: argparse.Namespace):
    """(methods, defences, AttackConfig, DefenceConfig) from the flags; ValueError (one line) when invalid."""
    from sdsgsm.defences import DefenceConfig, parse_defences
    from sdsgsm.experiments.runner import parse_methods

    cfg = config_from_args(args)
    dcfg = DefenceConfig(**values_from_args(args, spec=DEFENCE_PARAMS))
    return parse_methods(args.methods), parse_defences(args.defences), cfg, dcfg


def run(args: argparse.Namespace) -> str:
    """Run the grid from parsed flags, write its files; returns the text to print (table + written files)."""
    from sdsgsm.experiments.defence_grid import defence_files, run_defence_grid
    from sdsgsm.experiments.runner import load_benchmark_data

    check_positive(args, "batch_size", "limit", "threads")
    methods, defences, cfg, dcfg = configs_from_args(args)  # every flag checked before the model loads
    with run_context(args) as ctx:
        model = model_from_args(args)
        x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
        shown = ["none", *(d for d in defences if d != "none")]
        ctx.say(f"defend: {plural(len(methods), 'method')} ({','.join(methods)}) × "
                f"{plural(len(shown), 'defence')} ({','.join(shown)}) × 2 modes over {plural(len(x), 'image')}, "
                f"on {model.name}")
        units = ctx.units()
        grid = run_defence_grid(model, x, y, methods, defences, cfg, dcfg, batch_size=args.batch_size,
                                progress=ctx.progress, should_stop=ctx.should_stop, keys=keys, data=info["name"],
                                units=units)
        grid.config["command"] = ctx.command
        files, text = defence_files(grid, args.stem), ""
        if args.eot_table and not grid.stopped:
            from sdsgsm.experiments.randomisation import randomisation_files, run_randomisation

            rand = run_randomisation(model, x, y, methods, cfg, dcfg, eot_samples=args.eot_samples or 10,
                                     batch_size=args.batch_size, progress=ctx.progress,
                                     should_stop=ctx.should_stop, keys=keys, data=info["name"])
            rand.config["command"] = ctx.command
            files |= randomisation_files(rand)
            text = "\n" + rand.markdown()
    written = write(files, args.out)
    if units is not None:
        units.close() if grid.stopped else units.clear()
    return grid.markdown() + text + f"wall time {grid.config['wall_time_s']:.1f} s\nwrote {written} -> {args.out}"
