"""Zero-out scan: decision-dependent domain identification (paper §3.2, eq. 1–2).

Square m×m windows Ω slide with stride s (default s = m). A partial last window is
clamped inside the image, so the windows always cover the border. Z_Ω sets every
channel of Ω to 0 (eq. 1); each window is scored by

* ``logit_l2``        Δ_Ω = ‖f(x) − f(Z_Ω x)‖₂ on logits (eq. 2, default);
* ``confidence_drop`` p_y(x) − p_y(Z_Ω x) for the label y (Algorithm 1's γ).

All occluded copies are evaluated without gradients in chunks of ``chunk`` images, so
peak memory is bounded by the chunk size, not by the number of windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SCORES = ("logit_l2", "confidence_drop")


@dataclass(frozen=True)
class ScanConfig:
    """Zero-out scan parameters. ``stride`` None means stride = patch (non-overlapping)."""

    patch: int = 16
    stride: int | None = None
    score: str = "logit_l2"
    chunk: int = 64

    def __post_init__(self):
        if not isinstance(self.patch, int) or self.patch < 1:
            raise ValueError(f"Patch size must be a positive integer (got {self.patch!r}).")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise ValueError(f"Stride must be a positive integer (got {self.stride!r}).")
        if self.score not in SCORES:
            raise ValueError(f"Unknown score {self.score!r}; choose one of {', '.join(SCORES)}.")
        if self.chunk < 1:
            raise ValueError("Chunk size must be at least 1.")

    @property
    def step(self) -> int:
        return self.stride or self.patch


@dataclass
class ScanResult:
    """grid (N, nh, nw) float32 scores; boxes (nh·nw, 4) int64 rows (top, left, h, w) in
    row-major window order; clean_logits (N, K) of the unoccluded images."""

    grid: torch.Tensor
    boxes: torch.Tensor
    clean_logits: torch.Tensor
    cfg: ScanConfig


def window_starts(size: int, patch: int, step: int) -> list[int]:
    """Start offsets 0, s, 2s, … along one axis; the last window is clamped to size − m."""
    if patch > size:
        raise ValueError(f"Patch size {patch} is larger than the image side {size}.")
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def window_boxes(height: int, width: int, cfg: ScanConfig) -> torch.Tensor:
    """All windows as an (nh·nw, 4) int64 tensor of (top, left, h, w), row-major."""
    rows = window_starts(height, cfg.patch, cfg.step)
    cols = window_starts(width, cfg.patch, cfg.step)
    return torch.tensor([(r, c, cfg.patch, cfg.patch) for r in rows for c in cols], dtype=torch.int64)


def grid_shape(height: int, width: int, cfg: ScanConfig) -> tuple[int, int]:
    """(nh, nw): number of window rows and columns."""
    return (len(window_starts(height, cfg.patch, cfg.step)),
            len(window_starts(width, cfg.patch, cfg.step)))


def _score(clean: torch.Tensor, occluded: torch.Tensor, y: torch.Tensor, score: str) -> torch.Tensor:
    """clean (B, K), occluded (B, K), y (B,) -> (B,) window scores (eq. 2 or γ)."""
    if score == "logit_l2":
        return torch.linalg.vector_norm(clean.float() - occluded.float(), dim=1)
    p_clean = clean.float().softmax(1).gather(1, y[:, None])[:, 0]
    p_occ = occluded.float().softmax(1).gather(1, y[:, None])[:, 0]
    return p_clean - p_occ


def occlusion_scan(model, x: torch.Tensor, cfg: ScanConfig = ScanConfig(),
                   y: torch.Tensor | None = None, clean_logits: torch.Tensor | None = None) -> ScanResult:
    """Score every window of every image (paper eq. 1–2), in chunks, without gradients.

    Args: model maps (B, 3, H, W) in [0, 1] to (B, K) logits; x (N, 3, H, W) in [0, 1];
    y (N,) labels for ``confidence_drop`` (default: clean prediction); clean_logits (N, K)
    to reuse an already computed clean forward pass.
    Returns a ScanResult with grid (N, nh, nw).
    """
    n, _, h, w = x.shape
    boxes = window_boxes(h, w, cfg)  # (P, 4)
    nh, nw = grid_shape(h, w, cfg)
    with torch.inference_mode():
        clean = model(x) if clean_logits is None else clean_logits
        labels = clean.argmax(1) if y is None else y.to(x.device)
        pairs = torch.cartesian_prod(torch.arange(n), torch.arange(len(boxes)))  # (N·P, 2)
        scores = torch.empty(len(pairs), device=x.device)
        for start in range(0, len(pairs), cfg.chunk):
            idx = pairs[start:start + cfg.chunk]
            batch = x[idx[:, 0]].clone()  # (B, 3, H, W)
            for b, (top, left, ph, pw) in enumerate(boxes[idx[:, 1]].tolist()):
                batch[b, :, top:top + ph, left:left + pw] = 0.0  # Z_Ω, eq. 1
            sample = idx[:, 0].to(x.device)
            scores[start:start + len(idx)] = _score(clean[sample], model(batch), labels[sample], cfg.score)
    return ScanResult(scores.view(n, nh, nw).float(), boxes, clean.float(), cfg)


def upsample_grid(grid: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Paint window scores back onto pixels: (N, nh, nw) -> (N, H, W).

    A pixel covered by several windows (stride < patch or a clamped border window) takes
    the largest score among them.
    """
    n = grid.shape[0]
    flat = grid.reshape(n, -1)  # (N, P)
    out = torch.full((n, height, width), float("-inf"), device=grid.device)
    for k, (top, left, ph, pw) in enumerate(boxes.tolist()):
        region = out[:, top:top + ph, left:left + pw]
        torch.maximum(region, flat[:, k, None, None].expand_as(region), out=region)
    return out
