"""``python -m sdsgsm queries --data gallery --limit 8 --budgets 50,100,200,500,1000 --out DIR``.

ASR of the black-box attacks (Square, HopSkipJump, SimBA) against their query budget, beside the white-box
ASR of FGSM and PGD at the same ε (:mod:`sdsgsm.experiments.queries`): how many model queries does a
black-box attacker need to match one white-box gradient step? Writes queries.csv, queries_per_sample.csv,
queries.md, queries.json and the figure queries_asr.pdf/.png/.svg/.json. Resumable per method (``--fresh``
starts over). Bad input is a one-line error (exit status 2); progress goes to stderr.
"""

from __future__ import annotations

from sdsgsm.cli.common import (
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
    write,
)
from sdsgsm.experiments.queries import DEFAULT_BUDGETS, DEFAULT_WHITE
from sdsgsm.params import BLACK_BOX_METHODS


def add_parser(sub) -> None:
    """Add ``queries`` to the CLI's subparsers."""
    p = sub.add_parser("queries", help="black-box ASR against the query budget beside white-box FGSM/PGD: "
                                       "CSV, Markdown, JSON, figure")
    add_data_flags(p, batch_size=8, criterion=False)
    p.add_argument("--methods", default=",".join((*BLACK_BOX_METHODS, *DEFAULT_WHITE)),
                   help="comma-separated registry names; the black-box ones "
                        f"({', '.join(BLACK_BOX_METHODS)}) get the budget grid, the others one white-box row "
                        "(default: %(default)s)")
    p.add_argument("--budgets", default=",".join(map(str, DEFAULT_BUDGETS)),
                   help="comma-separated query budgets per image; one run at the largest gives them all "
                        "(default: %(default)s)")
    add_threads_flag(p)
    add_run_flags(p)
    p.add_argument("--out", required=True, help="output directory")
    add_model_flags(p)
    add_attack_params(p)
    p.set_defaults(run=run)


def run(args) -> str:
    """Run the query-budget experiment from flags, write its files; returns the Markdown table to print."""
    from sdsgsm.experiments.queries import (
        figure_files,
        parse_budgets,
        queries_files,
        queries_markdown,
        run_queries,
        split_methods,
    )
    from sdsgsm.experiments.runner import load_benchmark_data

    check_positive(args, "batch_size", "limit", "threads")
    budgets = parse_budgets(args.budgets)
    black, white = split_methods(args.methods)
    cfg = config_from_args(args)
    with run_context(args) as ctx:
        model = model_from_args(args)
        x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
        ctx.say(f"queries: {plural(len(black), 'black-box method')} ({','.join(black)}) up to {budgets[-1]} queries "
                f"per image, {plural(len(white), 'white-box method')} ({','.join(white) or 'none'}), "
                f"{plural(len(x), 'image')} on {model.name}")
        meta = {"command": ctx.command, "preset": args.preset, "data_label_source": info["label_source"]}
        units = ctx.units()
        res = run_queries(model, x, y, [*black, *white], cfg, budgets, batch_size=args.batch_size,
                          progress=ctx.progress, should_stop=ctx.should_stop, keys=keys, data=info["name"],
                          meta=meta, units=units)
    write({**queries_files(res), **figure_files(res)}, args.out)
    if units is not None:
        units.close() if res.stopped else units.clear()
    note = "stopped early: partial results\n" if res.stopped else ""
    return f"{queries_markdown(res)}{note}wall time {res.config['wall_time_s']:.1f} s -> {args.out}"
