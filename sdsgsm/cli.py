"""Command line: ``python -m sdsgsm attack --image PATH --method sd-sgsm --out DIR``.

Numbers accept fractions such as ``8/255``. Bad flags or files exit with status 2 and a
one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
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


def _add_attack_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="efficientnet_lite0", help="registered model name")
    p.add_argument("--checkpoint", help="TorchScript or state_dict file (overrides --model)")
    p.add_argument("--arch", default="cifar_resnet18", help="architecture of a state_dict checkpoint")
    p.add_argument("--method", default="sd-sgsm", choices=sorted(METHODS))
    p.add_argument("--eps", type=number, default=8 / 255, help="L∞ budget of uniform methods")
    p.add_argument("--eps-strong", type=number, default=8 / 255, help="ε on the sensitive region R")
    p.add_argument("--eps-weak", type=number, default=2 / 255, help="ε on the background")
    p.add_argument("--eps-max", type=number, default=8 / 255, help="cap: ε_weak ≤ ε_strong ≤ ε_max")
    p.add_argument("--alpha", type=number, default=None, help="step size α (default: see README)")
    p.add_argument("--steps", type=int, default=1, help="iterations T")
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
    p.add_argument("--label", type=int, default=None, help="true label (default: gallery label or prediction)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sdsgsm", description="SD-SGSM Explorer command line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    attack = sub.add_parser("attack", help="attack one image and write PNGs, result.json, arrays.npz")
    attack.add_argument("--image", required=True, help="image file or gallery key (e.g. imagenet/imagenet_00_243.jpg)")
    attack.add_argument("--out", required=True, help="output directory")
    _add_attack_flags(attack)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        summary = cmd_attack(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    before, after = summary["clean"], summary["adversarial"]
    print(f"{summary['method']}: '{before['name']}' -> '{after['name']}' "
          f"(success={summary['metrics']['success']}, L2={summary['metrics']['l2']:.3f}, "
          f"Linf={summary['metrics']['linf'] * 255:.2f}/255, SSIM={summary['metrics']['ssim']:.4f}, "
          f"attack {summary['metrics']['time_s']:.2f} s) -> {args.out}")
    return 0
