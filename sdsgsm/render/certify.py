"""Figure of randomised smoothing's certificates (Cohen, Rosenfeld & Kolter, ICML 2019) on the lab's digits.

Certified accuracy against the L2 radius r (a solid step line per noise σ, as in the paper's figures) with, beside
it, the smoothed classifier's empirical accuracy under a PGD-L2 attack of radius r (dashed, open markers): the
certificate is a lower bound, so the dashed line lies on or above the solid one. Built under the print rcParams
by :func:`sdsgsm.render.figures.build`; written by :func:`sdsgsm.render.figures.figure_files`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

SIGMA_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def certified_steps(digits: pd.DataFrame, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The exact certified-accuracy curve of one σ from its per-digit certificates (columns radius, correct):
    corners r (0, each certified radius up to r_max, r_max) and, for a ``steps-post`` plot, the certified accuracy
    just after each corner — the share of digits correct with radius R > r (Cohen et al. 2019, §4) — so the curve
    falls right after each digit's radius."""
    radii = np.sort(digits.loc[digits["correct"].astype(bool), "radius"].to_numpy())
    n = len(digits)
    r = np.unique(np.concatenate([[0.0], radii[radii <= r_max], [r_max]]))
    acc = np.array([(radii > v).sum() / n for v in r])
    return r, acc


def certify_figure(curve: pd.DataFrame, digits: pd.DataFrame | None = None) -> Figure:
    """curve: rows with sigma, radius, certified (0..1), empirical (0..1); digits: per-digit certificates (sigma,
    radius, correct) — both from :func:`sdsgsm.experiments.lab.certify_lab`. One colour per σ: solid = certified
    accuracy (Cohen et al. 2019; exact from ``digits`` when given, else at the curve's radii), dashed = empirical
    accuracy of the smoothed classifier under PGD-L2 at the curve's radii."""
    fig = Figure(figsize=(3.6, 2.6), layout="constrained")
    ax = fig.subplots()
    r_max = float(curve["radius"].max())
    for k, (sigma, rows) in enumerate(curve.groupby("sigma", sort=False)):
        rows = rows.sort_values("radius")
        colour = SIGMA_COLOURS[k % len(SIGMA_COLOURS)]
        if digits is not None and (digits["sigma"] == sigma).any():
            r, acc = certified_steps(digits[digits["sigma"] == sigma], r_max)
            ax.plot(r, acc * 100, drawstyle="steps-post", color=colour, linewidth=1.3,
                    label=f"σ = {sigma:g} certified")
        else:
            ax.plot(rows["radius"], rows["certified"] * 100, color=colour, linewidth=1.3,
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


__all__ = ["SIGMA_COLOURS", "certified_steps", "certify_figure"]
