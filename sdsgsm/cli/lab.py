"""``python -m sdsgsm lab train|eval …``: the robust-training lab on sklearn's digits (sdsgsm/experiments/lab.py).

``lab train --out DIR`` trains the six models (standard, distilled, FGSM-AT, PGD-AT, ALP, ensemble AT) and writes
``<model>.pt`` state_dicts plus ``lab.json`` (settings, seed, split, command, sha256 of each file);
``--out assets/lab`` regenerates the shipped ones. ``lab eval --out DIR`` attacks the models of
``--weights`` (default assets/lab) at every ε of ``--eps`` (sweep syntax, ≤ 32/255) and writes the
accuracy CSVs, the CW table, the saturation table and the figure (``lab.pdf/.png/.svg/.json``).
``lab table --eps 0.1,0.2,0.3 --out DIR`` evaluates the six shipped models (the four plus ALP and ensemble AT)
under FGSM up to the lab's own ε cap 0.3, then CW-L2 on each, and checks ALP for gradient masking.
``lab certify --out DIR`` certifies noise-trained models by randomised smoothing (Cohen, Rosenfeld & Kolter
2019) and writes the certified-accuracy curve beside the empirical PGD-L2 accuracy (``lab_certify.pdf/…``).
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


def _robust(group: str, skip: tuple[str, ...] = ()) -> dict:
    """The LAB_ROBUST_PARAMS entries of one group ('robust_train', 'table', 'certify') but ``skip``."""
    from sdsgsm.params import LAB_ROBUST_PARAMS

    return {k: p for k, p in LAB_ROBUST_PARAMS.items() if p.group == group and k not in skip}


def _robust_values(args, group: str, skip: tuple[str, ...] = ()) -> dict:
    from sdsgsm.params import values_from_args

    spec = _robust(group, skip)
    return values_from_args(args, {n: p.default for n, p in spec.items()}, spec)


def _number_list(name: str, flag: str, text: str) -> tuple[float, ...]:
    """'0.1,0.2,0.3' -> floats, each checked against LAB_ROBUST_PARAMS[name]; one-line ValueError otherwise."""
    from sdsgsm.params import LAB_ROBUST_PARAMS, check, parse_number

    try:
        values = tuple(parse_number(t) for t in str(text).split(",") if t.strip())
    except (ValueError, ZeroDivisionError, argparse.ArgumentTypeError):
        raise ValueError(f"Bad values for {flag}: {text!r} (expected a comma-separated list such as "
                         "0.1,0.2).") from None
    if not values:
        raise ValueError(f"{flag} needs at least one value.")
    for v in values:
        check(name, v, LAB_ROBUST_PARAMS)
    return values


def add_parser(sub) -> None:
    """Add ``lab train`` and ``lab eval`` to the CLI's subparsers; their parameter flags come from LAB_PARAMS."""
    from sdsgsm.experiments.lab import LAB_DIR, LAB_METHODS
    from sdsgsm.params import add_flags

    lab = sub.add_parser("lab", help="robust-training lab on sklearn's digits: train the four models, or "
                                     "evaluate accuracy against ε (FGSM, PGD, SD-SGSM) and CW-L2")
    kinds = lab.add_subparsers(dest="lab_command", required=True, parser_class=Parser)
    train = kinds.add_parser("train", help="train standard, distilled, FGSM-AT, PGD-AT, ALP and ensemble AT; write "
                                           "<model>.pt + lab.json")
    train.add_argument("--out", required=True, help="output directory (assets/lab regenerates the shipped models)")
    add_flags(train, spec=_group("train"))
    add_flags(train, spec=_robust("robust_train"))
    train.add_argument("--models", default=None, help="comma-separated subset of standard,distilled,fgsm_at,pgd_at,"
                                                      "alp,ens_at (default: all six)")
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
    table = kinds.add_parser("table", help="FGSM accuracy of all six lab models at ε up to 0.3, CW-L2 on each, "
                                           "and ALP's gradient-masking check")
    table.add_argument("--out", required=True, help="output directory")
    table.add_argument("--weights", default=str(LAB_DIR), help="a folder written by `lab train` (default: the "
                                                               "shipped assets/lab)")
    table.add_argument("--eps", default="0.1,0.2,0.3", help=_robust("table")["table_eps"].help.replace(
        "lab table: ", "") + " [0 … 0.3]")
    add_flags(table, spec=_robust("table", ("table_eps",)))
    add_flags(table, spec={k: p for k, p in _group("eval").items() if k != "steps"})
    table.add_argument("--no-cw", action="store_true", help="skip CW-L2")
    add_run_flags(table, fresh=False)
    cert = kinds.add_parser("certify", help="randomised smoothing (Cohen et al. 2019): certified accuracy against "
                                            "the L2 radius beside PGD-L2's empirical accuracy")
    cert.add_argument("--out", required=True, help="output directory")
    cert.add_argument("--sigmas", default="0.12,0.25,0.5", help=_robust("certify")["sigma"].help.replace(
        "lab certify: ", ""))
    cert.add_argument("--radii", default="0,0.1,0.25,0.5,0.75,1,1.25", help="L2 radii of the curve "
                                                                            "(comma-separated, ≥ 0)")
    add_flags(cert, spec=_robust("certify", ("sigma",)))
    add_run_flags(cert, fresh=False)
    cert.add_argument("--stem", default="lab_certify_figure", help="figure file stem (.pdf/.png/.svg/.json)")
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
    alp_weight = _robust_values(args, "robust_train")["alp_weight"]
    models = lab.ALL_MODELS if args.models is None else _models(args.models)
    split = lab.load_split(cfg.seed, cfg.test_size)
    ctx.say(f"lab train: {plural(len(models), 'model')} ({','.join(models)}), {cfg.epochs} epochs each")
    nets, seconds = lab.train_all(cfg, split, ctx.progress, models, alp_weight)
    command = command_line(args)
    write_files(lab.lab_files(nets, cfg, seconds, command, split, alp_weight), args.out)
    times = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    return f"trained {times} -> {args.out}"


def _models(text: str) -> tuple[str, ...]:
    from sdsgsm.experiments.lab import ALL_MODELS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in ALL_MODELS]
    if bad or not names:
        raise ValueError(f"Unknown lab model {bad[0] if bad else ''!r}; choose from {', '.join(ALL_MODELS)}.")
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


def cmd_table(args, ctx) -> str:
    """FGSM up to ε = 0.3 and CW-L2 on every model of --weights, the masking check; write the tables and text."""
    import time

    from sdsgsm.experiments import lab
    from sdsgsm.outputs import write_files

    eps = _number_list("table_eps", "--eps", args.eps)
    t = _robust_values(args, "table", ("table_eps",))
    v = _values(args, "eval")
    ecfg = lab.EvalConfig(cw_steps=v["cw_steps"], cw_limit=v["cw_limit"])
    record = lab.read_record(args.weights)
    loaded = lab.load_models(args.weights, [m for m in lab.ALL_MODELS if m in record["models"]])
    split = lab.load_split(loaded.cfg.seed, loaded.cfg.test_size)
    x, y = split.x_test[:v["limit"]], split.y_test[:v["limit"]]
    ctx.say(f"lab table: {plural(len(loaded.nets), 'model')} ({','.join(loaded.nets)}) × FGSM at ε = "
            f"{','.join(f'{e:g}' for e in eps)}, then CW-L2, over {len(y)} test digits")
    t0 = time.perf_counter()
    table = lab.robust_table(loaded.nets, x, y, eps, ecfg, t["table_steps"], t["restarts"], cw=not args.no_cw,
                             progress=ctx.progress)
    info = {"command": command_line(args), "eps": eps, "n_test": len(y), "cw_steps": ecfg.cw_steps,
            "cw_limit": ecfg.cw_limit, "masking": t, "training": loaded.record["training"],
            "robust_training": loaded.record.get("robust_training"),
            "train_seconds": {k: loaded.record["models"][k].get("train_seconds") for k in loaded.nets},
            "weights_sha256": {k: loaded.record["models"][k]["sha256"] for k in loaded.nets},
            "total_seconds": round(time.perf_counter() - t0, 3)}
    paths = write_files(lab.table_files(table, info, len(y)), args.out)
    wide = lab.robust_wide(table)
    lines = [f"wrote {', '.join(p.name for p in paths)} -> {args.out}",
             wide.to_string(index=False, float_format=lambda f: f"{f:.1f}"), lab.claim_text(table, len(y))]
    if not table.masking.empty:
        lines.append(lab.masking_text(table.masking))
    lines.append("seconds: " + ", ".join(f"{k} {s:.1f}" for k, s in table.seconds.items()))
    return "\n".join(lines)


def certify_config(args):
    """CertifyConfig from the certify flags; ValueError (one line) for bad values."""
    from sdsgsm.experiments.lab import CertifyConfig

    v = _robust_values(args, "certify", ("sigma",))
    radii = tuple(_radius(t) for t in str(args.radii).split(",") if t.strip())
    return CertifyConfig(sigmas=_number_list("sigma", "--sigmas", args.sigmas), n0=v["n0"], n=v["n"],
                         alpha=v["alpha"], limit=v["cert_limit"], radii=radii, attack_steps=v["attack_steps"],
                         attack_noise=v["attack_noise"])


def _radius(text: str) -> float:
    from sdsgsm.params import parse_number

    try:
        return parse_number(text)
    except (ValueError, ZeroDivisionError, argparse.ArgumentTypeError):
        raise ValueError(f"Bad value for --radii: {text!r}.") from None


def cmd_certify(args, ctx) -> str:
    """Train the noise models, certify the test digits, attack the smoothed classifiers; write CSVs and figure."""
    from sdsgsm.experiments import lab
    from sdsgsm.outputs import write_files
    from sdsgsm.render import certify as render_certify
    from sdsgsm.render import figures

    ccfg = certify_config(args)
    cfg = lab.TrainConfig()
    split = lab.load_split(cfg.seed, cfg.test_size)
    ctx.say(f"lab certify: σ = {','.join(f'{s:g}' for s in ccfg.sigmas)}, n0 = {ccfg.n0}, n = {ccfg.n}, "
            f"α = {ccfg.alpha:g}, {min(ccfg.limit, len(split.y_test))} test digits")
    result = lab.certify_lab(split, cfg, ccfg, ctx.progress)
    info = {"command": command_line(args), "certify": ccfg, "training": cfg,
            "empirical": "PGD-L2 on the smoothed classifier (Salman et al. 2019), then PREDICT with n samples; "
                         "abstain counts as wrong"}
    files = lab.certify_files(result, info)
    fig = figures.build(render_certify.certify_figure, result.curve, result.digits)
    files |= figures.figure_files(fig, args.stem, info, "lab_certify")
    paths = write_files(files, args.out)
    seconds = ", ".join(f"{k} {s:.1f}" for k, s in result.seconds.items())
    return (f"wrote {', '.join(p.name for p in paths)} -> {args.out}\n"
            + result.curve.to_string(index=False, float_format=lambda f: f"{f:.3f}") + "\n"
            + lab.certify_text(result) + f"\nseconds: {seconds}")


def run(args) -> str:
    """Dispatch ``lab train`` / ``eval`` / ``table`` / ``certify``; returns the text to print. A command is its own
    process, so it runs in-process on the fixed thread count (``--threads``; otherwise EvalConfig's), restored
    afterwards."""
    from sdsgsm.experiments.lab import EvalConfig

    train = args.lab_command == "train"
    commands = {"train": cmd_train, "eval": cmd_eval, "table": cmd_table, "certify": cmd_certify}
    try:
        with run_context(args, threads=args.threads if train else EvalConfig().threads) as ctx:
            return commands[args.lab_command](args, ctx)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None
