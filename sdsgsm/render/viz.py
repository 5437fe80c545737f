"""Pure image and chart builders (PIL / numpy / Plotly): no streamlit, no global state.

Used by the CLI for its PNG files and by the app for its panels. Charts read labels,
directions and display scales from the metric registry (``sdsgsm.metrics.METRICS``) and
give every registered method one colour (:func:`method_colour`) in every chart.
"""

from __future__ import annotations

import io
import zlib
from functools import cache

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from sdsgsm.attacks import method_label
from sdsgsm.metrics import metric_list

# anchor colours of a perceptually ordered "inferno"-like map, interpolated linearly
_CMAP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64) / 255.0
RED = (230, 25, 25)
# the robust-training lab's models, one colour each in every chart and figure
MODEL_COLOURS = {"standard": "#4d4d4d", "distilled": "#d62728", "fgsm_at": "#1f77b4", "pgd_at": "#2ca02c"}
YELLOW = (255, 215, 0)


def to_pil(img: torch.Tensor | np.ndarray) -> Image.Image:
    """(3, H, W) tensor or (H, W, 3) array in [0, 1] -> RGB PIL image."""
    if isinstance(img, torch.Tensor):
        img = img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


def png_bytes(img: Image.Image) -> bytes:
    """PNG file bytes of a PIL image (no timestamp or text chunks: the same image, the same bytes)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def colormap(values: np.ndarray) -> np.ndarray:
    """Map (H, W) values to (H, W, 3) colours in [0, 1], min-max normalised (constant -> 0)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo, hi = (v[finite].min(), v[finite].max()) if finite.any() else (0.0, 1.0)
    t = np.where(finite, (v - lo) / (hi - lo) if hi > lo else 0.0, 0.0) * (len(_CMAP) - 1)
    i = np.clip(np.floor(t).astype(int), 0, len(_CMAP) - 2)
    frac = (t - i)[..., None]
    return _CMAP[i] * (1 - frac) + _CMAP[i + 1] * frac


def draw_boxes(img: Image.Image, boxes, colour=RED, width: int | None = None) -> Image.Image:
    """Copy of ``img`` with rectangles drawn; boxes are rows (top, left, h, w) in pixels."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    width = width or max(1, round(min(img.size) / 112))
    for top, left, h, w in np.asarray(boxes, dtype=int).reshape(-1, 4).tolist():
        draw.rectangle([left, top, left + w - 1, top + h - 1], outline=colour, width=width)
    return out


def saliency_image(saliency_hw: np.ndarray, region_boxes=(), image: torch.Tensor | np.ndarray | None = None,
                   alpha: float = 0.6) -> Image.Image:
    """Heat map of the upsampled saliency Δ (H, W) (eq. 2), blended (weight ``alpha``) over
    ``image`` — a (3, H, W) tensor or (H, W, 3) array in [0, 1] — if given, with the
    sensitive-region boxes R in red (§3.3)."""
    heat = colormap(saliency_hw)
    if image is not None:
        base = image.detach().float().permute(1, 2, 0).cpu().numpy() if isinstance(image, torch.Tensor) else image
        heat = alpha * heat + (1 - alpha) * np.asarray(base, dtype=np.float64)
    return draw_boxes(to_pil(heat), region_boxes, RED)


def region_boxes(region: torch.Tensor, boxes: torch.Tensor) -> np.ndarray:
    """Boxes (k, 4) of the windows in R for one sample; region (nh, nw) bool."""
    return boxes[region.reshape(-1).cpu()].cpu().numpy()


# ----------------------------------------------------------------------------- Plotly builders
def _image_axes(fig, height: int, width: int) -> None:
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_layout(margin=dict(l=0, r=0, t=30, b=0), height=330)


def _box_shapes(boxes, colour: str) -> list[dict]:
    return [dict(type="rect", x0=c - 0.5, y0=t - 0.5, x1=c + w - 0.5, y1=t + h - 0.5,
                 line=dict(color=colour, width=3)) for t, c, h, w in np.asarray(boxes).reshape(-1, 4).tolist()]


def cells(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact compression of a map that is constant on rectangles (window scores, budget maps).

    (H, W) -> (z (r, c), x edges (c + 1,), y edges (r + 1,)) in pixel coordinates (centres at
    integers): a column/row boundary wherever any value changes. Sixteen-pixel windows on 224 px
    give 14 × 14 cells instead of 224 × 224 values, which keeps the page light to send and draw.
    """
    v = np.asarray(values)
    same = lambda a, b: (a == b) | (np.isnan(a) & np.isnan(b))  # noqa: E731
    cols = np.flatnonzero(~same(v[:, 1:], v[:, :-1]).all(0)) + 1
    rows = np.flatnonzero(~same(v[1:], v[:-1]).all(1)) + 1
    c0, r0 = np.r_[0, cols], np.r_[0, rows]
    return v[np.ix_(r0, c0)], np.r_[c0, v.shape[1]] - 0.5, np.r_[r0, v.shape[0]] - 0.5


# the Explorer's two heat maps: title, colour scale (a Plotly name), colour-bar title; one setting for the
# interactive figure and the static image
SALIENCY_HEAT = ("Occlusion saliency Δ", "Inferno", "Δ")
BUDGET_HEAT = ("Budget map E (×1/255)", "Blues", "/255")


def _heatmap(values: np.ndarray, colorscale: str, bar_title: str, hover: str, **kwargs):
    import plotly.graph_objects as go

    z, x, y = cells(values)
    return go.Heatmap(z=z, x=x, y=y, colorscale=colorscale, colorbar=dict(title=bar_title, thickness=12),
                      hovertemplate=hover + "<extra></extra>", **kwargs)


def saliency_figure(sal_map: np.ndarray, boxes_red, title: str = SALIENCY_HEAT[0]):
    """Heat map of the per-pixel saliency (H, W) (eq. 2); hover shows the window's Δ; red boxes = R."""
    import plotly.graph_objects as go

    z = np.where(np.isfinite(sal_map), sal_map, np.nan)
    fig = go.Figure(_heatmap(z, SALIENCY_HEAT[1], SALIENCY_HEAT[2], "x %{x:.0f}, y %{y:.0f}<br>Δ = %{z:.4g}"))
    fig.update_layout(title=dict(text=title, font=dict(size=14)), shapes=_box_shapes(boxes_red, "red"))
    _image_axes(fig, *z.shape)
    return fig


def budget_figure(budget_hw: np.ndarray, title: str = BUDGET_HEAT[0]):
    """Heat map of the per-pixel L∞ budget E (H, W) (eq. 5), shown in 1/255 units."""
    import plotly.graph_objects as go

    z = budget_hw * 255
    fig = go.Figure(_heatmap(z, BUDGET_HEAT[1], BUDGET_HEAT[2], "x %{x:.0f}, y %{y:.0f}<br>E = %{z:.2f}/255",
                             zmin=0, zmax=budget_top(z)))
    fig.update_layout(title=dict(text=title, font=dict(size=14)))
    _image_axes(fig, *budget_hw.shape)
    return fig


def budget_top(z: np.ndarray) -> float:
    """The top of the budget map's colour scale (its bottom is 0): a uniform E still reads from 0."""
    return max(float(np.nanmax(z)), 1e-6)


# ----------------------------------------------------------------------------- static heat maps (the Explorer)
def _font(size: int):
    """DejaVu Sans (shipped with matplotlib; it has Δ, ε, ×) at ``size`` px, else Pillow's own font."""
    from importlib.util import find_spec

    from PIL import ImageFont

    spec = find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            return ImageFont.truetype(f"{folder}/mpl-data/fonts/ttf/DejaVuSans.ttf", size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def colour_lut(colorscale: str, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colours of a named Plotly colour scale, interpolated linearly in RGB between its stops
    (what plotly.js draws for a heat map)."""
    from plotly.colors import get_colorscale, unlabel_rgb

    scale = get_colorscale(colorscale)
    at = np.array([float(p) for p, _ in scale])
    rgb = np.array([unlabel_rgb(c) if c.startswith("rgb") else tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
                    for _, c in scale], dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)
    return np.round(np.stack([np.interp(t, at, rgb[:, k]) for k in range(3)], 1)).astype(np.uint8)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values within [lo, hi] (steps of 1, 2, 2.5 or 5 × 10^k), about ``target`` of them."""
    if not hi > lo:
        return [lo]
    mag = 10.0 ** np.floor(np.log10((hi - lo) / target))
    steps = [m * mag for m in (1, 2, 2.5, 5, 10, 20)]
    step = min(steps, key=lambda st: (abs(np.floor(hi / st + 1e-9) - np.ceil(lo / st - 1e-9) + 1 - target), -st))
    ticks = np.arange(np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9) + 1) * step
    return [float(v) + 0.0 for v in ticks]  # + 0.0: no "-0"


def heat_image(values: np.ndarray, settings: tuple[str, str, str], boxes=(), zmin: float | None = None,
               zmax: float | None = None, side: int = 600) -> Image.Image:
    """A heat map (H, W) as a picture: ``settings`` = (title, Plotly colour scale, colour-bar title), the
    map scaled to ``side`` px wide (nearest: window cells stay sharp), red ``boxes`` (top, left, h, w), a colour
    bar with round ticks to the right. The scale runs from ``zmin``/``zmax`` (default the finite min/max);
    non-finite cells are white. The static twin of :func:`saliency_figure` / :func:`budget_figure`."""
    title, colorscale, bar_title = settings
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo = float(v[finite].min()) if zmin is None and finite.any() else float(zmin or 0.0)
    hi = float(v[finite].max()) if zmax is None and finite.any() else float(zmax if zmax is not None else 1.0)
    lut = colour_lut(colorscale)
    t = np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(v)
    rgb = lut[np.round(np.where(finite, t, 0) * (len(lut) - 1)).astype(int)]
    rgb[~finite] = 255
    h, w = v.shape
    tall = max(1, round(side * h / w))  # the map's height at ``side`` px wide (square for the models' inputs)
    sx, sy = side / w, tall / h
    heat = Image.fromarray(rgb, "RGB").resize((side, tall), Image.NEAREST)
    draw = ImageDraw.Draw(heat)
    line = max(2, round(side / 110))
    for top, left, bh, bw in np.asarray(boxes, dtype=int).reshape(-1, 4).tolist():
        draw.rectangle([round(left * sx), round(top * sy), round((left + bw) * sx) - 1, round((top + bh) * sy) - 1],
                       outline=RED, width=line)
    size = round(side * 0.05)
    big, small = _font(round(side * 0.058)), _font(size)
    head, bar_w, gap = round(side * 0.1), round(side * 0.035), round(side * 0.03)
    ticks = nice_ticks(lo, hi)
    labels = [f"{x:.4g}" for x in ticks]
    label_w = max(small.getbbox(s)[2] for s in labels + [bar_title])
    out = Image.new("RGB", (side + gap + bar_w + gap // 2 + label_w + gap // 2, head + max(tall, side)), "white")
    out.paste(heat, (0, head))
    d = ImageDraw.Draw(out)
    d.text((0, head // 2), title, fill=(42, 63, 95), font=big, anchor="lm")
    x0, bar_top, bar_h = side + gap, head + round(side * 0.1), round(side * 0.84)
    ramp = lut[::-1][np.linspace(0, len(lut) - 1, bar_h).round().astype(int)]
    out.paste(Image.fromarray(np.repeat(ramp[:, None], bar_w, 1), "RGB"), (x0, bar_top))
    d.text((x0, bar_top - size), bar_title, fill=(42, 63, 95), font=small, anchor="ls")
    for tick, text in zip(ticks, labels):
        y = bar_top + round((1 - ((tick - lo) / (hi - lo) if hi > lo else 0)) * (bar_h - 1))
        d.line([(x0 + bar_w, y), (x0 + bar_w + gap // 4, y)], fill=(68, 68, 68), width=max(1, line // 2))
        d.text((x0 + bar_w + gap // 2, y), text, fill=(68, 68, 68), font=small, anchor="lm")
    return out


def saliency_heat_image(sal_map: np.ndarray, boxes_red=()) -> Image.Image:
    """:func:`saliency_figure` as a picture: Δ (eq. 2) from its min to its max, red boxes = R."""
    return heat_image(sal_map, SALIENCY_HEAT, boxes_red)


def budget_heat_image(budget_hw: np.ndarray) -> Image.Image:
    """:func:`budget_figure` as a picture: E (eq. 5) in 1/255 units from 0."""
    z = np.asarray(budget_hw, dtype=np.float64) * 255
    return heat_image(z, BUDGET_HEAT, zmin=0.0, zmax=budget_top(z))


def top5_figure(before: list[dict], after: list[dict]):
    """Top-5 class probabilities before (blue) and after (red) the attack, stacked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, subplot_titles=("Clean top-5", "Adversarial top-5"), vertical_spacing=0.18)
    for row, rows, colour in ((1, before, "#4c78a8"), (2, after, "#e45756")):
        names = [r["name"][:28] for r in rows][::-1]
        probs = [r["prob"] for r in rows][::-1]
        fig.add_trace(go.Bar(x=probs, y=names, orientation="h", marker_color=colour,
                             text=[f"{p:.1%}" for p in probs], textposition="outside", cliponaxis=False,
                             hovertemplate="%{y}: %{x:.2%}<extra></extra>"), row, 1)
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%", showticklabels=False)
    fig.update_layout(showlegend=False, height=360, margin=dict(l=0, r=10, t=30, b=0))
    return fig


# ----------------------------------------------------------------------------- method colours and metric charts
@cache
def method_colours() -> dict[str, str]:
    """Every registered method (``sdsgsm.attacks.METHODS``, registry order) -> its own colour from
    Plotly's qualitative Dark24 then Light24 palettes (48 distinct colours)."""
    from plotly.colors import qualitative

    from sdsgsm.attacks import METHODS

    palette = qualitative.Dark24 + qualitative.Light24
    if len(METHODS) > len(palette):
        raise ValueError(f"{len(METHODS)} methods but only {len(palette)} distinct colours; extend the palette.")
    return dict(zip(METHODS, palette))


def method_colour(name: str) -> str:
    """The colour of method ``name`` in every chart and figure; a name outside the registry gets a
    stable colour from the palette's unused part (chosen by a CRC of the name)."""
    colours = method_colours()
    if name in colours:
        return colours[name]
    from plotly.colors import qualitative

    spare = [c for c in qualitative.Dark24 + qualitative.Light24 if c not in colours.values()] or list(colours.values())
    return spare[zlib.crc32(name.encode()) % len(spare)]


def radar_scores(rows: list[dict]) -> dict[str, list[float]]:
    """Paper Fig. 3 normalisation of the registry's radar metrics (keyed by summary key): per metric
    the best method = 1; higher-better v/max, lower-better min/v."""
    out = {}
    for m in metric_list("radar"):
        vals = np.array([float(r[m.mean_key]) for r in rows])
        if m.higher:
            top = np.nanmax(vals)
            out[m.mean_key] = list(vals / top) if top > 0 else [1.0] * len(vals)
        else:
            low = np.nanmin(vals)
            out[m.mean_key] = [low / v if v > 0 else 1.0 for v in vals]
    return out


def radar_figure(rows: list[dict]):
    """Radar chart of normalised metrics (ASR, L2, L∞, SSIM, total time = scan + attack): larger
    area = better (paper Fig. 3). rows: ``summarise`` dicts with 'method'; one colour per method."""
    import plotly.graph_objects as go

    scores = radar_scores(rows)
    metrics = metric_list("radar")
    labels = [f"{m.label} {'↑' if m.higher else '↓'}" for m in metrics]
    fig = go.Figure()
    for i, row in enumerate(rows):
        r = [scores[m.mean_key][i] for m in metrics]
        fig.add_trace(go.Scatterpolar(r=r + r[:1], theta=labels + labels[:1], name=method_label(row["method"]),
                                      fill="toself",
                                      opacity=0.55, line=dict(color=method_colour(row["method"]))))
    fig.update_layout(polar=dict(radialaxis=dict(range=[0, 1.05], showticklabels=False)), height=420,
                      margin=dict(l=40, r=40, t=30, b=30), legend=dict(orientation="h"))
    return fig


def bars_figure(rows: list[dict]):
    """Grouped bars per radar metric (paper Fig. 4) at the registry's display scale, ± std where the
    metric shows one; time is the total (scan + attack) per sample. One colour per method."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = metric_list("radar")
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m.header for m in metrics],
                        horizontal_spacing=0.06)
    names = [r["method"] for r in rows]
    colours = [method_colour(n) for n in names]
    for col, m in enumerate(metrics, start=1):
        err = [float(r[m.std_key]) * m.scale for r in rows] if m.show_std and m.std_key else None
        fig.add_trace(go.Bar(x=[method_label(n) for n in names],
                             y=[float(r[m.mean_key]) * m.scale for r in rows], showlegend=False,
                             error_y=dict(type="data", array=err) if err else None, marker_color=colours),
                      1, col)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


CYAN = (0, 200, 255)


def mask_box(mask_hw: np.ndarray) -> np.ndarray:
    """Bounding box (1, 4) (top, left, h, w) of the non-zero pixels of a map (H, W), e.g. the
    adversarial patch's budget map; (0, 4) when the map is all zero."""
    rows, cols = np.nonzero(np.asarray(mask_hw))
    if not len(rows):
        return np.zeros((0, 4), dtype=np.int64)
    top, left = rows.min(), cols.min()
    return np.array([[top, left, rows.max() - top + 1, cols.max() - left + 1]], dtype=np.int64)


def matrix_figure(panels: list[tuple[str, pd.DataFrame]], value_label: str, digits: int = 0,
                  zmin: float | None = 0.0, zmax: float | None = 100.0, colorscale: str = "Viridis",
                  counts: list[pd.DataFrame] | None = None, min_n: int = 10):
    """Interactive twin of :func:`sdsgsm.render.figures.matrix_figure`: annotated heat maps side by side,
    one per ``(title, DataFrame)`` (rows × columns, NaN blank; method keys shown by their display
    names), one shared colour scale and bar. ``counts``: each cell's n under its value, '⚠' where
    n < ``min_n``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from sdsgsm.attacks import method_label

    shared = all(list(df.index) == list(panels[0][1].index) for _, df in panels)
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[method_label(t) for t, _ in panels],
                        horizontal_spacing=0.04 if shared else 0.12)
    for k, (_, df) in enumerate(panels, start=1):
        z = np.asarray(df, dtype=float)
        n = np.asarray(counts[k - 1], dtype=float) if counts is not None else None

        def cell(i, j, v, n=n):
            if not np.isfinite(v):
                return ""
            if n is None or not np.isfinite(n[i, j]):
                return f"{v:.{digits}f}"
            return f"{v:.{digits}f}<br>n={int(n[i, j])}{' ⚠' if n[i, j] < min_n else ''}"

        text = [[cell(i, j, v) for j, v in enumerate(row)] for i, row in enumerate(z)]
        fig.add_trace(go.Heatmap(z=z, x=[method_label(str(c)) for c in df.columns],
                                 y=[method_label(str(r)) for r in df.index], text=text,
                                 texttemplate="%{text}", colorscale=colorscale, zmin=zmin, zmax=zmax,
                                 coloraxis="coloraxis", hovertemplate="%{y} → %{x}: %{z:.3g}<extra></extra>"),
                      row=1, col=k)
        fig.update_yaxes(autorange="reversed", title_text=str(df.index.name or "") if k == 1 else None,
                         showticklabels=k == 1 or not shared, row=1, col=k)  # shared row labels once, on the left
        fig.update_xaxes(title_text=str(df.columns.name or ""), row=1, col=k)
    fig.update_layout(coloraxis=dict(colorscale=colorscale, cmin=zmin, cmax=zmax,
                                     colorbar=dict(title=value_label, thickness=12)),
                      margin=dict(l=10, r=10, t=40, b=10),
                      height=160 + 34 * max((len(d) for _, d in panels), default=1))
    return fig
