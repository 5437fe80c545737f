"""Figure of randomised smoothing's certificates (Cohen, Rosenfeld & Kolter, ICML 2019) on the lab's digits.

Certified accuracy against the L2 radius r (a solid step line per noise σ, as in the paper's figures) with, beside
it, the smoothed classifier's empirical accuracy under a PGD-L2 attack of radius r (dashed, open markers): the
certificate is a lower bound, so the dashed line lies on or above the solid one. Built under the print rcParams
by :func:`sdsgsm.render.figures.build`; written by :func:`sdsgsm.render.figures.figure_files`.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

SIGMA_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def certify_figure(curve: pd.DataFrame) -> Figure:
    """curve: rows with sigma, radius, certified (0..1), empirical (0..1) — from
    :func:`sdsgsm.experiments.lab.certify_lab`. One colour per σ: solid = certified accuracy (Cohen et al. 2019),
    dashed = empirical accuracy of the smoothed classifier under PGD-L2 at the same radius."""
    fig = Figure(figsize=(3.6, 2.6), layout="constrained")
    ax = fig.subplots()
    for k, (sigma, rows) in enumerate(curve.groupby("sigma", sort=False)):
        rows = rows.sort_values("radius")
        colour = SIGMA_COLOURS[k % len(SIGMA_COLOURS)]
        ax.plot(rows["radius"], rows["certified"] * 100, drawstyle="steps-post", color=colour, linewidth=1.3,
                label=f"σ = {sigma:g} certified")
        ax.plot(rows["radius"], rows["empirical"] * 100, linestyle="--", marker="o", markersize=3,
                markerfacecolor="white", color=colour, linewidth=0.9, label=f"σ = {sigma:g} PGD-L2 (empirical)")
    ax.set_xlabel("L2 radius r (pixels in [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 101)
    ax.grid(linewidth=0.3, alpha=0.5)
    ax.legend(fontsize="x-small", frameon=False, loc="upper right")
    ax.set_title("certified (solid) ≤ empirical (dashed)", fontsize="small")
    return fig


__all__ = ["SIGMA_COLOURS", "certify_figure"]
