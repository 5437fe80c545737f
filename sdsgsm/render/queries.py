"""The query-budget figure: black-box ASR against the number of model queries (log x), white-box ASR beside.

A pure builder returning a matplotlib ``Figure`` (no pyplot), rendered and captioned by
:func:`sdsgsm.render.figures.figure_files` under the print rcParams (:func:`sdsgsm.render.figures.build`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from sdsgsm.attacks import method_label
from sdsgsm.render.viz import method_colour

_DASHES = ("--", ":", "-.", (0, (5, 1, 1, 1)))


def queries_figure(summary: pd.DataFrame, per_sample: pd.DataFrame | None = None) -> Figure:
    """ASR (%) against the query budget, log x: one line per black-box method through the budget grid (markers),
    and with ``per_sample`` its exact step curve (share of images fooled within q queries) underneath; one
    horizontal line per white-box method at its ASR, labelled with its gradient steps.

    summary: rows with method, kind ('black-box' | 'white-box'), budget, gradient_steps, asr (0..1), as
    :func:`sdsgsm.experiments.queries.run_queries` returns; per_sample: its per-image rows (success, queries).
    """
    fig = Figure(figsize=(3.4, 2.5), layout="constrained")
    ax = fig.subplots()
    black = summary[summary["kind"] == "black-box"]
    budgets = np.sort(black["budget"].unique().astype(float)) if len(black) else np.array([1.0, 10.0])
    lo, hi = 1.0, budgets[-1] * 1.3  # from the first query: the clean image every attack asks first
    for method, rows in black.groupby("method", sort=False):
        colour = method_colour(method)
        if per_sample is not None and len(per_sample):
            part = per_sample[per_sample["method"] == method]
            wins = np.sort(part.loc[part["success"].astype(bool), "queries"].to_numpy(float))
            if len(part) and len(wins):
                steps_q = np.concatenate([[lo], wins, [budgets[-1]]])
                share = np.concatenate([[0.0], np.arange(1, len(wins) + 1) / len(part), [len(wins) / len(part)]])
                ax.step(steps_q, 100 * share, where="post", color=colour, linewidth=0.6, alpha=0.45)
        ax.plot(rows["budget"], 100 * rows["asr"], marker="o", markersize=2.6, linewidth=1.1, color=colour,
                label=method_label(method))
    white = summary[summary["kind"] == "white-box"]
    for k, (_, r) in enumerate(white.iterrows()):
        steps = int(r["gradient_steps"])
        ax.axhline(100 * r["asr"], color=method_colour(r["method"]), linestyle=_DASHES[k % len(_DASHES)],
                   linewidth=0.9, label=f"{method_label(r['method'])} (white-box, {steps} gradient "
                                        f"step{'s' if steps != 1 else ''})")
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = sorted({1, *(int(b) for b in budgets)})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 101)
    ax.set_xlabel("query budget per image (model queries, log scale)")
    ax.set_ylabel("ASR, clean-correct images (%)")
    ax.grid(linewidth=0.3, alpha=0.5, which="both")
    ax.legend(loc="best", frameon=False)
    return fig


__all__ = ["queries_figure"]
