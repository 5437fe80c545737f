"""Command line: ``python -m sdsgsm attack --image PATH --method sd-sgsm --out DIR`` and
``python -m sdsgsm benchmark --data gallery --preset table2 --out DIR``.

Numbers accept fractions such as ``8/255``. Bad flags or files exit with status 2 and a
one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import warnings
from pathlib import Path

from sdsgsm.attacks import METHODS, AttackConfig
from sdsgsm.cli import defend as cli_defend
from sdsgsm.cli import figures as cli_figures
from sdsgsm.cli import lab as cli_lab
from sdsgsm.cli import transfer as cli_transfer
from sdsgsm.models import first_line
from sdsgsm.params import PRESETS, add_flags, build_config, get_preset, values_from_args


class CliError(Exception):
    """A user error to print as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump, a long typed value shortened
        message = re.sub(r"'([^']{40})[^']+'", r"'\1…'", message)
        raise CliError(f"{self.prog}: {first_line(message, 300)}")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="efficientnet_lite0", help="registered model name")
    p.add_argument("--checkpoint", help="TorchScript or state_dict file (overrides --model)")
    p.add_argument("--arch", default="cifar_resnet18", help="architecture of a state_dict checkpoint")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")


def _add_attack_flags(p: argparse.ArgumentParser) -> None:
    _add_model_flags(p)
    p.add_argument("--method", default=None, choices=sorted(METHODS), help="registry method (default: sd-sgsm)")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS),
                   help="paper setting whose numbers explicit flags override (see README: Presets)")
    add_flags(p, preset_defaults=True)
    p.add_argument("--label", type=int, default=None, help="true label (default: gallery label or prediction)")


def _add_benchmark_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="gallery | gallery:imagenet|cifar10|photo | cifar10:PATH | an image folder")
    p.add_argument("--methods", default=None, help="comma-separated registry names (default: the preset's)")
    p.add_argument("--preset", default=None, choices=tuple(PRESETS),
                   help="; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()))
    p.add_argument("--limit", type=int, default=None, help="use at most N images")
    p.add_argument("--batch-size", type=int, default=16, help="images per attack call")
    p.add_argument("--criterion", default="clean_correct", choices=("clean_correct", "all"),
                   help="attack and evaluate clean-correct samples only (default) or all")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for this run")
    p.add_argument("--out", required=True, help="output directory")
    _add_model_flags(p)
    add_flags(p, preset_defaults=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sdsgsm", description="SD-SGSM Explorer command line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    attack = sub.add_parser("attack", help="attack one image and write PNGs, result.json, arrays.npz")
    attack.add_argument("--image", default=None, help="image file or gallery key (e.g. imagenet/imagenet_00_243.jpg)")
    attack.add_argument("--from", dest="from_json", default=None,
                        help="a result.json to run again (its image, method, label, parameters; flags override)")
    attack.add_argument("--out", required=True, help="output directory")
    _add_attack_flags(attack)
    bench = sub.add_parser("benchmark", help="many methods on many images: results.csv/.md/.tex, per_sample.csv, "
                                             "config.json")
    _add_benchmark_flags(bench)
    train = sub.add_parser("train-patch", help="train universal 'toaster' patches with ART (progress bar); writes "
                                               "toaster_<s>.png and patches.json")
    _add_train_patch_flags(train)
    cli_figures.add_parsers(sub, _Parser, _add_model_flags)
    cli_defend.add_parser(sub, _Parser, _add_model_flags)
    cli_lab.add_parsers(sub, _Parser)
    cli_transfer.add_parser(sub, _Parser)
    return parser


def _add_train_patch_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="48", help="comma-separated patch sides in px, e.g. 32,48,64")
    p.add_argument("--steps", type=int, default=30, help="ART iterations (each a pass over the data)")
    p.add_argument("--seed", type=int, default=0, help="seed of numpy/torch (ART's random placements)")
    p.add_argument("--batch-size", type=int, default=8, help="images per optimisation step")
    p.add_argument("--target", type=int, default=859, help="target class (default 859, ImageNet 'toaster')")
    p.add_argument("--data", default="gallery:photo", help="training images, as benchmark --data (default: the "
                   "gallery photos, which are not in the 20-image ImageNet evaluation gallery)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for this run")
    p.add_argument("--out", default=None, help="output directory (default: assets/patches)")
    _add_model_flags(p)


def config_from_args(args) -> AttackConfig:
    """AttackConfig from parsed flags over the preset's values (if any) over the spec defaults.

    Invalid values or combinations raise ValueError with a one-line message.
    """
    base = get_preset(args.preset).apply() if getattr(args, "preset", None) else None
    return build_config(values_from_args(args, base))


def model_from_args(args):
    from sdsgsm.models import load_checkpoint, load_model

    if args.checkpoint:
        return load_checkpoint(args.checkpoint, arch=args.arch, device=args.device)
    return load_model(args.model, device=args.device)


def out_dir(args) -> Path:
    """``--out`` as a Path; a CliError when it names an existing file (:func:`main` checks it for every
    command before any work)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out} is an existing file; give a directory (it is created if missing)")
    return out


def cmd_attack(args) -> dict:
    """Attack one image; write the seven output files; return result.json's content."""
    from sdsgsm.experiments.report import attack_image, write_outputs

    if args.from_json:
        return cmd_attack_from(args)
    if not args.image:
        raise CliError("attack needs --image PATH|GALLERY_KEY or --from result.json")
    cfg = config_from_args(args)
    model = model_from_args(args)
    report = attack_image(model, args.image, cfg, args.method or "sd-sgsm", label=args.label)
    write_outputs(report, Path(args.out))
    return report.summary


def cmd_attack_from(args) -> dict:
    """Run a saved result.json again (same image, method, label and parameters; flags given override)."""
    from sdsgsm.experiments.report import attack_tensor, resolve_image, write_outputs
    from sdsgsm.params import config_values
    from sdsgsm.share import load_result, override

    run = load_result(args.from_json)
    cfg = override(run.cfg, values_from_args(args, config_values(run.cfg)))
    model = model_from_args(args)
    x, _, name = resolve_image(args.image or run.image, model.input_size)
    label = args.label if args.label is not None else run.label
    report = attack_tensor(model, x, cfg, args.method or run.method, label, name)
    write_outputs(report, Path(args.out))
    return report.summary


def benchmark_config_from_args(args) -> tuple[list[str], AttackConfig]:
    """(methods, AttackConfig): explicit flags win over the preset's numbers; a run without a
    preset uses the spec defaults (see README: Parameters)."""
    from sdsgsm.experiments.benchmark import parse_methods

    if args.methods is None and args.preset is None:
        raise CliError(f"benchmark needs --methods a,b,c or --preset {'|'.join(PRESETS)}")
    methods = parse_methods(args.methods) if args.methods is not None else list(PRESETS[args.preset].methods)
    return methods, config_from_args(args)


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

    from sdsgsm.distributed import finish, gather_rows, start
    from sdsgsm.experiments.benchmark import load_benchmark_data, run_benchmark, write_benchmark

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
        shard = start(args.device)  # torchrun: join the process group (sdsgsm.distributed)
        if shard is not None:
            args.device = shard.device
        model = model_from_args(args)
        x, y, keys, info = load_benchmark_data(args.data, model, args.limit)
        meta = {"preset": args.preset, "command": "python -m sdsgsm " + " ".join(getattr(args, "argv", [])),
                "data_label_source": info["label_source"], "processes": 1 if shard is None else shard.world}
        lead = shard is None or shard.rank == 0
        result = run_benchmark(model, x, y, methods, cfg, batch_size=args.batch_size, criterion=args.criterion,
                               progress=_print_progress if lead else None, should_stop=lambda: stop.stop, keys=keys,
                               data=info["name"], meta=meta,
                               shard=(0, 1) if shard is None else (shard.rank, shard.world),
                               gather=None if shard is None else gather_rows)
        if lead:
            write_benchmark(result, Path(args.out))
        if shard is not None:
            finish()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        torch.set_num_threads(threads)
    return result if lead else None


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings (e.g. out-of-memory retries, sdsgsm.memory) as 'warning: …' without a source path;
    libraries' own notices (torch's pickle-protocol and TorchScript deprecation warnings) are not shown."""
    from sdsgsm.memory import MemoryRetryWarning

    if not issubclass(category, MemoryRetryWarning) and "sdsgsm" not in Path(str(filename)).parts:
        return
    print(f"warning: {str(message).splitlines()[0] if str(message) else category.__name__}", file=sys.stderr,
          flush=True)


def cmd_train_patch(args) -> list[Path]:
    """Train one universal patch per size (sdsgsm.experiments.patch_train) and save them; returns the PNG paths."""
    import torch

    from sdsgsm.experiments.benchmark import load_benchmark_data
    from sdsgsm.experiments.patch_train import PATCH_DIR, PatchTraining, save_patch, train_universal_patch

    try:
        sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--sizes must be comma-separated integers (got {args.sizes!r})") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    model = model_from_args(args)
    x, _, _, _ = load_benchmark_data(args.data, model)
    command = "python -m sdsgsm " + " ".join(getattr(args, "argv", []))
    paths = []
    for size in sizes:
        run = PatchTraining(size=size, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                            target=args.target, data=args.data)
        patch, info = train_universal_patch(model, x, run)
        paths.append(save_patch(patch, info, args.out or PATCH_DIR, command))
        print(f"{paths[-1].name}: {info['seconds']} s on {info['device']}", file=sys.stderr, flush=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        if getattr(args, "out", None):
            out_dir(args)  # every command: refuse an --out that is a file before any work
        runner = {"figure": cli_figures.run, "sweep": cli_figures.run, "defend": cli_defend.run,
                  "lab": cli_lab.run, "transfer": cli_transfer.run}.get(args.command)
        if runner is not None:  # the commands that live in their own modules print one summary line
            print(runner(args))
            return 0
        if args.command == "benchmark":
            result = cmd_benchmark(args)
            if result is None:  # a torchrun rank other than 0: rank 0 writes and prints
                return 0
        elif args.command == "train-patch":
            paths = cmd_train_patch(args)
        else:
            summary = cmd_attack(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {first_line(exc, 300)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback
        if os.environ.get("SDSGSM_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {first_line(exc, 300)} "
              "(set SDSGSM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    if args.command == "benchmark":
        print(result.markdown() + f"-> {args.out}")
        return 0
    if args.command == "train-patch":
        print("wrote " + ", ".join(p.name for p in paths))
        return 0
    before, after = summary["clean"], summary["adversarial"]
    print(f"{summary['method']}: '{before['name']}' -> '{after['name']}' "
          f"(success={summary['metrics']['success']}, L2={summary['metrics']['l2']:.3f}, "
          f"Linf={summary['metrics']['linf'] * 255:.2f}/255, SSIM={summary['metrics']['ssim']:.4f}, "
          f"attack {summary['metrics']['attack_time_s']:.2f} s + scan {summary['metrics']['scan_time_s']:.2f} s)"
          f" -> {args.out}")
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0
