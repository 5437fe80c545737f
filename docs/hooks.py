"""MkDocs hooks: the pages' generated parts, made from the code at build time so that they cannot rot.

* ``<!-- params:NAME -->`` becomes :func:`sdsgsm.params.markdown_table` of the spec table ``NAME``
  (``PARAMS``, ``DEFENCE_PARAMS``, ``LAB_PARAMS``, ``LAB_VIEW_PARAMS``, ``PATCH_TRAIN_PARAMS``).
* ``<!-- cli:all -->`` becomes one section per sub-command of ``python -m sdsgsm`` with its
  ``format_help()`` in a code block; ``<!-- cli:NAME -->`` (e.g. ``cli:lab eval``) just that one.
* ``<!-- presets -->`` becomes the table of :data:`sdsgsm.params.PRESETS`.
* ``<!-- methods -->`` becomes the table of the method registry :data:`sdsgsm.attacks.METHODS`.
* The lab's figure (``sdsgsm/assets/lab/lab_figure.png``) is added to the site as ``img/lab_figure.png``.

An unknown marker stops the build (a ``PluginError``), so a renamed table is noticed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!--\s*(params|cli|presets|methods)(?::([^>]*?))?\s*-->")
HELP_COLUMNS = "96"  # argparse wraps at $COLUMNS; fixed so the pages do not depend on the terminal
EXTRA_FILES = {"img/lab_figure.png": ROOT / "sdsgsm" / "assets" / "lab" / "lab_figure.png",
               "img/lab_certify_figure.png": ROOT / "sdsgsm" / "assets" / "lab" / "lab_certify_figure.png"}


def _params(name: str) -> str:
    from sdsgsm import params

    table = getattr(params, name, None)
    if not isinstance(table, dict) or not name.endswith("PARAMS"):
        raise PluginError(f"docs marker params:{name}: sdsgsm.params has no spec table {name!r}")
    return params.markdown_table(table)


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (sub-)command of the one parser, depth first: ('attack', parser), ('figure grid', …), …"""
    from sdsgsm.cli import build_parser

    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:  # argparse keeps sub-parsers only here
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((" ".join(path + [name]), sub))
                    walk(sub, path + [name])

    walk(build_parser(), [])
    return found


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _cli(which: str) -> str:
    from sdsgsm.cli.common import PROG

    commands = _commands()
    if which != "all":
        commands = [(n, p) for n, p in commands if n == which]
        if not commands:
            raise PluginError(f"docs marker cli:{which}: {PROG} has no such sub-command")
    parts = []
    for name, parser in commands:
        level = "###" if " " in name else "##"
        parts.append(f"{level} `{name}`\n\n```text\n{_help(parser)}\n```\n")
    return "\n".join(parts)


def _presets() -> str:
    from sdsgsm.attacks import method_label
    from sdsgsm.params import PRESETS

    lines = ["| Preset | Button | Methods | Setting |", "|---|---|---|---|"]
    for p in PRESETS.values():
        methods = ", ".join(method_label(m) for m in p.methods)
        lines.append(f"| `{p.name}` | {p.label} | {methods} | {p.description} |")
    return "\n".join(lines) + "\n"


def _methods() -> str:
    from sdsgsm.attacks import METHODS

    lines = ["| Key | Name | Bounded by ε | Minimum-norm | Description |", "|---|---|---|---|---|"]
    for key, m in METHODS.items():
        desc = str(getattr(m, "description", "")).replace("|", "\\|").replace("\n", " ")
        bounded = "yes" if getattr(m, "bounded", True) else "no"
        minimum = "yes" if getattr(m, "minimum_norm", False) else ""
        lines.append(f"| `{key}` | {m.label} | {bounded} | {minimum} | {desc} |")
    return "\n".join(lines) + "\n"


def expand(markdown: str, page: str = "?") -> str:
    """``markdown`` with every marker replaced by what it names (also used by tests/test_docs.py)."""

    def one(match: re.Match) -> str:
        kind, arg = match.group(1), (match.group(2) or "").strip()
        if kind == "params":
            return _params(arg)
        if kind == "cli":
            return _cli(arg or "all")
        if kind == "presets":
            return _presets()
        if kind == "methods":
            return _methods()
        raise PluginError(f"{page}: unknown docs marker {match.group(0)}")  # pragma: no cover

    return MARKER.sub(one, markdown)


def on_config(config):
    # the package is imported from this checkout, as mkdocstrings reads it (MkDocs restores sys.path after
    # loading this file, so this happens here and not at import time)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    return expand(markdown, page.file.src_uri)


def on_files(files, config):
    for uri, src in EXTRA_FILES.items():
        if not src.is_file():
            raise PluginError(f"docs: {src.relative_to(ROOT)} is missing")
        files.append(File.generated(config, uri, abs_src_path=str(src)))
    return files
