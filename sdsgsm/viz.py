"""Pure image builders (PIL / numpy): no streamlit, no global state.

Used by the CLI for its PNG files and by the app for its panels.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

# anchor colours of a perceptually ordered "inferno"-like map, interpolated linearly
_CMAP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64) / 255.0
RED = (230, 25, 25)
YELLOW = (255, 215, 0)


def to_pil(img: torch.Tensor | np.ndarray) -> Image.Image:
    """(3, H, W) tensor or (H, W, 3) array in [0, 1] -> RGB PIL image."""
    if isinstance(img, torch.Tensor):
        img = img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


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


def saliency_image(saliency_hw: np.ndarray, region_boxes=(), image: torch.Tensor | None = None,
                   alpha: float = 0.6) -> Image.Image:
    """Heat map of the upsampled saliency (H, W), blended over ``image`` (3, H, W) if given,
    with the sensitive-region boxes in red."""
    heat = colormap(saliency_hw)
    if image is not None:
        base = image.detach().float().permute(1, 2, 0).cpu().numpy()
        heat = alpha * heat + (1 - alpha) * base
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


def saliency_figure(sal_map: np.ndarray, boxes_red, title: str = "Occlusion saliency Δ"):
    """Heat map of the per-pixel saliency (H, W); hover shows the window's Δ; red boxes = R."""
    import plotly.graph_objects as go

    z = np.where(np.isfinite(sal_map), sal_map, np.nan)
    fig = go.Figure(go.Heatmap(z=z, colorscale="Inferno", colorbar=dict(title="Δ", thickness=12),
                               hovertemplate="x %{x}, y %{y}<br>Δ = %{z:.4g}<extra></extra>"))
    fig.update_layout(title=dict(text=title, font=dict(size=14)), shapes=_box_shapes(boxes_red, "red"))
    _image_axes(fig, *z.shape)
    return fig


def budget_figure(budget_hw: np.ndarray, title: str = "Budget map E (×1/255)"):
    """Heat map of the per-pixel L∞ budget E (H, W), shown in 1/255 units."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=budget_hw * 255, colorscale="Blues", zmin=0, colorbar=dict(title="/255", thickness=12),
                               hovertemplate="x %{x}, y %{y}<br>E = %{z:.2f}/255<extra></extra>"))
    fig.update_layout(title=dict(text=title, font=dict(size=14)))
    _image_axes(fig, *budget_hw.shape)
    return fig


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


# metric -> (label, higher is better)
METRIC_DIRECTION = {"asr": ("ASR ↑", True), "ssim_mean": ("SSIM ↑", True), "l2_mean": ("L2 ↓", False),
                    "linf_mean": ("L∞ ↓", False), "time_per_sample_s": ("Time ↓", False)}


def radar_scores(rows: list[dict]) -> dict[str, list[float]]:
    """Paper Fig. 3 normalisation: per metric, best method = 1; higher-better v/max, lower-better min/v."""
    out = {}
    for key, (_, higher) in METRIC_DIRECTION.items():
        vals = np.array([float(r[key]) for r in rows])
        if higher:
            top = np.nanmax(vals)
            out[key] = list(vals / top) if top > 0 else [1.0] * len(vals)
        else:
            low = np.nanmin(vals)
            out[key] = [low / v if v > 0 else 1.0 for v in vals]
    return out


def radar_figure(rows: list[dict]):
    """Radar chart of normalised metrics: larger area = better (paper Fig. 3)."""
    import plotly.graph_objects as go

    scores = radar_scores(rows)
    labels = [lab for lab, _ in METRIC_DIRECTION.values()]
    fig = go.Figure()
    for i, row in enumerate(rows):
        r = [scores[k][i] for k in METRIC_DIRECTION]
        fig.add_trace(go.Scatterpolar(r=r + r[:1], theta=labels + labels[:1], name=row["method"], fill="toself",
                                      opacity=0.55))
    fig.update_layout(polar=dict(radialaxis=dict(range=[0, 1.05], showticklabels=False)), height=420,
                      margin=dict(l=40, r=40, t=30, b=30), legend=dict(orientation="h"))
    return fig


def bars_figure(rows: list[dict]):
    """Grouped bars per metric (paper Fig. 4): L2, L∞ (/255), SSIM, ASR and time per sample."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [("l2_mean", "l2_std", "L2"), ("linf_mean", None, "L∞ (/255)"), ("ssim_mean", "ssim_std", "SSIM"),
              ("asr", None, "ASR"), ("time_per_sample_s", None, "Time / sample (s)")]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[2] for p in panels], horizontal_spacing=0.06)
    names = [r["method"] for r in rows]
    colours = [f"hsl({int(360 * i / max(1, len(rows)))},55%,55%)" for i in range(len(rows))]
    for col, (key, err, _) in enumerate(panels, start=1):
        scale = 255 if key == "linf_mean" else 1
        fig.add_trace(go.Bar(x=names, y=[float(r[key]) * scale for r in rows], showlegend=False,
                             error_y=dict(type="data", array=[float(r[err]) for r in rows]) if err else None,
                             marker_color=colours),
                      1, col)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig
