"""The one table formatter (paper §4.2, Tables 1–2), driven by the metric registry.

:func:`metric_table` turns summary rows (``sdsgsm.metrics.summarise`` output, one per method)
into a :class:`Table` of display strings: one column per registry metric with its digits and
display scale, mean ± std where the metric shows a std, '–' for NaN, and the best value per
column (the registry's direction, compared on the printed numbers, ties all best) marked.
The same Table renders as Markdown, as booktabs LaTeX, or as a plain DataFrame for the app.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from sdsgsm.attacks import method_label
from sdsgsm.metrics import Metric, metric_list

DASH = "–"
_TEX = (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
        ("ε", r"$\epsilon$"), ("∞", r"$\infty$"), ("±", r"$\pm$"), ("·", r"$\cdot$"), ("–", "--"),
        ("−", "$-$"))


def tex_escape(text: str) -> str:
    """Plain text -> LaTeX text (special characters, ε, ∞, ±, ·, en dash, minus)."""
    for a, b in _TEX:
        text = text.replace(a, b)
    return text


def _finite(value) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)


def metric_cell(row: Mapping, m: Metric, pm: str = " ± ") -> tuple[str, str]:
    """(printed mean, full cell text) of metric m in one summary row; '–' when the mean is NaN.

    The std is printed (mean{pm}std) when the metric shows one and it does not round to 0.
    """
    mean, std = row.get(m.mean_key, math.nan), row.get(m.std_key, math.nan) if m.std_key else math.nan
    if not _finite(mean):
        return DASH, DASH
    main = f"{mean * m.scale:.{m.digits}f}"
    if not m.show_std or not _finite(std) or std * m.scale < 0.5 * 10 ** -m.digits:
        return main, main
    return main, f"{main}{pm}{std * m.scale:.{m.digits}f}"


def _best(mains: list[str], m: Metric) -> list[bool]:
    """Which printed means are the best of their column (only when at least two are numbers)."""
    values = [float(v) for v in mains if v != DASH]
    if len(values) < 2:
        return [False] * len(mains)
    top = max(values) if m.higher else min(values)
    return [v != DASH and float(v) == top for v in mains]


@dataclass(frozen=True)
class Table:
    """cells: display strings (lead columns, then one per metric; the app shows this DataFrame);
    best: same shape, True where the value is the best of its metric column; tex_headers: the
    header row in TeX."""

    cells: pd.DataFrame
    best: pd.DataFrame
    tex_headers: tuple[str, ...]

    def _marked(self, bold, escape=lambda t: t) -> list[list[str]]:
        return [[bold(escape(t)) if b else escape(t) for t, b in zip(row, flags)]
                for row, flags in zip(self.cells.itertuples(index=False), self.best.itertuples(index=False))]

    def markdown(self) -> str:
        """GitHub Markdown table, best per column in **bold** (no trailing newline)."""
        head = list(self.cells.columns)
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in self._marked(lambda t: f"**{t}**")]
        return "\n".join(lines)

    def latex(self, caption: str, align: str | None = None) -> str:
        """booktabs table environment; cells and caption TeX-escaped, best per column in \\textbf."""
        align = align or "l" + "r" * (len(self.cells.columns) - 1)
        body = [" & ".join(r) + r" \\" for r in self._marked(lambda t: f"\\textbf{{{t}}}", tex_escape)]
        return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(caption)}}}",
                          rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(self.tex_headers) + r" \\",
                          r"\midrule", *body, r"\bottomrule", r"\end{tabular}", r"\end{table}"]) + "\n"


def _metrics(metrics: str | Sequence[Metric]) -> list[Metric]:
    return metric_list(metrics) if isinstance(metrics, str) else list(metrics)


def metric_table(summary: pd.DataFrame | Sequence[Mapping], metrics: str | Sequence[Metric] = "all",
                 lead: pd.DataFrame | None = None, lead_tex: Sequence[str] | None = None) -> Table:
    """Format summary rows (one per method) into a :class:`Table` (§4.2).

    Args: summary a DataFrame or list of ``summarise`` dicts (plus 'method'); metrics 'all',
    'paper', 'radar' or a list of registry entries; lead the leading columns as display strings
    (default: 'method' and 'n' of the summary); lead_tex their TeX headers (default: escaped).
    """
    rows = summary.to_dict("records") if isinstance(summary, pd.DataFrame) else [dict(r) for r in summary]
    ms = _metrics(metrics)
    if lead is None:
        lead = pd.DataFrame({"Method": [method_label(str(r.get("method", ""))) for r in rows],
                             "n": [str(r.get("n", "")) for r in rows]})
    cells, best = lead.reset_index(drop=True).astype(str), pd.DataFrame(False, index=range(len(rows)),
                                                                        columns=lead.columns)
    for m in ms:
        pairs = [metric_cell(r, m) for r in rows]
        cells[m.header] = [t for _, t in pairs]
        best[m.header] = _best([p for p, _ in pairs], m)
    tex = tuple(lead_tex or [tex_escape(str(c)) for c in lead.columns]) + tuple(m.tex_header for m in ms)
    return Table(cells, best, tex)


def table_frame(summary: pd.DataFrame | Sequence[Mapping], metrics: str | Sequence[Metric] = "all") -> pd.DataFrame:
    """The app's table: display strings of every (or the chosen) registry metric, lead method and n."""
    return metric_table(summary, metrics).cells


def metric_notes(metrics: str | Sequence[Metric] = "paper") -> str:
    """Caption text: each metric's definition (including which time is shown) and the bold rule."""
    ms = _metrics(metrics)
    notes = "; ".join(m.note for m in ms if m.note)
    hi = ", ".join(m.label for m in ms if m.higher)
    lo = ", ".join(m.label for m in ms if not m.higher)
    return f"{notes}. Best per column in bold (highest {hi}; lowest {lo})."
