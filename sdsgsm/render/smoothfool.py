"""SmoothFool's smoothing-factor curves as a print figure (Dabouei et al., SmoothFool, WACV 2020, Fig. 6).

:func:`sigma_curves_figure` draws three panels against σ_g on a log axis — fooling rate (%), mean L2 and Ω_n
(×1e3, SmoothFool eq. 4 normalised; L2 on a log axis when all are positive) — with one line per kernel g
(Gaussian σ_g; uniform and linear of side k = 5σ_g). Headers and scales come from the metric registry
(:data:`sdsgsm.metrics.METRICS`); the Gaussian
line takes SmoothFool's method colour and the two others fixed contrasting colours (there is no kernel
registry of colours). Render it with :func:`sdsgsm.render.figures.build` and write it with
:func:`sdsgsm.render.figures.figure_files`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from sdsgsm.attacks import method_label
from sdsgsm.metrics import METRICS
from sdsgsm.render.viz import method_colour

# kernel -> (colour, marker, line style); the Gaussian is SmoothFool's own colour
_STYLE = {"uniform": ("#ff7f0e", "s", "--"), "linear": ("#2ca02c", "^", "-.")}
PANELS = (("fooling_rate", "asr"), ("l2", "l2"), ("roughness_n", "roughness_n"))  # table column, registry key


def kernel_style(kernel: str) -> tuple[str, str, str]:
    """(colour, marker, line style) of one kernel's line."""
    if kernel == "gaussian":
        return method_colour("smoothfool"), "o", "-"
    return _STYLE.get(kernel, ("#7f7f7f", "D", ":"))


def kernel_label(kernel: str) -> str:
    """'Gaussian (σ_g)', 'uniform (k = 5σ_g)', 'linear (k = 5σ_g)'."""
    return "Gaussian (σ_g)" if kernel == "gaussian" else f"{kernel} (k = 5σ_g)"


def _header(key: str) -> str:
    m = METRICS[key]
    head = "Fooling rate (%)" if key == "asr" else m.header  # the paper's name for the ASR of a min-norm attack
    return f"{head} {'↑' if m.higher else '↓'}"


def sigma_curves_figure(table: pd.DataFrame, info: Mapping | None = None) -> Figure:
    """Three panels (fooling rate, L2, Ω_n) against σ_g, log x axis, one line per kernel.

    table: the tidy table of :func:`sdsgsm.experiments.sigma_curves.run_sigma_curves` (kernel, sigma_g, k,
    fooling_rate, l2, roughness_n, n, seconds). info: optional {'model', 'n'} for the footnote.
    """
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    fig = Figure(figsize=(7.0, 2.35), layout="constrained")
    axs = fig.subplots(1, len(PANELS))
    sigmas = np.sort(df["sigma_g"].unique()) if len(df) else np.array([])
    for ax, (col, key) in zip(axs, PANELS):
        for k, (kernel, part) in enumerate(df.groupby("kernel", sort=False)):
            colour, marker, style = kernel_style(kernel)
            part = part.sort_values("sigma_g")
            ax.plot(part["sigma_g"], part[col], marker=marker, markersize=max(2.4, 4.2 - 0.7 * k),
                    markerfacecolor="none", markeredgewidth=0.9, linestyle=style,
                    linewidth=max(0.8, 1.8 - 0.4 * k), color=colour, label=kernel_label(kernel), zorder=2 + k)
        ax.set_xscale("log")
        if len(sigmas):
            ax.xaxis.set_major_locator(FixedLocator(sigmas))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{s:g}" for s in sigmas])
        if col == "fooling_rate":
            ax.set_ylim(-3, 103)
            ax.set_yticks([0, 25, 50, 75, 100])
        elif col == "l2" and len(df) and (df["l2"] > 0).all():  # L2 spans decades across kernels: log axis
            ax.set_yscale("log")
        ax.set_title(_header(key) + (" (log)" if ax.get_yscale() == "log" else ""))
        ax.set_xlabel("σ_g (log scale)")
        ax.grid(linewidth=0.3, alpha=0.5)
    handles, labels = axs[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=max(1, len(labels)), frameon=False)
    info = dict(info or {})
    note = [method_label("smoothfool")]
    if info.get("model"):
        note.append(str(info["model"]))
    if len(df):
        note.append(f"n = {int(df['n'].max())} evaluated images per point")
    note.append("uniform, linear: side k = 5σ_g · L2 on the [0, 1] pixel scale · Ω_n over the fooled images")
    fig.supxlabel(" · ".join(note), fontsize=6, color="0.3")
    return fig


__all__ = ["PANELS", "kernel_label", "kernel_style", "sigma_curves_figure"]
