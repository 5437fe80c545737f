"""Print figures (paper Figs. 3–6 and parameter sweeps) with matplotlib: PDF, PNG, SVG and a JSON caption.

Why matplotlib: it renders offline with no browser engine (Plotly's static export needs
Chrome/Kaleido), writes vector PDF with embedded TrueType fonts (``pdf.fonttype`` 42) and SVG
with text kept as text, and PNG with its dpi stored. The app's interactive charts stay in Plotly;
both use one colour per method (:func:`sdsgsm.render.viz.method_colour`).

Builders are pure functions returning a matplotlib ``Figure`` (no pyplot, no global figure
state): :func:`grid_figure` (Fig. 5/6: rows = images, column groups = methods),
:func:`radar_figure` (Fig. 3), :func:`bars_figure` (Fig. 4), :func:`sweep_figure` (a metric
against one swept parameter, or a heat map over two), :func:`matrix_figure` (annotated heat maps:
defence grid, transfer matrix). :func:`figure_files` renders a figure to
``{name: bytes}`` (``<stem>.pdf/.png/.svg/.json``); :func:`sdsgsm.experiments.report.write_files` writes them.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from sdsgsm.attacks import method_label
from sdsgsm.metrics import METRICS, metric_list
from sdsgsm.outputs import package_versions
from sdsgsm.params import FAIR_EPS_MAX, PARAMS
from sdsgsm.render.viz import MODEL_COLOURS, RED, YELLOW, method_colour, method_colours, radar_scores

DPI = 300
FORMATS = ("pdf", "png", "svg")
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "svg.hashsalt": "sdsgsm",
      "font.family": "DejaVu Sans", "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7,
      "xtick.labelsize": 6, "ytick.labelsize": 6, "legend.fontsize": 6, "axes.spines.top": False,
      "axes.spines.right": False}
_RENDER = threading.Lock()  # matplotlib's rcParams are process-wide: one render at a time

# grid columns: (key, header); 'original' and 'saliency' depend on the image only (one per row)
COLUMNS = {"original": "Original + R (red)", "saliency": "Saliency Δ + R", "adversarial": "Adversarial",
           "perturbation": "Perturbation ×5", "budget": "Budget map E"}
SHARED_COLUMNS = ("original", "saliency")
DEFAULT_COLUMNS = ("original", "saliency", "adversarial", "perturbation")
SWEEP_METRICS = ("acc_adv", "asr", "l2", "linf", "ssim", "time_s")


def _rgb(c) -> tuple[float, float, float]:
    return tuple(v / 255 for v in c)


# ----------------------------------------------------------------------------- Fig. 5/6 grid
def parse_columns(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'original,adversarial' or a list -> column keys in :data:`COLUMNS` order; ValueError if unknown."""
    if text is None:
        return DEFAULT_COLUMNS
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [n for n in names if n not in COLUMNS]
    if bad or not names:
        raise ValueError(f"Unknown grid column {bad[0] if bad else ''!r}; choose from {', '.join(COLUMNS)}.")
    return tuple(c for c in COLUMNS if c in names)


def grid_layout(n_images: int, n_methods: int, columns: Sequence[str]) -> tuple[int, int, int]:
    """(shared columns, columns per method, image panels) of a grid: panels = rows × (shared + methods × per)."""
    shared = sum(c in SHARED_COLUMNS for c in columns)
    per = len(columns) - shared
    return shared, per, n_images * (shared + n_methods * per)


def _short(name: str, n: int = 22) -> str:
    return name if len(name) <= n else name[:n - 1] + "…"


def _panel(fig, box, img, title: str | None = None, below: str | None = None, colour="black"):
    ax = fig.add_axes(box)
    ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(True), s.set_linewidth(0.4), s.set_color("0.6")
    if title:
        ax.set_title(title, fontsize=6.5, pad=2)
    if below:
        ax.text(0.5, -0.03, below, transform=ax.transAxes, ha="center", va="top", fontsize=5.5, color=colour)
    return ax


def _boxes(ax, boxes, colour) -> None:
    for top, left, h, w in np.asarray(boxes, dtype=int).reshape(-1, 4).tolist():
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor=_rgb(colour), linewidth=0.9))


def salient_tiles(perturbation_img: np.ndarray, boxes, ratio: float = 1.25) -> np.ndarray:
    """The high-perturbation tiles worth a yellow box: those whose mean |δ| exceeds ``ratio`` × the
    image's mean |δ|. A zero perturbation or a (nearly) uniform one, such as FGSM's ε·sign(∇) with a
    few clipped pixels, has no tile that stands out and gets no box.

    perturbation_img: (H, W, 3) amplified perturbation around grey 0.5 (:func:`sdsgsm.metrics.amplify`);
    boxes: (k, 4) (top, left, h, w). Returns the kept boxes (j, 4)."""
    boxes = np.asarray(boxes, dtype=int).reshape(-1, 4)
    mag = np.abs(np.asarray(perturbation_img, dtype=float) - 0.5).mean(-1)
    mean = float(mag.mean())
    if mean <= 0 or not len(boxes):
        return boxes[:0]
    keep = [mag[t:t + h, c:c + w].mean() > ratio * mean for t, c, h, w in boxes.tolist()]
    return boxes[np.asarray(keep, dtype=bool)]


def grid_figure(rows: Sequence[Sequence[Mapping]], names: Sequence[str], methods: Sequence[str],
                columns: Sequence[str] = DEFAULT_COLUMNS, panel_in: float = 1.15) -> Figure:
    """Paper Fig. 5/6 as a grid: one row per image, one column group per method.

    Args: rows[i][j] the :func:`sdsgsm.experiments.report.image_record` of image i attacked by methods[j];
    names the row labels; columns keys of :data:`COLUMNS` — 'original' (red region R, §3.3) and
    'saliency' (Δ of eq. 2 normalised per image, R in red) appear once per row, 'adversarial'
    (predicted label and confidence below), 'perturbation' (5× around grey, yellow boxes on the
    high-perturbation tiles that stand out, :func:`salient_tiles`) and 'budget' (E of eq. 5, ×1/255) once per method.
    Returns the Figure; panel count = :func:`grid_layout`'s third value.
    """
    shared = [c for c in columns if c in SHARED_COLUMNS]
    per = [c for c in columns if c not in SHARED_COLUMNS]
    gap, group_gap, row_gap = 0.05, 0.22 if per and shared else 0.0, 0.2
    left, top, bottom = 1.05, 0.5, 0.8
    n_cols = len(shared) + len(methods) * len(per)
    width = left + n_cols * panel_in + (n_cols - 1) * gap + len(methods) * (0.18 if per else 0) + group_gap + 0.1
    height = top + len(rows) * (panel_in + row_gap) + bottom
    fig = Figure(figsize=(width, height))
    box = lambda x_in, y_in: [x_in / width, y_in / height, panel_in / width, panel_in / height]  # noqa: E731
    budget_top = max((float(r["budget"].max()) for row in rows for r in row), default=0.0) * 255
    heat = budget_im = None
    for i, (row, name) in enumerate(zip(rows, names)):
        y_in = height - top - (i + 1) * panel_in - i * row_gap
        first = row[0]
        clean = first["summary"]["clean"]
        label = f"{_short(name)}\nclean: {_short(clean['name'], 18)}\n({clean['prob']:.0%})"
        fig.text((left - 0.08) / width, (y_in + panel_in / 2) / height, label, ha="right", va="center", fontsize=6)
        x_in = left
        for c in shared:
            ax = _panel(fig, box(x_in, y_in), first["original"], COLUMNS[c] if i == 0 else None)
            if c == "saliency":
                sal = first["saliency_map"]
                span = float(np.nanmax(sal) - np.nanmin(sal)) or 1.0
                heat = ax.imshow((sal - np.nanmin(sal)) / span, cmap="inferno", alpha=0.6, vmin=0, vmax=1,
                                 interpolation="nearest")
            _boxes(ax, first["region_boxes"], RED)
            x_in += panel_in + gap
        x_in += group_gap
        for j, method in enumerate(methods):
            rec, x0 = row[j], x_in
            for c in per:
                title = COLUMNS[c] if i == 0 else None
                if c == "adversarial":
                    adv, s = rec["summary"]["adversarial"], rec["summary"]
                    ok = s["metrics"]["success"]
                    _panel(fig, box(x_in, y_in), rec["adversarial"], title,
                           f"{'→ ' if ok else '= '}{_short(adv['name'], 20)} ({adv['prob']:.0%})",
                           "#c01818" if ok else "0.25")
                elif c == "perturbation":
                    m = rec["summary"]["metrics"]
                    ax = _panel(fig, box(x_in, y_in), rec["perturbation_x5"], title,
                                f"L2 {m['l2']:.2f} · SSIM {m['ssim']:.3f}")
                    _boxes(ax, salient_tiles(rec["perturbation_x5"], rec["tile_boxes"]), YELLOW)
                else:
                    ax = _panel(fig, box(x_in, y_in), np.zeros((*rec["budget"].shape, 3)), title)
                    budget_im = ax.imshow(rec["budget"] * 255, cmap="Blues", vmin=0, vmax=max(budget_top, 1e-6),
                                          interpolation="nearest")
                x_in += panel_in + gap
            if i == 0:  # method header over its group, in the method's colour
                mid = (x0 + x_in - gap) / 2
                fig.text(mid / width, (height - 0.12) / height, method_label(method), ha="center", va="top", fontsize=8,
                         fontweight="bold", color=method_colour(method))
                fig.add_artist(Line2D([x0 / width, (x_in - gap) / width], [(height - 0.3) / height] * 2,
                                                       color=method_colour(method), linewidth=2))
            x_in += 0.18 if per else 0
    _grid_colourbars(fig, heat, budget_im, shared, per, left, width, height, panel_in, gap, group_gap)
    return fig


def _grid_colourbars(fig, heat, budget_im, shared, per, left, width, height, panel_in, gap, group_gap) -> None:
    """Horizontal colour bars under the saliency column and under the first budget column."""
    from matplotlib.cm import ScalarMappable

    y = 0.5 / height
    if heat is not None:
        x = left + shared.index("saliency") * (panel_in + gap)
        cax = fig.add_axes([x / width, y, panel_in / width, 0.07 / height])
        fig.colorbar(ScalarMappable(Normalize(0, 1), "inferno"), cax=cax, orientation="horizontal",
                     label="Δ / max Δ (per image)")
    if budget_im is not None:
        x = left + len(shared) * (panel_in + gap) + group_gap + per.index("budget") * (panel_in + gap)
        cax = fig.add_axes([x / width, y, panel_in / width, 0.07 / height])
        fig.colorbar(budget_im, cax=cax, orientation="horizontal", label="E (×1/255)")


# ----------------------------------------------------------------------------- Fig. 3 / Fig. 4
def radar_figure(rows: Sequence[Mapping]) -> Figure:
    """Paper Fig. 3: radar of the registry's radar metrics normalised so the best method scores 1
    (higher ASR/SSIM, lower L2/L∞/total time; :func:`sdsgsm.render.viz.radar_scores`); larger area = better.
    rows: summary rows (results.csv records) with 'method'."""
    metrics = metric_list("radar")
    scores = radar_scores(list(rows))
    angles = np.linspace(0, 2 * np.pi, len(metrics), endpoint=False).tolist()
    fig = Figure(figsize=(3.6, 3.4))
    ax = fig.add_axes([0.12, 0.2, 0.76, 0.7], projection="polar")
    for i, row in enumerate(rows):
        r = [scores[m.mean_key][i] for m in metrics]
        colour = method_colour(row["method"])
        ax.plot(angles + angles[:1], r + r[:1], color=colour, linewidth=1.2, label=method_label(row["method"]))
        ax.fill(angles + angles[:1], r + r[:1], color=colour, alpha=0.15)
    ax.set_xticks(angles, [f"{m.label} {'↑' if m.higher else '↓'}" for m in metrics])
    ax.set_ylim(0, 1.05)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["", "", "", ""])
    ax.tick_params(axis="x", pad=2)
    fig.legend(loc="lower center", ncol=min(4, len(rows)), frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig


def bars_figure(rows: Sequence[Mapping]) -> Figure:
    """Paper Fig. 4: one bar panel per radar metric (registry display scale, ± std where shown),
    one colour per method; total time = scan + attack per sample. rows: summary rows with 'method'."""
    metrics = metric_list("radar")
    names = [r["method"] for r in rows]
    fig = Figure(figsize=(1.55 * len(metrics) + 0.3, 2.3), layout="constrained")
    axes = fig.subplots(1, len(metrics))
    for ax, m in zip(np.atleast_1d(axes), metrics):
        vals = [float(r[m.mean_key]) * m.scale for r in rows]
        err = [float(r.get(m.std_key, math.nan)) * m.scale for r in rows] if m.show_std and m.std_key else None
        ax.bar(range(len(rows)), vals, yerr=err, color=[method_colour(n) for n in names], capsize=1.5,
               error_kw={"linewidth": 0.6})
        ax.set_xticks(range(len(rows)), [method_label(n) for n in names], rotation=45,
                      ha="right")
        ax.set_title(f"{m.header} {'↑' if m.higher else '↓'}")
        ax.grid(axis="y", linewidth=0.3, alpha=0.5)
    return fig


# ----------------------------------------------------------------------------- sweeps
def _shown(name: str, values) -> np.ndarray:
    p = PARAMS[name]
    return np.array([p.shown(None if (isinstance(v, float) and math.isnan(v)) else v) for v in values], float)


def axis_label(name: str) -> str:
    """Short axis label: the spec label without its parenthesis, plus the unit."""
    p = PARAMS[name]
    return p.label.split(" (")[0] + (" (×1/255)" if p.unit else "")


def _sweep_note(name: str, lifted: bool) -> str:
    notes = ["SD methods: ε_strong = ε, ε_weak = ε·(ε_weak/ε_strong of the base)"] if name == "eps" else []
    if lifted:
        notes.append(f"dashed line: {FAIR_EPS_MAX * 255:g}/255, the paper's fair cap; right of it ε_max is lifted")
    return "; ".join(notes)


def default_sweep_metric(points, candidates: Sequence[str] = SWEEP_METRICS) -> str:
    """The first metric of ``candidates`` whose values vary over the sweep's valid points (the chart to
    show first: a flat one, e.g. accuracy under attack at 0 % everywhere, says nothing); the first
    candidate when none varies."""
    df = points if isinstance(points, pd.DataFrame) else pd.DataFrame(list(points))
    ok = df[df["valid"].astype(bool)] if "valid" in df else df
    for key in candidates:
        col = METRICS[key].mean_key
        if col in ok:
            v = ok[col].to_numpy(float)
            v = v[np.isfinite(v)]
            if v.size and np.ptp(v) * METRICS[key].scale >= 10 ** -METRICS[key].digits:
                return key
    return candidates[0]


def sweep_figure(points, axes: Sequence[str], metrics: Sequence[str] = SWEEP_METRICS,
                 metric2d: str | None = None) -> Figure:
    """A metric against one swept parameter (one line per method, one panel per metric), or for two
    parameters one heat map of ``metric2d`` per method (default: :func:`default_sweep_metric`). points:
    sweep.csv rows (a DataFrame). Percentages are drawn on a 0–100 axis; coinciding lines stay
    distinguishable (thinner, dashed, hollow markers on top).

    When a point lifted ε_max above the paper's 8/255 cap (§4.1), the plot marks it: a dashed
    line at 8/255 and 'ε_max lifted' in the title.
    """
    import pandas as pd

    df = points if isinstance(points, pd.DataFrame) else pd.DataFrame(list(points))
    lifted = bool(df.get("lifted", pd.Series([False])).astype(bool).any())
    if len(axes) == 2:
        return _sweep_heatmaps(df, axes, metric2d or default_sweep_metric(df), lifted)
    name = axes[0]
    chosen = [METRICS[k] for k in metrics]
    n_cols = min(3, len(chosen))
    n_rows = math.ceil(len(chosen) / n_cols)
    fig = Figure(figsize=(2.3 * n_cols + 0.4, 1.85 * n_rows + 0.45), layout="constrained")
    axs = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    groups = list(df[df["valid"].astype(bool)].groupby("method", sort=False))
    for ax, m in zip(axs, chosen):
        for k, (method, part) in enumerate(groups):
            # coinciding lines stay visible: each later line is drawn thinner, with a smaller hollow marker
            # and its own dash pattern, on top of the earlier ones
            ax.plot(_shown(name, part[name]), part[m.mean_key] * m.scale, marker="osD^v<>"[k % 7],
                    markersize=max(1.6, 4.2 - 0.8 * k), markerfacecolor="none", markeredgewidth=0.8,
                    linestyle=("-", "--", "-.", ":")[k % 4], linewidth=max(0.7, 2.2 - 0.5 * k),
                    color=method_colour(method), label=method_label(method), zorder=2 + k)
        if m.unit == "%":  # a share: the axis is 0–100 %, never padded beyond it
            ax.set_ylim(-3, 103)
            ax.set_yticks([0, 25, 50, 75, 100])
        if lifted and name in ("eps", "eps_strong", "eps_weak"):
            ax.axvline(FAIR_EPS_MAX * 255, color="0.4", linestyle="--", linewidth=0.7)
        ax.set_title(f"{m.header} {'↑' if m.higher else '↓'}")
        ax.set_xlabel(axis_label(name))
        ax.grid(linewidth=0.3, alpha=0.5)
    for ax in axs[len(chosen):]:
        ax.set_visible(False)
    handles, labels = axs[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=max(1, len(labels)), frameon=False)
    if _sweep_note(name, lifted):
        fig.supxlabel(_sweep_note(name, lifted), fontsize=6, color="0.3")
    return fig


def _sweep_heatmaps(df, axes: Sequence[str], metric: str, lifted: bool) -> Figure:
    """One heat map per method of ``metric`` over (axes[0] rows × axes[1] columns); invalid points blank."""
    m = METRICS[metric]
    methods = list(dict.fromkeys(df["method"]))
    a0, a1 = axes
    v0 = sorted(set(_shown(a0, df[a0]).tolist()))
    v1 = sorted(set(_shown(a1, df[a1]).tolist()))
    fig = Figure(figsize=(2.4 * len(methods) + 0.8, 2.5), layout="constrained")
    axs = np.atleast_1d(fig.subplots(1, len(methods), squeeze=False)).ravel()
    im = None
    for ax, method in zip(axs, methods):
        part = df[df["method"] == method]
        z = np.full((len(v0), len(v1)), np.nan)
        for _, r in part.iterrows():
            z[v0.index(_shown(a0, [r[a0]])[0]), v1.index(_shown(a1, [r[a1]])[0])] = r[m.mean_key] * m.scale
        im = ax.imshow(z, origin="lower", cmap="viridis", aspect="auto",
                       vmin=np.nanmin(df[m.mean_key]) * m.scale if df[m.mean_key].notna().any() else 0,
                       vmax=np.nanmax(df[m.mean_key]) * m.scale if df[m.mean_key].notna().any() else 1)
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.{m.digits}f}", ha="center", va="center", fontsize=4.5,
                        color="white" if v < np.nanmean(z) else "black")
        ax.set_xticks(range(len(v1)), [f"{v:g}" for v in v1], rotation=90)
        ax.set_yticks(range(len(v0)), [f"{v:g}" for v in v0])
        ax.set_xlabel(axis_label(a1))
        ax.set_ylabel(axis_label(a0))
        ax.set_title(method_label(method), color=method_colour(method), fontweight="bold")
    fig.colorbar(im, ax=list(axs), label=m.header + (" — ε_max lifted above 8/255" if lifted else ""),
                 shrink=0.9)
    return fig


MIN_N = 10  # a matrix cell with fewer evaluated samples is framed in red and footnoted


def matrix_layout(n_panels: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, columns) of a matrix figure's panel grid: at most ``max_cols`` panels side by side, so
    seven transfer panels are a 3 × 3 grid (two cells empty) instead of a 7-panel strip."""
    cols = max(1, min(max_cols, n_panels))
    return max(1, math.ceil(n_panels / cols)), cols


def matrix_figure(panels: Sequence[tuple[str, pd.DataFrame]], value_label: str, *, digits: int = 0,
                  vmin: float | None = 0.0, vmax: float | None = 100.0, cmap: str = "viridis",
                  title: str | None = None, counts: Sequence[pd.DataFrame] | None = None,
                  min_n: int = MIN_N, max_cols: int = 3) -> Figure:
    """Annotated heat maps in a grid (:func:`matrix_layout`), one per ``(panel title, DataFrame)``: rows ×
    columns of each frame (index and column names are the tick labels, method keys shown by their
    display names; NaN cells stay blank), one shared colour scale from ``vmin`` to ``vmax`` (None: the
    data's range) and one colour bar labelled ``value_label``. ``counts`` (one frame per panel, same
    shape): each cell's sample count n printed under its value; a cell with n < ``min_n`` is framed in
    red with its n starred, and a footnote says so. Used for the defence grid (attack × defence,
    non-adaptive | adaptive) and the transfer matrix (source × target per method)."""
    values = np.concatenate([np.asarray(df, dtype=float).ravel() for _, df in panels]) if panels else np.zeros(0)
    finite = values[np.isfinite(values)]
    lo = vmin if vmin is not None else (finite.min() if finite.size else 0.0)
    hi = vmax if vmax is not None else (finite.max() if finite.size else 1.0)
    n_rows, n_cols = matrix_layout(len(panels), max_cols)
    cell_w = max((df.shape[1] for _, df in panels), default=1)
    cell_h = max((df.shape[0] for _, df in panels), default=1)
    row_text = max((len(method_label(str(r))) for _, df in panels for r in df.index), default=4)
    col_text = max((len(method_label(str(c))) for _, df in panels for c in df.columns), default=4)
    panel_w = 0.5 * cell_w + 0.055 * row_text + 0.45
    panel_h = (0.42 if counts is not None else 0.3) * cell_h + 0.045 * col_text + 0.45
    fig = Figure(figsize=(n_cols * panel_w + 0.9, n_rows * panel_h + 0.5 + (0.3 if title else 0)),
                 layout="constrained")
    axs = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    im, few = None, False
    shared = all(list(df.index) == list(panels[0][1].index) for _, df in panels)  # row labels once per grid row
    for k, (ax, (name, df)) in enumerate(zip(axs, panels)):
        first = k % n_cols == 0 or not shared
        z = np.asarray(df, dtype=float)
        n = np.asarray(counts[k], dtype=float) if counts is not None else None
        im = ax.imshow(z, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        for (i, j), v in np.ndenumerate(z):
            if not np.isfinite(v):
                continue
            colour = "white" if v < lo + 0.5 * (hi - lo) else "black"
            text = f"{v:.{digits}f}"
            if n is not None and np.isfinite(n[i, j]):
                small = n[i, j] < min_n
                few |= small
                text += f"\nn={int(n[i, j])}{'*' if small else ''}"
                if small:
                    ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, edgecolor="#e41a1c",
                                           linewidth=1.4))
            ax.text(j, i, text, ha="center", va="center", fontsize=5.5, color=colour, linespacing=1.1)
        ax.set_xticks(range(z.shape[1]), [method_label(str(c)) for c in df.columns], rotation=45, ha="right")
        ax.set_yticks(range(z.shape[0]), [method_label(str(r)) for r in df.index] if first else [])
        ax.set_xlabel(str(df.columns.name or ""))
        ax.set_ylabel(str(df.index.name or "") if first else "")
        ax.set_title(method_label(name), fontweight="bold", color=method_colour(name) if name in method_colours()
                     else "black")
    for ax in axs[len(panels):]:
        ax.set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=list(axs[:len(panels)]), label=value_label, shrink=0.9)
    if title:
        fig.suptitle(title)
    if few:
        fig.supxlabel(f"red frame, n*: fewer than {min_n} samples in the cell — the rate is not reliable",
                      fontsize=6, color="#c01818")
    return fig


def lab_figure(curve: pd.DataFrame, headline: Mapping | None = None) -> Figure:
    """The robust-training lab (sdsgsm/experiments/lab.py): accuracy (%) over ALL test digits against ε (×1/255), one
    panel per attack, one line per model (standard, distilled, FGSM-AT, PGD-AT); ``headline`` (from
    :func:`sdsgsm.experiments.lab.headline`) adds a dotted line at the ε where the standard model falls.
    curve: rows with model, method, eps, accuracy (0..1)."""
    methods = list(dict.fromkeys(curve["method"]))
    fig = Figure(figsize=(2.3 * len(methods) + 0.4, 2.3), layout="constrained")
    axs = np.atleast_1d(fig.subplots(1, len(methods), squeeze=False, sharey=True)).ravel()
    for ax, method in zip(axs, methods):
        part = curve[curve["method"] == method]
        for k, (model, rows) in enumerate(part.groupby("model", sort=False)):
            rows = rows.sort_values("eps")
            ax.plot(rows["eps"] * 255, rows["accuracy"] * 100, marker="osD^"[k % 4], markersize=2.4, linewidth=1.1,
                    color=MODEL_COLOURS.get(model, "0.3"), label=model)
        if headline and headline.get("eps") is not None:
            ax.axvline(headline["eps"] * 255, color="0.5", linestyle=":", linewidth=0.7)
        ax.axhline(50, color="0.8", linewidth=0.5)
        ax.set_title(method_label(method), color=method_colour(method), fontweight="bold")
        ax.set_xlabel("ε (×1/255)")
        ax.set_ylim(0, 101)
        ax.grid(linewidth=0.3, alpha=0.5)
    axs[0].set_ylabel("accuracy, all test images (%)")
    handles, labels = axs[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=max(1, len(labels)), frameon=False)
    return fig


# ----------------------------------------------------------------------------- writing
def versions() -> dict:
    """Package versions for the caption (python, torch, …, matplotlib)."""
    out = package_versions()
    out["matplotlib"] = metadata.version("matplotlib")
    return out


def caption(kind: str, info: Mapping) -> dict:
    """The .json caption: figure kind, every parameter/model/seed in ``info``, versions, time."""
    return {"figure": kind, **dict(info), "versions": versions(),
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "formats": {"pdf": "vector, TrueType fonts embedded (Type 42)", "png": f"{DPI} dpi (pHYs chunk)",
                        "svg": "text kept as text"}}


def render(fig: Figure, fmt: str, dpi: int = DPI) -> bytes:
    """One figure as PDF / PNG / SVG bytes under the print rcParams (:data:`RC`)."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown figure format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    buf = io.BytesIO()
    meta = {"pdf": {"Creator": "sdsgsm", "CreationDate": None}, "svg": {"Date": None}, "png": {"Software": "sdsgsm"}}
    with _RENDER, matplotlib.rc_context(RC):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta[fmt], facecolor="white")
    return buf.getvalue()


def build(builder, *args, **kwargs) -> Figure:
    """Run a figure builder under the print rcParams (fonts and sizes apply when artists are made)."""
    with _RENDER, matplotlib.rc_context(RC):
        return builder(*args, **kwargs)


def figure_files(fig: Figure, stem: str, info: Mapping, kind: str,
                 formats: Sequence[str] = FORMATS) -> dict[str, bytes]:
    """{stem.pdf, stem.png, stem.svg, stem.json} bytes of one figure (the CLI writes them, the app
    offers them as downloads)."""
    files = {f"{stem}.{fmt}": render(fig, fmt) for fmt in formats}
    files[f"{stem}.json"] = json.dumps(caption(kind, info), indent=2, ensure_ascii=False, default=str).encode("utf-8")
    return files


__all__ = ["COLUMNS", "DEFAULT_COLUMNS", "DPI", "FORMATS", "bars_figure", "build", "caption", "figure_files",
           "default_sweep_metric", "grid_figure", "grid_layout", "lab_figure", "matrix_figure", "matrix_layout",
           "parse_columns", "radar_figure", "salient_tiles",
           "render", "sweep_figure"]
