"""One vocabulary for users and readers: no private references, display names for methods,
one scale per metric, class names for images."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# user-facing sources: the package, the pages, Home, the README (tests keep their own words)
_SOURCES = sorted([*ROOT.joinpath("sdsgsm").rglob("*.py"), *ROOT.joinpath("pages").glob("*.py"),
                   ROOT / "app.py", ROOT / "README.md"])
# private references a user cannot follow: the project's own notes, source files and issue numbers
_PRIVATE = [re.compile(p) for p in (
    r"(?i)\bseed's\b", r"(?i)\bthe seed\b(?!\s*(=|\d|value))", r"(?i)fgsm-patch seed", r"(?i)\bsurvey\b",
    r"\bDESIGN\b", r"(?i)\bissue [12]\b", r"Majlesi", r"\.\./shared", r"\bseeds/",
)]


def test_no_private_references_in_user_facing_text():
    found = []
    for path in _SOURCES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern in _PRIVATE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "private references:\n" + "\n".join(found)
