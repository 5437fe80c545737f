"""Patch figures: top-1 accuracy by placement and side (pasted and universal patches), and the universal
patch's training curve (target hit against training iterations).

Pure builders returning matplotlib ``Figure`` objects (no pyplot), rendered by
:func:`sdsgsm.render.figures.figure_files` under the print rcParams (:func:`sdsgsm.render.figures.build`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PLACEMENT_LABELS = {"omega-star": "Ω* (most\nsensitive)", "least-sensitive": "least\nsensitive",
                    "centre": "centre", "random": "random\n(mean of seeds)"}
PLACEMENT_NAMES = {"omega-star": "Ω*", "least-sensitive": "least sensitive", "centre": "centre",
                   "random": "random (mean of seeds)"}
KIND_NAMES = {"paste": "pasted crop of another class", "universal": "universal patch (toaster)"}  # tables, sentences
_GREYS = ("#9ecae1", "#4292c6", "#08519c", "#08306b")


def placement_figure(summary: pd.DataFrame, clean_accuracy: float) -> Figure:
    """One panel per patch kind: grouped bars of top-1 accuracy (%) per placement, one bar per patch side,
    the clean accuracy as a dashed line; the share predicted as the patch's class (the universal patch's target,
    a pasted crop's source class) as a dot on each bar.

    summary: rows kind, size, placement, accuracy, target_hit (%), as
    :func:`sdsgsm.experiments.patch_eval.run_patch_eval` returns."""
    kinds = list(dict.fromkeys(summary["kind"]))
    fig = Figure(figsize=(3.4 * max(1, len(kinds)), 2.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(kinds)), sharey=True))
    for ax, kind in zip(axes, kinds):
        part = summary[summary["kind"] == kind]
        places = list(dict.fromkeys(part["placement"]))
        sizes = list(dict.fromkeys(part["size"]))
        width = 0.8 / max(1, len(sizes))
        for j, size in enumerate(sizes):
            rows = part[part["size"] == size].set_index("placement").reindex(places)
            xs = np.arange(len(places)) - 0.4 + width * (j + 0.5)
            ax.bar(xs, rows["accuracy"], width=width * 0.92, color=_GREYS[j % len(_GREYS)], label=f"{size} px")
            ax.plot(xs, rows["target_hit"], linestyle="none", marker="o", markersize=3.2, color="#d62728",
                    label="prediction = the patch's class" if j == 0 else None)
        ax.axhline(clean_accuracy, color="0.3", linestyle="--", linewidth=0.8, label="no patch")
        ax.set_xticks(np.arange(len(places)), [PLACEMENT_LABELS.get(p, p) for p in places])
        ax.set_ylim(0, 100)
        name = KIND_NAMES.get(kind, kind)
        ax.set_title(name[:1].upper() + name[1:])
        ax.grid(axis="y", linewidth=0.3, alpha=0.5)
    axes[0].set_ylabel("top-1 accuracy under the patch (%)")
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return fig


def curve_figure(curves: dict[int, list[dict]]) -> Figure:
    """Target-hit rate (%) of the universal patch on held-out images against training iterations, one line
    per patch side (solid: at Ω*; dashed: at random positions). curves: {side: [{iteration, hit_omega_star,
    hit_random, …}, …]} as recorded by ``train-patch``."""
    fig = Figure(figsize=(3.4, 2.5), layout="constrained")
    ax = fig.subplots()
    for j, (size, points) in enumerate(sorted(curves.items())):
        if not points:
            continue
        it = [p["iteration"] for p in points]
        colour, marker = _GREYS[j % len(_GREYS)], "os^D"[j % 4]
        ax.plot(it, [p["hit_omega_star"] for p in points], color=colour, linewidth=1.3, marker=marker, markersize=2.6,
                label=f"{size} px, at Ω*")
        if "hit_random" in points[0]:
            ax.plot(it, [p["hit_random"] for p in points], color=colour, linewidth=0.9, linestyle="--",
                    label=f"{size} px, random")
    ax.set_ylim(0, 100)
    ax.set_xlabel("training iterations (passes over the training copies)")
    ax.set_ylabel("target hit, held-out images (%)")
    ax.grid(linewidth=0.3, alpha=0.5)
    ax.legend(loc="best", frameon=False, fontsize="small")
    return fig


__all__ = ["KIND_NAMES", "PLACEMENT_LABELS", "PLACEMENT_NAMES", "curve_figure", "placement_figure"]
