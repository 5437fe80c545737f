"""Command line: ``python -m sdsgsm attack --image PATH --method sd-sgsm --out DIR``,
``python -m sdsgsm benchmark --data gallery --preset table2 --out DIR`` and the other sub-commands of
:data:`COMMANDS`, one module each.

Numbers accept fractions such as ``8/255``. Bad flags or files exit with status 2 and a one-line message on
stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from sdsgsm.cli import (
    app,
    attack,
    benchmark,
    defend,
    detect,
    figures,
    lab,
    patch_eval,
    queries,
    sigma_curves,
    train_patch,
    transfer,
    universal,
)
from sdsgsm.cli.common import PROG, CliError, Parser, finish_help, out_dir
from sdsgsm.models import first_line

# one module per command group; each registers its sub-command(s) and their ``run``
COMMANDS = (attack, benchmark, figures, sigma_curves, defend, detect, queries, lab, transfer, universal, train_patch,
            patch_eval, app)


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="SD-SGSM Explorer command line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    finish_help(parser)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings (e.g. out-of-memory retries, sdsgsm.memory) as 'warning: …' without a source path;
    libraries' own notices (torch's pickle-protocol and TorchScript deprecation warnings) are not shown."""
    from sdsgsm.memory import MemoryRetryWarning

    if not issubclass(category, MemoryRetryWarning) and "sdsgsm" not in Path(str(filename)).parts:
        return
    print(f"warning: {str(message).splitlines()[0] if str(message) else category.__name__}", file=sys.stderr,
          flush=True)


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
        text = args.run(args)
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
    if text:  # None: a torchrun rank other than 0 (rank 0 writes and prints)
        print(text)
    return 0


__all__ = ["COMMANDS", "CliError", "build_parser", "main"]
