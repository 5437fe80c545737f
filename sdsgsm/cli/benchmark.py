"""``python -m sdsgsm benchmark --data gallery --preset table2 --out DIR``: many methods on many images;
results.csv/.md/.tex, per_sample.csv and config.json. Under ``torchrun`` every process attacks its share
of the batches and rank 0 writes (:mod:`sdsgsm.distributed`)."""

from __future__ import annotations

from sdsgsm.cli.common import (
    CliError,
    add_attack_params,
    add_data_flags,
    add_model_flags,
    add_run_flags,
    add_threads_flag,
    check_positive,
    config_from_args,
    model_from_args,
    plural,
    run_context,
)
from sdsgsm.params import PRESETS


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="many methods on many images: results.csv/.md/.tex, per_sample.csv, "
                                         "config.json")
    add_data_flags(p, default=None)
    p.add_argument("--methods", default=None, help="comma-separated registry names (default: the preset's)")
    add_threads_flag(p)
    add_run_flags(p)
    p.add_argument("--out", required=True, help="output directory")
    add_model_flags(p)
    add_attack_params(p, "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()))
    p.set_defaults(run=run)


def methods_and_config(args):
    """(methods, AttackConfig): explicit flags win over the preset's numbers; a run without a preset uses
    the spec defaults."""
    from sdsgsm.experiments.runner import parse_methods

    if args.methods is None and args.preset is None:
        raise CliError(f"benchmark needs --methods a,b,c or --preset {'|'.join(PRESETS)}")
    methods = parse_methods(args.methods) if args.methods is not None else list(PRESETS[args.preset].methods)
    return methods, config_from_args(args)


def run(args) -> str | None:
    """Run the benchmark, write its five files; returns the Markdown table (None on a torchrun rank > 0)."""
    from sdsgsm.distributed import finish, gather_rows, start
    from sdsgsm.experiments.benchmark import run_benchmark, write_benchmark
    from sdsgsm.experiments.runner import load_benchmark_data

    methods, cfg = methods_and_config(args)
    check_positive(args, "batch_size", "limit", "threads")
    with run_context(args) as ctx:
        shard = start(args.device)  # torchrun: join the process group
        if shard is not None:
            args.device = shard.device
        model = model_from_args(args)
        x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
        meta = {"preset": args.preset, "command": ctx.command, "data_label_source": info["label_source"],
                "processes": 1 if shard is None else shard.world}
        lead = shard is None or shard.rank == 0
        if lead:
            ctx.say(f"benchmark: {plural(len(methods), 'method')} ({','.join(methods)}) × "
                    f"{plural(len(x), 'image')}, batches of {args.batch_size}, on {model.name}"
                    + ("" if shard is None else f", {shard.world} processes"))
        units = ctx.units(shard is None)  # resumable one-process runs; a torchrun run starts over
        result = run_benchmark(model, x, y, methods, cfg, batch_size=args.batch_size, criterion=args.criterion,
                               progress=ctx.progress if lead else None, should_stop=ctx.should_stop, keys=keys,
                               data=info["name"], meta=meta,
                               shard=(0, 1) if shard is None else (shard.rank, shard.world),
                               gather=None if shard is None else gather_rows, units=units)
        if lead:
            write_benchmark(result, args.out)
        if units is not None:
            units.close() if result.stopped else units.clear()
        if shard is not None:
            finish()
    return result.markdown() + f"-> {args.out}" if lead else None
