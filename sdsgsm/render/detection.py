"""The detection figure: ROC curves of the feature-squeezing detector (Xu, Evans & Qi, NDSS 2018).

A pure matplotlib builder (no pyplot, no global state), run under the print rcParams by
:func:`sdsgsm.render.figures.build` and written by :func:`sdsgsm.render.figures.figure_files`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from sdsgsm.render.viz import method_colour


def roc_figure(curves: Sequence[Mapping], fpr: float, title: str | None = None) -> Figure:
    """ROC curves, one per attack: x the false-positive rate on clean images, y the true-positive rate on
    successful adversarial images, as the threshold moves; the chance diagonal; a marker at each curve's
    operating point (the threshold set at ``fpr``, drawn as a dotted vertical line) and the AUC in the legend.

    curves: dicts with name ('pgd (non-adaptive)'), fpr and tpr (1-D arrays, from sklearn's roc_curve), auc,
    point (fpr, tpr) at the threshold. An adaptive curve (name ending in '(adaptive)') is drawn dashed, in red."""
    fig = Figure(figsize=(3.4, 3.0), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.75", linewidth=0.6, linestyle=":", label="chance")
    ax.axvline(fpr, color="0.6", linewidth=0.6, linestyle=":")
    for c in curves:
        base = str(c["name"]).split(" ")[0]
        adaptive = "adaptive)" in str(c["name"]) and "non-adaptive" not in str(c["name"])
        colour = "#e61919" if adaptive else method_colour(base)
        ax.plot(c["fpr"], c["tpr"], color=colour, linewidth=1.1, linestyle="--" if adaptive else "-",
                drawstyle="steps-post", label=f"{c['name']}, AUC {c['auc']:.2f}")
        ax.plot(*c["point"], marker="o", markersize=3, color=colour)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false-positive rate (clean images flagged)")
    ax.set_ylabel("detection rate (successful adversarial flagged)")
    ax.grid(linewidth=0.3, alpha=0.5)
    ax.legend(loc="lower right", frameon=False)
    if title:
        ax.set_title(title, wrap=True)
    return fig


__all__ = ["roc_figure"]
