"""Are two runs' CSVs the same, apart from the wall-clock columns? (refactors must not change a number)

    python bench/same_outputs.py DIR_A DIR_B [--files results.csv,per_sample.csv]

Reads each CSV from both folders, drops the timing columns (every column whose name contains
``time_s``: they differ from run to run), writes the rest back as CSV text and compares the bytes. Prints
one line per file (rows, columns compared, identical or the first differing column) and exits 1 when any
file differs. Typical use, before and after a change:

    python -m sdsgsm benchmark --data gallery --preset table1 --limit 6 --threads 1 --out /tmp/before
    (change the code)
    python -m sdsgsm benchmark --data gallery --preset table1 --limit 6 --threads 1 --out /tmp/after
    python bench/same_outputs.py /tmp/before /tmp/after
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def compare(a: Path, b: Path) -> tuple[bool, str]:
    """(same, one line) for one CSV in two folders, timing columns left out."""
    left, right = pd.read_csv(a, dtype=str), pd.read_csv(b, dtype=str)
    if list(left.columns) != list(right.columns):
        return False, f"columns differ: {sorted(set(left.columns) ^ set(right.columns))}"
    keep = [c for c in left.columns if "time_s" not in c]
    if left[keep].to_csv(index=False) == right[keep].to_csv(index=False):
        timing = len(left.columns) - len(keep)
        return True, f"{len(left)} rows × {len(keep)} columns identical ({timing} timing left out)"
    if len(left) != len(right):
        return False, f"{len(left)} rows against {len(right)}"
    first = next(c for c in keep if not left[c].equals(right[c]))
    return False, f"column {first!r} differs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--files", default="results.csv,per_sample.csv")
    args = parser.parse_args()
    ok = True
    for name in args.files.split(","):
        same, line = compare(args.a / name, args.b / name)
        ok &= same
        print(f"{name}: {line}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
