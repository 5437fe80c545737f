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
