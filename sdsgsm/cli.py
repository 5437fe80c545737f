"""Command line: ``python -m sdsgsm attack --image PATH --method sd-sgsm --out DIR`` and
``python -m sdsgsm benchmark --data gallery --preset table2 --out DIR``.

Numbers accept fractions such as ``8/255``. Bad flags or files exit with status 2 and a
one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from fractions import Fraction
from pathlib import Path

from .attacks import GRAD_NORMS, METHODS, AttackConfig
from .budget import REGIONS, BudgetConfig
from .occlusion import SCORES, ScanConfig


class CliError(Exception):
    """A user error to print as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CliError(f"{self.prog}: {message}")


def number(text: str) -> float:
    """Parse '8/255', '0.03' or '3e-2' into a finite float."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="efficientnet_lite0", help="registered model name")
    p.add_argument("--checkpoint", help="TorchScript or state_dict file (overrides --model)")
    p.add_argument("--arch", default="cifar_resnet18", help="architecture of a state_dict checkpoint")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)


def _add_budget_flags(p: argparse.ArgumentParser, d: dict) -> None:
    """ε, ε_strong, ε_weak, α and T flags with defaults ``d`` (None: taken from a preset)."""
    p.add_argument("--eps", type=number, default=d["eps"], help="L∞ budget of uniform methods")
    p.add_argument("--eps-strong", type=number, default=d["eps_strong"], help="ε on the sensitive region R")
    p.add_argument("--eps-weak", type=number, default=d["eps_weak"], help="ε on the background")
    p.add_argument("--alpha", type=number, default=d["alpha"], help="step size α (default: see README)")
    p.add_argument("--steps", type=int, default=d["steps"], help="iterations T")


def _add_param_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eps-max", type=number, default=8 / 255, help="cap: ε_weak ≤ ε_strong ≤ ε_max")
    p.add_argument("--omega", type=number, default=10.0, help="tanh steepness ω")
    p.add_argument("--grad-norm", default="max", choices=GRAD_NORMS)
    p.add_argument("--patch", type=int, default=16, help="zero-out window side m (px)")
    p.add_argument("--stride", type=int, default=None, help="window stride (default: m)")
    p.add_argument("--score", default="logit_l2", choices=SCORES)
    p.add_argument("--region", default="argmax", choices=REGIONS)
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--tau", type=number, default=0.0)
    p.add_argument("--rho", type=number, default=0.5)
    p.add_argument("--decay", type=number, default=1.0, help="momentum μ (MI/NI-FGSM)")


ATTACK_DEFAULTS = {"eps": 8 / 255, "eps_strong": 8 / 255, "eps_weak": 2 / 255, "alpha": None, "steps": 1}


def _add_attack_flags(p: argparse.ArgumentParser) -> None:
    _add_model_flags(p)
    p.add_argument("--method", default="sd-sgsm", choices=sorted(METHODS))
    _add_budget_flags(p, ATTACK_DEFAULTS)
    _add_param_flags(p)
    p.add_argument("--label", type=int, default=None, help="true label (default: gallery label or prediction)")


def _add_benchmark_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="gallery | gallery:imagenet|cifar10|photo | cifar10:PATH | an image folder")
    p.add_argument("--methods", default=None, help="comma-separated registry names (default: the preset's)")
    p.add_argument("--preset", default=None, choices=("table1", "table2"),
                   help="paper setting: table1 = one step, ε 8/255; table2 = T 10, α 4/255, ε_max 8/255")
    p.add_argument("--limit", type=int, default=None, help="use at most N images")
    p.add_argument("--batch-size", type=int, default=16, help="images per attack call")
    p.add_argument("--criterion", default="clean_correct", choices=("clean_correct", "all"),
                   help="attack and evaluate clean-correct samples only (default) or all")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for this run")
    p.add_argument("--out", required=True, help="output directory")
    _add_model_flags(p)
    _add_budget_flags(p, dict.fromkeys(ATTACK_DEFAULTS))
    _add_param_flags(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sdsgsm", description="SD-SGSM Explorer command line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    attack = sub.add_parser("attack", help="attack one image and write PNGs, result.json, arrays.npz")
    attack.add_argument("--image", required=True, help="image file or gallery key (e.g. imagenet/imagenet_00_243.jpg)")
    attack.add_argument("--out", required=True, help="output directory")
    _add_attack_flags(attack)
    bench = sub.add_parser("benchmark", help="many methods on many images: results.csv/.md/.tex, per_sample.csv, "
                                             "config.json")
    _add_benchmark_flags(bench)
    return parser


def config_from_args(args) -> AttackConfig:
    """AttackConfig from parsed flags (validation errors become ValueError)."""
    scan = ScanConfig(patch=args.patch, stride=args.stride, score=args.score)
    budget = BudgetConfig(eps_strong=args.eps_strong, eps_weak=args.eps_weak, eps_max=args.eps_max,
                          region=args.region, topk=args.topk, tau=args.tau, rho=args.rho)
    return AttackConfig(eps=args.eps, steps=args.steps, alpha=args.alpha, omega=args.omega,
                        grad_norm=args.grad_norm, decay=args.decay, seed=args.seed, scan=scan, budget=budget)


def model_from_args(args):
    from .models import load_checkpoint, load_model

    if args.checkpoint:
        return load_checkpoint(args.checkpoint, arch=args.arch, device=args.device)
    return load_model(args.model, device=args.device)


def cmd_attack(args) -> dict:
    """Attack one image; write the seven output files; return result.json's content."""
    from .report import attack_image, write_outputs

    cfg = config_from_args(args)
    model = model_from_args(args)
    report = attack_image(model, args.image, cfg, args.method, label=args.label)
    write_outputs(report, Path(args.out))
    return report.summary


def benchmark_config_from_args(args) -> tuple[list[str], AttackConfig]:
    """(methods, AttackConfig): flags given explicitly win over the preset's numbers; without a
    preset the defaults are the paper's unified Table 2 setting (ε = ε_strong = 8/255,
    ε_weak = 4/255, T = 10, α = 4/255)."""
    from .benchmark import PRESETS, parse_methods

    if args.methods is None and args.preset is None:
        raise CliError("benchmark needs --methods a,b,c or --preset table1|table2")
    p = PRESETS[args.preset or "table2"]
    defaults = {"eps": p.eps, "eps_strong": p.eps_strong, "eps_weak": p.eps_weak, "alpha": p.alpha, "steps": p.steps}
    methods = parse_methods(args.methods) if args.methods is not None else list(p.methods)
    return methods, config_from_args(_filled(args, defaults))


def _filled(args, defaults: dict) -> argparse.Namespace:
    """A copy of args where None budget flags take ``defaults``."""
    values = vars(args).copy()
    values.update({k: v for k, v in defaults.items() if values.get(k) is None})
    return argparse.Namespace(**values)


class _StopFlag:
    """First Ctrl-C: finish the current batch, then stop and write partial results."""

    def __init__(self):
        self.stop = False

    def __call__(self, *_):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\nstopping after the current batch (Ctrl-C again to abort) …", file=sys.stderr, flush=True)


def _print_progress(method: str, done: int, total: int) -> None:
    print(f"[{done}/{total}] {method}", file=sys.stderr, flush=True)


def cmd_benchmark(args):
    """Run a benchmark from flags; write the five output files; return the BenchmarkResult."""
    import torch

    from .benchmark import load_benchmark_data, run_benchmark, write_benchmark

    methods, cfg = benchmark_config_from_args(args)
    for flag, value in (("--batch-size", args.batch_size), ("--limit", args.limit), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise CliError(f"{flag} must be at least 1 (got {value})")
    threads = torch.get_num_threads()
    stop = _StopFlag()
    try:
        previous = signal.signal(signal.SIGINT, stop)
    except ValueError:  # not the main thread: no Ctrl-C handling
        previous = None
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        model = model_from_args(args)
        x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
        meta = {"preset": args.preset, "command": "python -m sdsgsm " + " ".join(getattr(args, "argv", [])),
                "data_label_source": info["label_source"]}
        result = run_benchmark(model, x, y, methods, cfg, batch_size=args.batch_size, criterion=args.criterion,
                               progress=_print_progress, should_stop=lambda: stop.stop, keys=keys,
                               data=info["name"], meta=meta)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        torch.set_num_threads(threads)
    write_benchmark(result, Path(args.out))
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        if args.command == "benchmark":
            result = cmd_benchmark(args)
        else:
            summary = cmd_attack(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    if args.command == "benchmark":
        print(result.markdown() + f"-> {args.out}")
        return 0
    before, after = summary["clean"], summary["adversarial"]
    print(f"{summary['method']}: '{before['name']}' -> '{after['name']}' "
          f"(success={summary['metrics']['success']}, L2={summary['metrics']['l2']:.3f}, "
          f"Linf={summary['metrics']['linf'] * 255:.2f}/255, SSIM={summary['metrics']['ssim']:.4f}, "
          f"attack {summary['metrics']['time_s']:.2f} s) -> {args.out}")
    return 0
