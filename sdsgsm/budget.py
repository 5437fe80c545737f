"""Sensitive region R and pixel-wise budget map E (paper §3.3, eq. 4–5, eq. 11).

E(i, j) = ε_strong on R and ε_weak elsewhere, the same for all channels, shape (N, 1, H, W).
Region modes:

* ``argmax``     R = Ω* = argmax_Ω Δ_Ω (eq. 11, default);
* ``topk``       the k windows with the largest Δ;
* ``threshold``  every window with Δ_Ω > τ (§3.2's stability parameter);
* ``neighbours`` Ω* plus its 8-neighbours whose Δ ≥ ρ·Δ_max (§3.3 "high-response neighbours");
* ``soft``       extension: E = ε_weak + (ε_strong − ε_weak)·normalised saliency.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sdsgsm.occlusion import upsample_grid
from sdsgsm.params import FAIR_EPS_MAX, REGIONS, check_fields, default  # noqa: F401  (REGIONS re-exported)

EPS_MAX = FAIR_EPS_MAX


@dataclass(frozen=True)
class BudgetConfig:
    """Dual budget (§3.3). Requires 0 ≤ ε_weak ≤ ε_strong ≤ ε_max (the paper's fairness cap)."""

    eps_strong: float = default("eps_strong")
    eps_weak: float = default("eps_weak")
    eps_max: float = default("eps_max")
    region: str = default("region")
    topk: int = default("topk")
    tau: float = default("tau")
    rho: float = default("rho")

    def __post_init__(self):
        """Ranges from the parameter spec (sdsgsm/params.py), then 0 ≤ ε_weak ≤ ε_strong ≤ ε_max."""
        check_fields(self, "budget")
        if self.eps_weak > self.eps_strong:
            raise ValueError(f"Need 0 ≤ ε_weak ≤ ε_strong (got ε_weak = {self.eps_weak * 255:.2f}/255, "
                             f"ε_strong = {self.eps_strong * 255:.2f}/255).")
        if self.eps_strong > self.eps_max + 1e-12:
            raise ValueError(f"ε_strong = {self.eps_strong * 255:.2f}/255 exceeds ε_max = "
                             f"{self.eps_max * 255:.2f}/255; raise ε_max explicitly to allow it.")


def region_mask(grid: torch.Tensor, cfg: BudgetConfig) -> torch.Tensor:
    """Windows in R: (N, nh, nw) saliency -> (N, nh, nw) bool (all False for ``soft``)."""
    n, nh, nw = grid.shape
    flat = grid.reshape(n, -1)  # (N, P)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    best = flat.argmax(1, keepdim=True)  # (N, 1) — Ω*, eq. 11
    if cfg.region in ("argmax", "neighbours"):
        mask.scatter_(1, best, True)
    elif cfg.region == "topk":
        mask.scatter_(1, flat.topk(min(cfg.topk, flat.shape[1]), dim=1).indices, True)
    elif cfg.region == "threshold":
        mask = flat > cfg.tau
    mask = mask.view(n, nh, nw)
    if cfg.region == "neighbours":
        near = F.max_pool2d(mask[:, None].float(), 3, stride=1, padding=1)[:, 0].bool()
        strong = grid >= cfg.rho * grid.reshape(n, -1).amax(1)[:, None, None]
        mask = mask | (near & strong)
    return mask


def budget_map(grid: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
               cfg: BudgetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Budget map E (eq. 5/11) and region mask.

    Args: grid (N, nh, nw) window scores; boxes (nh·nw, 4) windows (top, left, h, w).
    Returns E (N, 1, H, W) float32 with values in [ε_weak, ε_strong], and R (N, nh, nw) bool.
    """
    n = grid.shape[0]
    mask = region_mask(grid, cfg)
    if cfg.region == "soft":
        sal = upsample_grid(grid, boxes, height, width)  # (N, H, W)
        lo = sal.reshape(n, -1).amin(1)[:, None, None]
        hi = sal.reshape(n, -1).amax(1)[:, None, None]
        norm = (sal - lo) / (hi - lo).clamp_min(1e-12)
        return (cfg.eps_weak + (cfg.eps_strong - cfg.eps_weak) * norm)[:, None].float(), mask
    inside = upsample_grid(mask.float(), boxes, height, width) > 0.5  # (N, H, W)
    weak = torch.full((n, height, width), cfg.eps_weak, device=grid.device)
    return torch.where(inside, cfg.eps_strong, weak)[:, None].float(), mask


def region_warnings(grid: torch.Tensor, cfg: BudgetConfig) -> list[str]:
    """Plain-language warnings when R is degenerate for scan scores ``grid`` (N, nh, nw).

    ``threshold`` with τ at or below the smallest Δ selects every window (the attack becomes a
    uniform ε_strong attack); τ at or above the largest Δ selects none (ε_weak everywhere).
    """
    if cfg.region != "threshold":
        return []
    flat = grid.reshape(grid.shape[0], -1)
    count = (flat > cfg.tau).sum(1)  # (N,)
    lo, hi = float(flat.min()), float(flat.max())
    span = f"Δ ranges from {lo:.4g} to {hi:.4g}"
    if bool((count == flat.shape[1]).any()):
        return [f"τ = {cfg.tau:g} selects every window ({span}): the attack is uniform at ε_strong. "
                "Raise τ into that range."]
    if bool((count == 0).any()):
        return [f"τ = {cfg.tau:g} selects no window ({span}): ε_weak applies everywhere. Lower τ into that range."]
    return []
