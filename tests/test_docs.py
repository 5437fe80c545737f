"""The documentation site cannot rot.

* ``mkdocs build --strict`` succeeds (every cross-reference to a function resolves, every generated table is
  made from the code), and the generated pages hold every parameter of every spec table, every sub-command of
  the command line and every registered method;
* every ```python fence in ``docs/*.md`` and the README runs;
* every ```bash fence whose commands are ``python -m sdsgsm …`` or ``sdsgsm …`` (not ``sdsgsm app``) runs through
  the command line's entry point, in a temporary folder, and writes its ``--out`` folder.

A fence can be excluded only with an explicit marker on the line before it, which must say why:
``<!-- docs-test: not-run: <reason> -->``. Bash fences without ``python -m sdsgsm`` (installing, starting the
app, torchrun) are not run.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLI = "python -m sdsgsm"
FENCE = re.compile(r"(?:^<!--\s*docs-test:\s*(?P<marker>[^\n]*?)\s*-->\n)?"
                   r"^```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^```\s*$", re.S | re.M)


@dataclass(frozen=True)
class Fence:
    page: str
    index: int  # the n-th fence of that language on the page
    lang: str
    body: str
    marker: str  # '' (no marker), 'run' or 'not-run: <reason>'

    @property
    def id(self) -> str:
        return f"{self.page}:{self.lang}{self.index}"

    @property
    def skipped(self) -> str | None:
        """The stated reason when the fence is marked not-run, else None."""
        if self.marker.startswith("not-run"):
            return self.marker.partition(":")[2].strip()
        return None


def fences(lang: str) -> list[Fence]:
    found = []
    for path in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]:
        n = 0
        for m in FENCE.finditer(path.read_text(encoding="utf-8")):
            if m.group("lang") == lang:
                n += 1
                found.append(Fence(path.name, n, lang, m.group("body"), (m.group("marker") or "").strip()))
    return found


def commands(body: str) -> list[str]:
    """The shell lines of a fence, continuation lines joined, blank and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def cli_argv(line: str) -> list[str] | None:
    """The arguments after the program of a command-line example (``python -m sdsgsm`` or the ``sdsgsm``
    console script), or None for any other command and for ``sdsgsm app`` (a server that does not end)."""
    argv = shlex.split(line, comments=True)
    if argv[:3] == ["python", "-m", "sdsgsm"]:
        argv = argv[3:]
    elif argv[:1] == ["sdsgsm"]:
        argv = argv[1:]
    else:
        return None
    return None if argv[:1] == ["app"] else argv


def cli_fences() -> list[Fence]:
    return [f for f in fences("bash") if any(cli_argv(c) is not None for c in commands(f.body))]


# ----------------------------------------------------------------------------- the markers themselves
def test_every_marker_is_known_and_every_exclusion_says_why():
    markers = [f for lang in ("python", "bash") for f in fences(lang) if f.marker]
    for f in markers:
        assert f.marker == "run" or f.marker.startswith("not-run:"), f"{f.id}: unknown marker {f.marker!r}"
        if f.skipped is not None:
            assert len(f.skipped) > 10, f"{f.id}: a not-run marker must say why"
    assert fences("python") and cli_fences(), "the docs have no examples to run"


def test_cli_fences_hold_only_cli_commands_unless_excluded():
    """A fence that mixes ``python -m sdsgsm`` with other commands cannot be run safely: mark it not-run."""
    for f in cli_fences():
        if f.skipped is None:
            others = [c for c in commands(f.body) if cli_argv(c) is None]
            assert not others, f"{f.id}: mixes other commands with {CLI}: {others}"


# ----------------------------------------------------------------------------- the strict build
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason=f"{module} is not installed, so the documentation site cannot be built")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f",
                           str(ROOT / "mkdocs.yml"), "-d", str(out)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return out


def page_text(site: Path, name: str) -> str:
    return html.unescape((site / name / "index.html").read_text(encoding="utf-8"))


def test_site_builds_with_every_page_of_the_nav(site):
    for path in sorted(DOCS.glob("*.md")):
        name = "." if path.stem == "index" else path.stem
        assert (site / name / "index.html").is_file(), f"{path.name} was not built"
    assert (site / "img" / "lab_figure.png").is_file()
    assert not list(site.rglob("hooks.py")), "the build hook must not be published"


def test_generated_pages_hold_every_parameter_command_and_method(site):
    from sdsgsm import params
    from sdsgsm.attacks import METHODS
    from sdsgsm.cli import build_parser

    text = page_text(site, "parameters")
    tables = [v for k, v in vars(params).items() if k.endswith("_PARAMS") and isinstance(v, dict)]
    assert len(tables) >= 5, "the spec's tables were not found"
    for table in tables:  # every spec table of sdsgsm/params.py, found by name, never listed here
        for p in table.values():
            assert p.flag in text and p.label in text, f"{p.name} missing from the parameters page"
    for preset in params.PRESETS:
        assert f"{preset}" in text

    cli = page_text(site, "cli")
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:
        assert f"usage: {CLI} {name}" in cli, f"sub-command {name} missing from the CLI page"
    for p in params.PARAMS.values():
        assert p.flag in cli

    api = page_text(site, "api")
    for key, method in METHODS.items():
        assert key in api and method.label in api, f"method {key} missing from the API page"
    assert "sdsgsm.budget.budget_map" in api  # mkdocstrings rendered the modules' members


# ----------------------------------------------------------------------------- the examples
@pytest.mark.parametrize("fence", fences("python"), ids=lambda f: f.id)
def test_python_example_runs(fence: Fence, tmp_path, monkeypatch):
    if fence.skipped is not None:
        pytest.skip(fence.skipped)
    monkeypatch.chdir(tmp_path)
    exec(compile(fence.body, fence.id, "exec"), {"__name__": "__docs__"})  # noqa: S102 - our own docs


@pytest.mark.parametrize("fence", cli_fences(), ids=lambda f: f.id)
def test_cli_example_runs(fence: Fence, tmp_path, monkeypatch, capsys):
    """Each command through the command line's entry point, ``sdsgsm.cli.main`` (what ``python -m sdsgsm``
    calls), in this process: starting a new interpreter per example would double the time."""
    if fence.skipped is not None:
        pytest.skip(fence.skipped)
    from sdsgsm.cli import main

    monkeypatch.chdir(tmp_path)
    for line in commands(fence.body):
        argv = cli_argv(line)
        assert argv is not None, line
        status = main(argv)
        assert status == 0, f"{fence.id}: `{line}` exited {status}:\n{capsys.readouterr().err[-3000:]}"
        out = tmp_path / argv[argv.index("--out") + 1]
        assert out.is_dir() and any(out.iterdir()), f"{fence.id}: `{line}` wrote nothing to {out}"
