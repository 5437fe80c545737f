"""``python -m sdsgsm detect --methods fgsm,pgd --data gallery --limit 8 --out DIR``: feature-squeezing detection
(Xu, Evans & Qi, NDSS 2018) of each attack and the adaptive attack that evades it (Carlini & Wagner, AISec 2017)
(:mod:`sdsgsm.experiments.detection`).

Writes detection.csv (one row per attack: ASR, detection rate, evasion rate, ROC AUC), detection_per_sample.csv,
detection.json (threshold, realised clean FPR, every parameter) and the ROC figure detection_roc.pdf/.png/.svg/.json;
prints a Markdown table. Progress goes to stderr. Errors are ValueError with one line (exit status 2).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from sdsgsm.cli.common import (
    add_model_flags,
    add_threads_flag,
    check_positive,
    config_from_args,
    model_from_args,
    plural,
    run_context,
    write,
)
from sdsgsm.params import DEFENCE_PARAMS, DETECTION_BITS, DETECTION_PARAMS, PRESETS, add_flags, values_from_args

# the squeezers' parameters, bit depth defaulting to that of Xu et al.'s ImageNet detector
SQUEEZER_PARAMS = {"bit_depth": replace(DEFENCE_PARAMS["bit_depth"], default=DETECTION_BITS),
                   "median_window": DEFENCE_PARAMS["median_window"]}


def add_parser(sub) -> None:
    """Add the ``detect`` sub-command to the CLI's subparsers."""
    p = sub.add_parser("detect", help="feature-squeezing detection per attack and the adaptive attack that evades "
                                      "it: detection.csv, per-sample CSV, JSON, ROC figure")
    p.add_argument("--methods", default="fgsm,pgd", help="comma-separated registry names (non-adaptive attacks)")
    p.add_argument("--squeezers", default="bitdepth,median", help="comma-separated deterministic defences used as "
                                                                  "squeezers (default bitdepth,median)")
    p.add_argument("--no-baseline", action="store_true", help="skip the adaptive loop with λ = 0")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS), help="paper setting for the attack parameters")
    p.add_argument("--data", default="gallery",
                   help="gallery | gallery:imagenet|cifar10|photo | cifar10:PATH | a folder")
    p.add_argument("--limit", type=int, default=None, help="use at most N images")
    p.add_argument("--batch-size", type=int, default=8, help="images per attack call")
    add_threads_flag(p)
    p.add_argument("--stem", default="detection", help="output file name stem")
    p.add_argument("--out", required=True, help="output directory")
    add_model_flags(p)
    add_flags(p, preset_defaults=True)
    add_flags(p, spec=DETECTION_PARAMS)
    add_flags(p, spec=SQUEEZER_PARAMS)
    p.set_defaults(run=run)


def detection_config_from_args(args: argparse.Namespace):
    """The DetectionConfig of the flags; ValueError (one line) when invalid."""
    from sdsgsm.defences import DefenceConfig
    from sdsgsm.detection import DetectionConfig, parse_squeezers

    return DetectionConfig(parse_squeezers(args.squeezers), **values_from_args(args, spec=DETECTION_PARAMS),
                           defence=DefenceConfig(**values_from_args(args, spec=SQUEEZER_PARAMS)))


def run(args: argparse.Namespace) -> str:
    """Run the detection experiment from parsed flags, write its files; returns the text to print."""
    from sdsgsm.experiments.detection import detection_files, run_detection
    from sdsgsm.experiments.runner import load_benchmark_data, parse_methods

    check_positive(args, "batch_size", "limit", "threads")
    cfg, det, methods = config_from_args(args), detection_config_from_args(args), parse_methods(args.methods)
    with run_context(args) as ctx:
        model = model_from_args(args)
        x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
        ctx.say(f"detect: {plural(len(methods), 'method')} ({','.join(methods)}) + the adaptive attack over "
                f"{plural(len(x), 'image')}, squeezers {','.join(det.squeezers)}, on {model.name}")
        result = run_detection(model, x, y, methods, cfg, det, batch_size=args.batch_size,
                               baseline=not args.no_baseline, progress=ctx.progress, should_stop=ctx.should_stop,
                               keys=keys, data=info["name"])
        result.config["command"] = ctx.command
    written = write(detection_files(result, args.stem), args.out)
    return result.markdown() + f"wall time {result.config['wall_time_s']:.1f} s\nwrote {written} -> {args.out}"
