"""SmoothFool (Dabouei, Soleymani, Dawson, Nasrabadi, WACV 2020): smooth minimum-L2 perturbations.

Implemented from the paper (its authors' script carries no licence and is not used):

* Algorithm 2: from x_0 = x, while c(x_i) = c(x) and i < N (the iteration cap):
  an L2-DeepFool run from x_i gives x_p (Moosavi-Dezfooli et al. 2016, overshoot 0.02, the 10
  most likely other classes); w = ∇f_{c(x_p)}(x_p) − ∇f_{c(x)}(x_p) (eq. 8); w̃ = g ∗ w;
  r = [wᵀ(x_p − x_i) / wᵀw̃] · w̃ (eq. 7, the smooth projection on the linearised boundary);
  r ← SmoothClip(x_i, r, g, ε); x_{i+1} = x_i + r.
* Algorithm 1, SmoothClip (eq. 9–11): while x + r leaves [0, 1], m₀ = 1[x + r < 0] ∗ g,
  m₁ = 1[x + r > 1] ∗ g, r ← r − ε·(max(x + r − 1)·m₁ + min(x + r)·m₀). The update shrinks the
  largest violation by a factor (1 − ε·m) per round, so it approaches [0, 1] only geometrically
  and never exactly: we stop once the largest violation is at most ``CLIP_TOL`` (half an 8-bit
  grey level) or after ``CLIP_ROUNDS`` rounds, and clip the residue per pixel so x_adv ∈ [0, 1].
* g: Gaussian with σ_g (width 5σ_g, default σ_g = 2, the paper's Table 1), uniform k×k or linear
  k×k, applied per channel (sdsgsm/smoothing.py).

The attacked class c(x) is the label run_method passes (true label where known, else the clean
prediction). A sample still classified as c(x) after N iterations is returned at its last iterate
and counts as not fooled ("not fooled within N iterations"). Unbounded (minimum-norm): the budget
map is the realised per-sample L∞, like DeepFool and CW.
"""

from __future__ import annotations

import torch

from sdsgsm.attacks.base import AttackConfig, CoreOutput
from sdsgsm.smoothing import blur, kernel_1d

DEEPFOOL = {"max_iter": 50, "overshoot": 0.02, "nb_candidates": 10}
CLIP_ROUNDS = 200
CLIP_TOL = 0.5 / 255  # half an 8-bit grey level


def smoothfool_params(cfg: AttackConfig) -> dict:
    """The parameters SmoothFool runs with for ``cfg`` (recorded in config.json)."""
    g = {"kernel": cfg.sf_kernel, **({"sigma_g": cfg.sigma_g} if cfg.sf_kernel == "gaussian" else {"k": cfg.sf_size})}
    return {"implementation": "sdsgsm.attacks.smoothfool (from the paper)", "g": g,
            "smoothclip_eps": cfg.sf_clip_eps, "max_iter": cfg.sf_max_iter, "smoothclip_rounds": CLIP_ROUNDS,
            "smoothclip_tol": CLIP_TOL,
            "deepfool": DEEPFOOL}


def smoothing_kernel(cfg: AttackConfig, device=None) -> torch.Tensor:
    """The 1-D factor of g for ``cfg`` (Gaussian σ_g, or uniform / linear of side sf_size)."""
    return kernel_1d(cfg.sf_kernel, cfg.sigma_g, cfg.sf_size, device=device)


def smooth_clip(x: torch.Tensor, r: torch.Tensor, g1d: torch.Tensor, eps: float) -> torch.Tensor:
    """SmoothClip (SmoothFool Algorithm 1, eq. 9–11) of perturbation r for images x (N, C, H, W).

    Per sample, the out-of-range masks are blurred with g and r moves against the largest
    violation; once x + r is inside [0, 1] nothing changes (a no-op for an in-range r).
    Returns r_c with x + r_c ∈ [0, 1] (residue below CLIP_TOL, or after CLIP_ROUNDS, clipped per pixel).
    """
    r = r.clone()
    for _ in range(CLIP_ROUNDS):
        z = x + r
        over = (z - 1).flatten(1).amax(1).clamp_min(0)  # (N,) largest violation above 1
        under = z.flatten(1).amin(1).clamp_max(0)  # (N,) most negative value
        if float(torch.maximum(over, -under).max()) <= CLIP_TOL:
            break
        m1, m0 = blur(torch.cat([(z > 1), (z < 0)]).to(r.dtype), g1d).chunk(2)  # eq. 9–10, blurred by g
        r = r - eps * (over.view(-1, 1, 1, 1) * m1 + under.view(-1, 1, 1, 1) * m0)
    return (x + r).clamp(0.0, 1.0) - x


def _class_diff_grads(model, x: torch.Tensor, y: int, classes: torch.Tensor):
    """f_k(x) − f_y(x) (k,) and their input gradients (k, C, H, W) for the classes k, in one batched pass."""
    xs = x.detach().expand(len(classes), *x.shape[1:]).clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xs).float()
        idx = torch.arange(len(classes), device=x.device)
        diff = logits[idx, classes] - logits[idx, y]
        (grad,) = torch.autograd.grad(diff.sum(), xs)
    return diff.detach(), grad


def deepfool_l2(model, x: torch.Tensor, y: int) -> tuple[torch.Tensor, int]:
    """L2-DeepFool (Moosavi-Dezfooli et al. 2016) from x (1, C, H, W): (x_p in [0, 1], the class l̂
    whose linearised boundary it crossed, or was heading to when the iterations ran out)."""
    with torch.no_grad():
        logits = model(x).float()[0].clone()
    logits[y] = float("-inf")
    cand = logits.topk(min(DEEPFOOL["nb_candidates"], len(logits) - 1)).indices
    r_tot, target, xp = torch.zeros_like(x), int(cand[0]), x
    for _ in range(DEEPFOOL["max_iter"]):
        xp = (x + (1 + DEEPFOOL["overshoot"]) * r_tot).clamp(0.0, 1.0)
        with torch.no_grad():
            pred = int(model(xp).argmax(1))
        if pred != y:
            return xp, pred
        diff, grads = _class_diff_grads(model, xp, y, cand)
        norms = grads.flatten(1).norm(dim=1).clamp_min(1e-12)
        best = int((diff.abs() / norms).argmin())
        target = int(cand[best])
        r_tot = r_tot + (diff[best].abs() + 1e-4) / norms[best] ** 2 * grads[best:best + 1]
    return xp, target


def smoothfool_one(model, x: torch.Tensor, y: int, g1d: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    """SmoothFool (Algorithm 2) on one image x (1, C, H, W) with attacked class y: the final iterate."""
    xi = x.clone()
    for _ in range(cfg.sf_max_iter):
        with torch.no_grad():
            if int(model(xi).argmax(1)) != y:
                break
        xp, target = deepfool_l2(model, xi, y)
        _, w = _class_diff_grads(model, xp, y, torch.tensor([target], device=x.device))  # eq. 8
        w_s = blur(w, g1d)  # w̃ = g ∗ w
        denom = float((w * w_s).sum())
        if abs(denom) < 1e-30:
            break  # w̃ orthogonal to w: no smooth projection exists
        r = float((w * (xp - xi)).sum()) / denom * w_s  # eq. 7
        xi = xi + smooth_clip(xi, r, g1d, cfg.sf_clip_eps)
    return xi.detach()


def smoothfool_core(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, cfg: AttackConfig,
                    scan=None) -> CoreOutput:
    """Core of SmoothFool for :func:`~sdsgsm.attacks.base.run_method`, one sample at a time (so a
    sample's result does not depend on its batch).

    Args: model (B, 3, H, W) in [0, 1] -> (B, K); x (N, 3, H, W) float32 in [0, 1]; y (N,) the
    labels attacked; clean (N, K) unused; ``scan`` is ignored. Returns x_adv ∈ [0, 1] and the
    realised per-sample L∞ as the budget map (N, 1, H, W).
    """
    g1d = smoothing_kernel(cfg, x.device)
    x_adv = torch.cat([smoothfool_one(model, x[i:i + 1], int(y[i]), g1d, cfg) for i in range(len(x))])
    budget = (x_adv - x).flatten(1).abs().amax(1).view(-1, 1, 1, 1).expand_as(x[:, :1]).clone()
    return CoreOutput(x_adv, budget)
