"""``python -m sdsgsm lab train|eval …``: the robust-training lab on sklearn's digits (sdsgsm/experiments/lab.py).

``lab train --out DIR`` trains the four models (standard, distilled, FGSM-AT, PGD-AT) and writes
``<model>.pt`` state_dicts plus ``lab.json`` (settings, seed, split, command, sha256 of each file);
``--out assets/lab`` regenerates the shipped ones. ``lab eval --out DIR`` attacks the models of
``--weights`` (default assets/lab) at every ε of ``--eps`` (sweep syntax, ≤ 32/255) and writes the
accuracy CSVs, the CW table, the saturation table and the figure (``lab.pdf/.png/.svg/.json``).
Errors are ValueError with one line (exit status 2 in :func:`sdsgsm.cli.main`).
"""

from __future__ import annotations

import argparse

from sdsgsm.attacks import method_label
from sdsgsm.cli.common import Parser, add_run_flags, command_line, plural, run_context
from sdsgsm.experiments.sweep import VALUE_HELP


def _group(name: str) -> dict:
    """The LAB_PARAMS entries of one group ('train': the flags of ``lab train``, 'eval': of ``lab eval``)."""
    from sdsgsm.params import LAB_PARAMS

    return {k: p for k, p in LAB_PARAMS.items() if p.group == name}


def _values(args, group: str) -> dict:
    """Native values of one group's flags over the spec defaults, checked (one-line ValueError)."""
    from sdsgsm.params import values_from_args

    spec = _group(group)
    return values_from_args(args, {n: p.default for n, p in spec.items()}, spec)


def add_parser(sub) -> None:
    """Add ``lab train`` and ``lab eval`` to the CLI's subparsers; their parameter flags come from LAB_PARAMS."""
    from sdsgsm.experiments.lab import LAB_DIR, LAB_METHODS
    from sdsgsm.params import add_flags

    lab = sub.add_parser("lab", help="robust-training lab on sklearn's digits: train the four models, or "
                                     "evaluate accuracy against ε (FGSM, PGD, SD-SGSM) and CW-L2")
    kinds = lab.add_subparsers(dest="lab_command", required=True, parser_class=Parser)
    train = kinds.add_parser("train", help="train standard, distilled, FGSM-AT and PGD-AT; write <model>.pt + "
                                           "lab.json")
    train.add_argument("--out", required=True, help="output directory (assets/lab regenerates the shipped models)")
    add_flags(train, spec=_group("train"))
    train.add_argument("--models", default=None, help="comma-separated subset of standard,distilled,fgsm_at,pgd_at")
    add_run_flags(train, fresh=False)
    ev = kinds.add_parser("eval", help="accuracy vs ε CSV + figure, CW-L2 table, saturation table")
    ev.add_argument("--out", required=True, help="output directory")
    ev.add_argument("--weights", default=str(LAB_DIR), help="a folder written by `lab train` (default: the "
                                                            "shipped assets/lab)")
    ev.add_argument("--eps", default="0:32/255:9", help=VALUE_HELP + "; at most 32/255")
    ev.add_argument("--methods", default=",".join(LAB_METHODS), help="comma-separated registry names")
    add_flags(ev, spec=_group("eval"))
    ev.add_argument("--no-cw", action="store_true", help="skip CW-L2")
    add_run_flags(ev)
    ev.add_argument("--stem", default="lab_figure", help="figure file stem (lab_figure.pdf/.png/.svg/.json)")
    lab.set_defaults(run=run)


def train_config(args):
    """TrainConfig from the train flags (spec-checked); ValueError (one line) for bad values."""
    from sdsgsm.experiments.lab import TrainConfig

    return TrainConfig(**_values(args, "train"))


def cmd_train(args, ctx) -> str:
    """Train and write the lab models; returns the line to print."""
    from sdsgsm.experiments import lab
    from sdsgsm.outputs import write_files

    cfg = train_config(args)
    models = lab.MODELS if args.models is None else _models(args.models)
    split = lab.load_split(cfg.seed, cfg.test_size)
    ctx.say(f"lab train: {plural(len(models), 'model')} ({','.join(models)}), {cfg.epochs} epochs each")
    nets, seconds = lab.train_all(cfg, split, ctx.progress, models)
    command = command_line(args)
    write_files(lab.lab_files(nets, cfg, seconds, command, split), args.out)
    times = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    return f"trained {times} -> {args.out}"


def _models(text: str) -> tuple[str, ...]:
    from sdsgsm.experiments.lab import MODELS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in MODELS]
    if bad or not names:
        raise ValueError(f"Unknown lab model {bad[0] if bad else ''!r}; choose from {', '.join(MODELS)}.")
    return names


def eval_config(args):
    """EvalConfig from the eval flags; ValueError (one line) for bad values."""
    from sdsgsm.experiments.lab import EvalConfig
    from sdsgsm.experiments.runner import parse_methods
    from sdsgsm.experiments.sweep import parse_values

    v = _values(args, "eval")
    return EvalConfig(eps=tuple(float(e) for e in parse_values("eps", args.eps)),
                      methods=tuple(parse_methods(args.methods)), steps=v["steps"], cw_steps=v["cw_steps"],
                      cw_limit=v["cw_limit"])


def eval_limit(args) -> int | None:
    """--limit as a number of test digits (None: all)."""
    return _values(args, "eval")["limit"]


def cmd_eval(args, ctx) -> str:
    """Evaluate the lab models; write CSVs, the CW and saturation tables and the figure."""
    from dataclasses import replace

    from sdsgsm.experiments import lab
    from sdsgsm.outputs import write_files
    from sdsgsm.render import figures

    ecfg = eval_config(args)
    limit = eval_limit(args)
    if f"{args.stem}.json" in (lab.LAB_JSON, "lab_eval.json"):
        raise ValueError(f"--stem {args.stem} would overwrite {args.stem}.json of the lab; choose another stem.")
    loaded = lab.load_models(args.weights)
    split = lab.load_split(loaded.cfg.seed, loaded.cfg.test_size)
    if limit:
        split = replace(split, x_test=split.x_test[:limit], y_test=split.y_test[:limit],
                        test_idx=split.test_idx[:limit])
    ctx.say(f"lab eval: {plural(len(loaded.nets), 'model')} × {plural(len(ecfg.methods), 'method')} "
            f"({','.join(ecfg.methods)}) × {len(ecfg.eps)} ε = "
            f"{plural(len(loaded.nets) * len(ecfg.methods) * len(ecfg.eps), 'unit')} over "
            f"{len(split.y_test)} test digits")
    units = ctx.units()
    ev = lab.evaluate_lab(loaded.nets, split, ecfg, ctx.progress, cw=not args.no_cw, units=units)
    command = command_line(args)
    files = lab.eval_files(ev, ecfg, loaded.record, command)
    fig = figures.build(figures.lab_figure, ev.curve, ev.headline)
    info = {"eval": ecfg, "headline": ev.headline, "n_test": len(split.y_test), "command": command,
            "training": loaded.record["training"]}
    files |= figures.figure_files(fig, args.stem, info, "lab")
    paths = write_files(files, args.out)
    if units is not None:
        units.clear()
    return f"wrote {', '.join(p.name for p in paths)} -> {args.out}\n" + _summary(ev)


def _summary(ev) -> str:
    """The accuracy table (%) and the headline as printable text."""
    from sdsgsm.experiments.lab import wide_table

    table = wide_table(ev.curve)
    table["method"] = [method_label(m) for m in table["method"]]
    table.insert(1, "eps_255", table.pop("eps") * 255)
    lines = [table.to_string(index=False, float_format=lambda v: f"{v:.1f}")]
    h = ev.headline
    if h.get("eps") is not None:
        accs = ", ".join(f"{k} {v * 100:.1f} %" for k, v in h["accuracy"].items())
        lines.append(f"standard falls below {h['threshold'] * 100:.0f} % under {method_label(h['method'])} at ε = "
                     f"{h['eps_255']:.1f}/255: {accs}")
    for _, r in ev.cw.iterrows():
        lines.append(f"CW-L2 on {r['model']}: success {r['success_rate'] * 100:.1f} % of {r['n_clean_correct']}, "
                     f"mean L2 {r['l2_mean']:.3f}")
    return "\n".join(lines)


def run(args) -> str:
    """Dispatch ``lab train`` / ``lab eval``; returns the text to print. A command is its own process, so it
    runs in-process on the fixed thread count (``--threads``; evaluation: EvalConfig's), restored afterwards."""
    from sdsgsm.experiments.lab import EvalConfig

    train = args.lab_command == "train"
    try:
        with run_context(args, threads=args.threads if train else EvalConfig().threads) as ctx:
            return cmd_train(args, ctx) if train else cmd_eval(args, ctx)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None
