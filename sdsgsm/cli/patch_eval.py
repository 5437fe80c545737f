"""``python -m sdsgsm patch-eval --sizes 32,48,64 --out DIR``: top-1 accuracy and target hits under pasted and
universal patches, by patch side and placement, on the ImageNet gallery (:mod:`sdsgsm.experiments.patch_eval`).

Writes patch_eval.csv, patch_eval_per_sample.csv, patch_eval.md, patch_eval.json and the placement figure
patch_eval_placement.pdf/.png/.svg/.json. Resumable per (kind, side, placement) (``--fresh`` starts over).
"""

from __future__ import annotations

from sdsgsm.cli.common import (
    CliError,
    add_model_flags,
    add_run_flags,
    add_threads_flag,
    check_positive,
    model_from_args,
    plural,
    run_context,
    write,
)
from sdsgsm.params import PATCH_MODES, PLACEMENTS


def add_parser(sub) -> None:
    """Add ``patch-eval`` to the CLI's subparsers."""
    p = sub.add_parser("patch-eval", help="accuracy and target hits under pasted and universal patches by side "
                                          "and placement: CSV, Markdown, JSON, figure")
    p.add_argument("--kinds", default=",".join(PATCH_MODES), help="comma-separated patch kinds: paste (a crop of "
                   "every other-class gallery image, in turn) and/or universal (the shipped toaster patch) "
                   "(default: %(default)s)")
    p.add_argument("--sizes", default="32,48,64", help="comma-separated patch sides in px (default: %(default)s)")
    p.add_argument("--placements", default=",".join(PLACEMENTS), help="comma-separated placements "
                   f"({', '.join(PLACEMENTS)}) (default: all)")
    p.add_argument("--seeds", type=int, default=5, help="seeds a random placement is averaged over (default: 5)")
    p.add_argument("--window", type=int, default=None, help="zero-out scan window m in px for the Ω* and "
                   "least-sensitive placements (default: the scan's default for the input size)")
    p.add_argument("--limit", type=int, default=None, help="use the first N ImageNet gallery images (default: all 20)")
    p.add_argument("--batch-size", type=int, default=32, help="patched images per forward pass")
    add_threads_flag(p)
    add_run_flags(p)
    p.add_argument("--out", required=True, help="output directory")
    add_model_flags(p)
    p.set_defaults(run=run)


def _split(text: str, flag: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in text.split(",") if v.strip())
    if not items:
        raise CliError(f"{flag} names nothing")
    return items


def run(args) -> str:
    """Evaluate the patches from flags, write the files; returns the Markdown tables to print."""
    from sdsgsm.experiments.patch_eval import PatchEval, patch_eval_files, patch_eval_markdown, run_patch_eval
    from sdsgsm.experiments.runner import load_benchmark_data

    check_positive(args, "batch_size", "limit", "threads", "seeds", "window")
    try:
        sizes = tuple(int(v) for v in _split(args.sizes, "--sizes"))
    except ValueError:
        raise CliError(f"--sizes must be comma-separated integers (got {args.sizes!r})") from None
    extra = {} if args.window is None else {"window": args.window}
    spec = PatchEval(kinds=_split(args.kinds, "--kinds"), sizes=sizes,
                     placements=_split(args.placements, "--placements"), seeds=args.seeds, **extra)
    with run_context(args) as ctx:
        model = model_from_args(args)
        x, y, keys, info = load_benchmark_data("gallery:imagenet", model, args.limit)
        if bool((y < 0).any()):
            raise CliError(f"{model.name} does not use the ImageNet classes; patch-eval needs the gallery labels")
        ctx.say(f"patch-eval: {', '.join(spec.kinds)} patches, sides {','.join(map(str, spec.sizes))} px, "
                f"{plural(len(spec.placements), 'placement')}, {plural(len(x), 'image')} on {model.name}")
        units = ctx.units()
        res = run_patch_eval(model, x, y, keys, spec, batch_size=args.batch_size, progress=ctx.progress,
                             should_stop=ctx.should_stop, data=info["name"], meta={"command": ctx.command},
                             units=units)
    write(patch_eval_files(res), args.out)
    if units is not None:
        units.close() if res.stopped else units.clear()
    note = "stopped early: partial results\n" if res.stopped else ""
    return f"{patch_eval_markdown(res)}{note}wall time {res.config['wall_time_s']:.1f} s -> {args.out}"
