"""What every sub-command shares: one-line errors, the model flags, the attack parameters from a preset and
the spec, the progress line, the output writer, and one run context (CPU threads, Ctrl-C, the command string).

Every command module has ``add_parser(sub)``, which registers its sub-command(s) with ``run`` as their
handler, and ``run(args) -> str | None``, which returns the text to print. A new command is one module
plus one line in :data:`sdsgsm.cli.COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sdsgsm.attacks import AttackConfig, build_config
from sdsgsm.models import first_line
from sdsgsm.outputs import write_files
from sdsgsm.params import PRESETS, add_flags, get_preset, values_from_args

PROG = "python -m sdsgsm"
PARTIAL = ".partial"  # the unit store's folder inside --out (removed when a run finishes)


class CliError(Exception):
    """A user error to print as one line."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), a long typed value shortened."""

    def error(self, message):
        message = re.sub(r"'([^']{40})[^']+'", r"'\1…'", message)
        raise CliError(f"{self.prog}: {first_line(message, 300)}")


# ----------------------------------------------------------------------------- flags
def add_model_flags(p: argparse.ArgumentParser) -> None:
    """--model, --checkpoint, --arch, --device."""
    p.add_argument("--model", default="efficientnet_lite0", help="registered model name")
    p.add_argument("--checkpoint", help="TorchScript or state_dict file (overrides --model)")
    p.add_argument("--arch", default="cifar_resnet18", help="architecture of a state_dict checkpoint")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")


def add_attack_params(p: argparse.ArgumentParser, preset_help: str | None = None) -> None:
    """--preset plus one flag per spec parameter (defaults None, so the preset can fill them)."""
    p.add_argument("--preset", default=None, choices=tuple(PRESETS),
                   help=preset_help or "paper setting whose numbers explicit flags override (see the docs: Presets)")
    add_flags(p, preset_defaults=True)


def add_data_flags(p: argparse.ArgumentParser, *, default: str | None = "gallery", batch_size: int = 16,
                   criterion: bool = True) -> None:
    """--data, --limit, --batch-size (and --criterion)."""
    p.add_argument("--data", default=default, required=default is None,
                   help="gallery | gallery:imagenet|cifar10|photo | cifar10:PATH | an image folder")
    p.add_argument("--limit", type=int, default=None, help="use at most N images")
    p.add_argument("--batch-size", type=int, default=batch_size, help="images per attack call")
    if criterion:
        p.add_argument("--criterion", default="clean_correct", choices=("clean_correct", "all"),
                       help="attack and evaluate clean-correct samples only (default) or all")


def add_run_flags(p: argparse.ArgumentParser, fresh: bool = True) -> None:
    """--fresh (discard an unfinished run in --out instead of resuming it) and --verbose (one line per unit)."""
    if fresh:
        p.add_argument("--fresh", action="store_true",
                       help="start over: discard the finished units an interrupted run left in --out (default: resume)")
    p.add_argument("--verbose", action="store_true", help="one progress line per finished unit")


def add_threads_flag(p: argparse.ArgumentParser, default: int | None = None, text: str = "") -> None:
    p.add_argument("--threads", type=int, default=default,
                   help=text or "torch CPU threads for this run (restored afterwards)")


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """CliError unless each of the named integer flags is absent or at least 1."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")


# ----------------------------------------------------------------------------- values
def attack_values(args: argparse.Namespace) -> dict:
    """Native parameter values: flags given over the preset's numbers (if any); checked."""
    base = get_preset(args.preset).apply() if getattr(args, "preset", None) else None
    return values_from_args(args, base)


def config_from_args(args: argparse.Namespace) -> AttackConfig:
    """AttackConfig from parsed flags over the preset's values (if any) over the spec defaults.

    Invalid values or combinations raise ValueError with a one-line message.
    """
    return build_config(attack_values(args))


def model_from_args(args: argparse.Namespace):
    """The classifier of --checkpoint (with --arch) or --model, on --device."""
    from sdsgsm.models import load_checkpoint, load_model

    if getattr(args, "checkpoint", None):
        return load_checkpoint(args.checkpoint, arch=args.arch, device=args.device)
    return load_model(args.model, device=args.device)


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (recorded in every output's config)."""
    return f"{PROG} " + " ".join(getattr(args, "argv", []))


def out_dir(args: argparse.Namespace) -> Path:
    """``--out`` as a Path; CliError when it names an existing file (checked before any work)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out} is an existing file; give a directory (it is created if missing)")
    return out


def write(files: Mapping[str, bytes], out: str | Path) -> str:
    """Write {name: bytes} into ``out``; returns the written names, comma-separated."""
    return ", ".join(p.name for p in write_files(dict(files), out))


def plural(n: int, word: str) -> str:
    """'1 method', '3 methods'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def say(text: str) -> None:
    """One line on stderr (what a command will run, resuming, …)."""
    print(text, file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class Progress:
    """Progress on stderr, called as ``progress(text, done, total)``.

    On a terminal: a tqdm bar with the count, elapsed time, ETA and the current unit. Elsewhere (CI logs,
    a file) or with ``verbose``: plain lines ``[done/total] pct | elapsed | ETA | text``, no carriage
    returns; without ``verbose`` at most one every ``every`` seconds, plus the last. A call that does not
    advance the count (a method starting) changes the bar's text but prints no line. The ETA leaves out the
    burst of calls at the start (units a resumed run reads back), which would make it far too short.
    """

    def __init__(self, verbose: bool = False, every: float = 5.0, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.verbose, self.every = verbose, every
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not verbose
        self.bar, self.t0, self.last_line, self.done = None, None, -1e9, None
        self.base, self.prev, self.settled = (0.0, 0), None, False

    def __call__(self, text: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        if not self.settled:  # still in the opening burst: the rate is measured from here on
            if self.prev is None or now - self.prev < 0.05:
                self.base = (now, done)
            else:
                self.settled = True
        self.prev = now
        if self.tty:
            self._bar(text, done, total)
            return
        if done == self.done:
            return
        first = self.done is None
        self.done = done
        if self.verbose or first or done >= total or now - self.last_line >= self.every:
            self.last_line = now
            rate = (done - self.base[1]) / (now - self.base[0]) if done > self.base[1] and now > self.base[0] else None
            eta = 0.0 if done >= total else ((total - done) / rate if rate and self.settled else None)
            self.stream.write(self.line(text, done, total, now - self.t0, eta) + "\n")
            self.stream.flush()

    def _bar(self, text: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            self.close()
            try:  # a terminal that reports no size (some pseudo-terminals): 100 columns, 24 rows
                width, rows = os.get_terminal_size(self.stream.fileno())
            except (AttributeError, OSError, ValueError):
                width, rows = 0, 0
            self.bar = tqdm(total=total, file=self.stream, desc=text, leave=True, mininterval=0.5,
                            dynamic_ncols=width > 0, ncols=None if width > 0 else 100, nrows=rows or 24,
                            bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {desc}")
        self.bar.set_description_str(text, refresh=False)
        if done != self.bar.n:
            self.bar.update(done - self.bar.n)
        else:
            self.bar.refresh()
        if done >= total:
            self.close()

    @staticmethod
    def line(text: str, done: int, total: int, elapsed: float, eta: float | None) -> str:
        """``[done/total] pct | elapsed | ETA | text`` (ETA --:-- while unknown)."""
        pct = 100.0 * done / total if total else 100.0
        return (f"[{done}/{total}] {pct:5.1f}% | elapsed {_clock(elapsed)} | "
                f"ETA {_clock(eta) if eta is not None else '--:--'} | {text}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------- run context
@dataclass
class RunContext:
    """One command's run: ``stop`` turns True at the first Ctrl-C (finish the current unit, keep what is
    done, write partial results); a second Ctrl-C aborts. ``command`` is the command line as typed."""

    command: str
    stop: bool = False
    progress: Progress | None = None
    out: Path | None = None
    fresh: bool = False

    def should_stop(self) -> bool:
        return self.stop

    def _interrupt(self, *_) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\nstopping after the current unit (Ctrl-C again to abort) …", file=sys.stderr, flush=True)

    say = staticmethod(say)

    def units(self, enabled: bool = True):
        """The unit store of this run in ``--out`` (None when ``enabled`` is False or there is no --out)."""
        from sdsgsm.experiments.runner import UnitStore

        if not enabled or self.out is None:
            return None
        return UnitStore(self.out / PARTIAL, fresh=self.fresh, note=say)


@contextmanager
def run_context(args: argparse.Namespace, threads: int | None = None) -> Iterator[RunContext]:
    """The context every command runs in: ``threads`` (default ``--threads``) torch CPU threads, restored on
    exit, so a command called in-process (tests, notebooks) leaves the count it found; Ctrl-C handled when on
    the main thread."""
    import torch

    out = Path(args.out) if getattr(args, "out", None) else None
    ctx = RunContext(command_line(args), progress=Progress(verbose=bool(getattr(args, "verbose", False))), out=out,
                     fresh=bool(getattr(args, "fresh", False)))
    n = threads if threads is not None else getattr(args, "threads", None)
    before = torch.get_num_threads()
    try:
        previous = signal.signal(signal.SIGINT, ctx._interrupt)
    except ValueError:  # not the main thread: no Ctrl-C handling
        previous = None
    try:
        if n:
            torch.set_num_threads(n)
        yield ctx
    finally:
        ctx.progress.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- help: examples and registry choices
EXAMPLES: dict[str, tuple[str, ...]] = {  # sub-command path -> usage examples (what follows PROG)
    "attack": ("attack --image imagenet/imagenet_00_243.jpg --method sd-sgsm --out out/dog",
               "attack --from out/dog/result.json --steps 10 --out out/dog10"),
    "benchmark": ("benchmark --data gallery --preset table2 --out out/table2",
                  "benchmark --data gallery:imagenet --methods fgsm,pgd,sd-sgsm --limit 8 --out out/small"),
    "figure grid": ("figure grid --images imagenet/imagenet_00_243.jpg,imagenet/imagenet_01_559.jpg "
                    "--methods fgsm,sd-sgsm --out out/grid",),
    "figure radar": ("figure radar --results out/table2/results.csv --out out/radar",),
    "figure bars": ("figure bars --results out/table2/results.csv --out out/bars",),
    "figure sweep": ("figure sweep --from out/sweep/sweep.csv --out out/sweep_fig",),
    "sweep": ("sweep --param eps --values 0:16/255:5 --methods fgsm,sd-sgsm --limit 4 --out out/sweep",
              "sweep --param eps --values 2/255,8/255 --param omega --values 1,10 --metric ssim --out out/heat"),
    "defend": ("defend --methods fgsm,pgd,sd-sgsm --defences none,jpeg,median --limit 4 --out out/defences",
               "defend --methods fgsm,pgd --defences resize --eot-table --limit 4 --out out/eot"),
    "detect": ("detect --methods fgsm,pgd,deepfool --limit 8 --out out/detect",),
    "queries": ("queries --methods square,hopskipjump,fgsm,pgd --budgets 50,100,200 --limit 4 --out out/queries",),
    "lab train": ("lab train --out out/lab",),
    "lab eval": ("lab eval --eps 0:32/255:9 --out out/lab_eval",),
    "lab table": ("lab table --eps 0.1,0.2,0.3 --out out/lab_table",),
    "lab certify": ("lab certify --sigmas 0.25,0.5 --out out/lab_certify",),
    "app": ("app", "app --port 8502"),
    "transfer": ("transfer --sources lite0,ens:lite0+lite1 --targets lite1,lite2 --methods fgsm,mifgsm --limit 4 "
                 "--out out/transfer",),
    "train-patch": ("train-patch --sizes 32,48 --out out/patches",
                    "train-patch --sizes 64 --steps 500 --curve-every 25 --out out/patches"),
    "patch-eval": ("patch-eval --out out/patch_eval",
                   "patch-eval --kinds universal --sizes 64 --placements omega-star,random --limit 8 --out out/pe"),
    "universal": ("universal --inner deepfool,smoothfool --sigmas 1,5,10 --max-passes 3 --out out/universal",
                  "universal --inner smoothfool --sigmas 5 --limit 6 --max-passes 1 --targets lite1 "
                  "--out out/uap_small"),
    "sigma-curves": ("sigma-curves --data gallery:imagenet --values 1,2,5,10 --threads 1 --out out/sigma",
                     "sigma-curves --kernels gaussian,linear --values 2,5 --limit 4 --out out/sigma_small"),
}


def _leaf_parsers(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(sub-command path, parser) of every runnable sub-command ('attack', 'figure grid', …)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs and path:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, f"{path} {name}".strip())


def _choices_text(dest: str) -> str:
    """The valid names of a flag that takes registry names, read from the registries (never copied)."""
    from sdsgsm.attacks import METHODS
    from sdsgsm.models import available_models

    if dest == "model":
        return "one of: " + ", ".join(m.name for m in available_models())
    if dest == "methods":
        return "any of: " + ", ".join(METHODS)
    if dest in ("sources", "targets"):
        from sdsgsm.ensemble import ALIASES

        return ("registered models: " + ", ".join(m.name for m in available_models()) + "; aliases: "
                + ", ".join(f"{k} = {v}" for k, v in ALIASES.items()))
    return ""


def finish_help(parser: argparse.ArgumentParser) -> None:
    """Every sub-command's help ends with usage examples (:data:`EXAMPLES`), and the flags that take
    registry names (--model, --methods, --sources, --targets) list the valid names."""
    for path, leaf in _leaf_parsers(parser):
        leaf.formatter_class = argparse.RawDescriptionHelpFormatter
        leaf.epilog = "examples:\n" + "\n".join(f"  {PROG} {e}" for e in EXAMPLES[path])
        for action in leaf._actions:
            text = _choices_text(action.dest) if action.option_strings else ""
            if text and action.help and text not in action.help:
                action.help = f"{action.help}; {text}"
