"""FAB-L∞, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020) — our implementation.

IBM ART 1.20.1 has no FAB, so this module implements the untargeted L∞ version with the
settings of the paper's Table 2 (T = 10, ε = 8/255) and the usual FAB constants
(α_max = 0.1, η = 1.05, β = 0.9, one restart without random start, as in torchattacks'
``FAB(norm='Linf', n_classes=10)``). Each iteration linearises the classifier at the
current point x_k, picks the closest linearised decision boundary among the ``n_classes``
most likely other classes (distance |f_l − f_y| / ‖∇(f_l − f_y)‖₁), projects both x_k and
the clean x onto that hyperplane inside the [0, 1] box, and moves to a biased mix of the two
projections (extrapolated by η); after each success it steps back towards x by β.
FAB is a minimum-norm attack: a sample counts as attacked only when the smallest L∞ found
is ≤ ε (AutoAttack's rule); otherwise the clean image is returned, so |x_adv − x| ≤ ε.
"""

from __future__ import annotations

import torch

from sdsgsm.attacks.base import AttackConfig, CoreOutput, scalar_budget

FAB_CONSTANTS = {"alpha_max": 0.1, "eta": 1.05, "beta": 0.9, "n_classes": 10, "n_restarts": 1,
                 "random_start": False}


def fab_params(cfg: AttackConfig) -> dict:
    """The parameters FAB runs with for ``cfg`` (recorded in config.json)."""
    return {"implementation": "sdsgsm.attacks.fab (ART 1.20.1 has no FAB)", "norm": "inf",
            "eps": cfg.eps, "max_iter": cfg.steps, **FAB_CONSTANTS}


def linf_hyperplane_step(p: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest-L∞ step d with w·(p + d) = b and p + d ∈ [0, 1] (FAB's box-constrained projection).

    Args: p (M, D) points in [0, 1]; w (M, D) hyperplane normals; b (M,) offsets (float64
    recommended). With room_i the distance to the box face in the useful direction, the
    reachable change of w·d at radius t is h(t) = Σ|w_i|·min(t, room_i), which is piecewise
    linear and increasing; sorting the rooms gives the exact smallest t with h(t) = |w·p − b|.
    Where the plane is out of reach inside the box, d goes to the box corner closest to it.
    Returns d (M, D).
    """
    s = (w * p).sum(1) - b  # (M,) signed residual
    move = -torch.sign(s)[:, None] * torch.sign(w)  # (M, D) useful direction per coordinate
    room = torch.where(move > 0, 1 - p, p)  # (M, D)
    r, order = room.sort(dim=1)
    a = w.abs().gather(1, order)
    c1, c2 = (a * r).cumsum(1), a.cumsum(1)  # Σ_{i≤j} a_i r_i, Σ_{i≤j} a_i
    total = c2[:, -1:]
    need = s.abs()[:, None]
    j = (c1 + r * (total - c2) < need).sum(1, keepdim=True)  # first breakpoint with h(r_j) ≥ |s|
    prev = (j - 1).clamp_min(0)
    c1p = torch.where(j > 0, c1.gather(1, prev), torch.zeros_like(need))
    c2p = torch.where(j > 0, c2.gather(1, prev), torch.zeros_like(need))
    t = (need - c1p) / (total - c2p).clamp_min(1e-30)
    t = torch.where(j < p.shape[1], t, r[:, -1:])  # unreachable: go as far as the box allows
    return move * torch.minimum(room, t)


def _diff_logits_grads(model, x: torch.Tensor, y: torch.Tensor, cand: torch.Tensor):
    """f_l − f_y (N, k) and their input gradients (N, k, D) for the candidate classes l."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x).float()
        diff = logits.gather(1, cand) - logits.gather(1, y[:, None])  # (N, k)
        grads = [torch.autograd.grad(diff[:, j].sum(), x, retain_graph=j < cand.shape[1] - 1)[0]
                 for j in range(cand.shape[1])]
    return diff.detach(), torch.stack(grads, 1).flatten(2)


def _fab_step(model, x1, x0, y, cand, p: dict) -> torch.Tensor:
    """One FAB iteration from x1 (N, 3, H, W) with clean images x0; returns the new x1."""
    n = len(x1)
    df, dg = _diff_logits_grads(model, x1, y, cand)
    dist = df.abs() / (dg.abs().sum(-1) + 1e-12)  # L∞ distance to each linearised boundary
    pick = dist.argmin(1)
    w = dg[torch.arange(n), pick].double()  # (N, D)
    f = df[torch.arange(n), pick].double()
    x1f, x0f = x1.flatten(1).double(), x0.flatten(1).double()
    b = (w * x1f).sum(1) - f  # hyperplane w·z = b: linearised f_l − f_y = 0
    d = linf_hyperplane_step(torch.cat([x1f, x0f]), torch.cat([w, w]), torch.cat([b, b]))
    d1, d2 = d[:n], d[n:]
    a1 = d1.abs().amax(1, keepdim=True).clamp_min(1e-8)
    a2 = d2.abs().amax(1, keepdim=True).clamp_min(1e-8)
    alpha = (a1 / (a1 + a2)).clamp(0.0, p["alpha_max"])
    mixed = (x1f + p["eta"] * d1) * (1 - alpha) + (x0f + p["eta"] * d2) * alpha
    return mixed.clamp(0.0, 1.0).float().view_as(x1)


def fab_core(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, cfg: AttackConfig,
             scan=None) -> CoreOutput:
    """Core of untargeted FAB-L∞ (Croce & Hein 2020) for :func:`~sdsgsm.attacks.base.run_method`:
    T = cfg.steps iterations, a sample counts only if its smallest L∞ found is ≤ cfg.eps.

    Args: model (B, 3, H, W) in [0, 1] -> (B, K); x (N, 3, H, W) float32 in [0, 1]; y (N,)
    the labels attacked; clean (N, K) clean logits (pick the candidate classes). ``scan`` is
    ignored (not a spatial method). Returns x_adv and the scalar ε map; |x_adv − x| ≤ ε.
    """
    p = fab_params(cfg)
    n = len(x)
    masked = clean.clone()
    masked[torch.arange(n), y] = float("-inf")
    cand = masked.topk(min(p["n_classes"], clean.shape[1] - 1), dim=1).indices  # (N, k), all ≠ y
    best = torch.where(clean.argmax(1) != y, 0.0, float("inf")).to(x.device)  # (N,)
    adv, x1 = x.clone(), x.clone()
    for _ in range(cfg.steps):
        x1 = _fab_step(model, x1, x, y, cand, p)
        with torch.inference_mode():
            is_adv = model(x1).argmax(1) != y
        dist = (x1 - x).flatten(1).abs().amax(1)
        better = is_adv & (dist < best)
        adv[better], best[better] = x1[better], dist[better]
        x1 = torch.where(is_adv[:, None, None, None], x + p["beta"] * (x1 - x), x1)
    ok = (best <= cfg.eps)[:, None, None, None]
    x_adv = torch.where(ok, x + (adv - x).clamp(-cfg.eps, cfg.eps), x).clamp(0.0, 1.0)
    return CoreOutput(x_adv, scalar_budget(x, cfg.eps))
