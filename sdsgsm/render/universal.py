"""The universal-perturbation figure: each v shown as an image (auto-contrast) per setting, and the held-out
fooling rate against ‖v‖2 and against Ω_n (matplotlib, pure; :func:`sdsgsm.render.figures.figure_files` writes it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

__all__ = ["auto_contrast", "universal_figure"]


def auto_contrast(v: torch.Tensor | np.ndarray) -> np.ndarray:
    """v (3, H, W) signed -> (H, W, 3) in [0, 1]: 0.5 + v / (2·max|v|) (zero is mid-grey; all-zero v stays grey)."""
    a = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float32)
    m = float(np.abs(a).max())
    return np.clip(0.5 + a / (2 * m if m > 0 else 1.0), 0.0, 1.0).transpose(1, 2, 0)


def universal_figure(shown: Sequence[tuple[str, torch.Tensor]], means: pd.DataFrame) -> Figure:
    """Top row: one panel per (label, v) (auto-contrast, ‖v‖∞ below). Bottom: held-out fooling rate (%)
    against ‖v‖2 and against Ω_n ×1e3, one point per setting (``means``: columns label, test_fooling, l2,
    roughness_n, linf_255)."""
    n = max(1, len(shown))
    fig = Figure(figsize=(max(6.0, 1.5 * n), 4.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.1])
    axs = top.subplots(1, n, squeeze=False)[0]
    for ax, (label, v) in zip(axs, shown):
        ax.imshow(auto_contrast(v), interpolation="nearest")
        ax.set_title(label)
        ax.set_xlabel(f"‖v‖∞ = {float(np.abs(np.asarray(v)).max()) * 255:.1f}/255")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    top.suptitle("Universal perturbations trained on fold A (auto-contrast: grey = 0)")
    ax1, ax2 = bottom.subplots(1, 2)
    markers = "osD^vP*X"
    for ax, col, xlabel in ((ax1, "l2", "‖v‖2"), (ax2, "roughness_n", "Ω_n ×1e3 (log scale; lower = smoother)")):
        xs = means[col].to_numpy(float) * (1e3 if col == "roughness_n" else 1.0)
        ys = means["test_fooling"].to_numpy(float)
        for k, (xv, yv, lab) in enumerate(zip(xs, ys, means["label"])):
            ax.plot([xv], [yv], markers[k % len(markers)], color=f"C{k % 10}", label=lab, markersize=5)
        if col == "roughness_n" and len(xs) and (xs > 0).all():
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out fooling (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    handles, labels = ax1.get_legend_handles_labels()
    bottom.legend(handles, labels, loc="outside lower center", ncol=max(1, len(labels)), frameon=False)
    bottom.suptitle("Held-out fooling rate (mean of the two folds) against size and roughness of v")
    return fig
