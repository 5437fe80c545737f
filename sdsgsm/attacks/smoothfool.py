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

Passes: each DeepFool iteration runs one forward pass at its point, which gives the label check
(Algorithm 2's while condition at x_i is DeepFool's first check, since DeepFool starts at x_i), the
logits and, by one backward pass per candidate class on that graph, the class gradients; w (eq. 8) is
the gradient of the last pass. The numbers are those of running each check and gradient separately
(the candidate gradients come out bit-equal to a batch of copies on EfficientNet-Lite0).
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
    violation; a sample stops moving once its largest violation is at most CLIP_TOL (so a sample's
    rounds do not depend on the rest of its batch; an in-range r is a no-op).
    Returns r_c with x + r_c ∈ [0, 1] (residue below CLIP_TOL, or after CLIP_ROUNDS, clipped per pixel).
    """
    r = r.clone()
    for _ in range(CLIP_ROUNDS):
        z = x + r
        over = (z - 1).flatten(1).amax(1).clamp_min(0)  # (N,) largest violation above 1
        under = z.flatten(1).amin(1).clamp_max(0)  # (N,) most negative value
        todo = torch.maximum(over, -under) > CLIP_TOL
        if not bool(todo.any()):
            break
        idx = todo.nonzero()[:, 0]
        zt = z[idx]
        m1, m0 = blur(torch.cat([(zt > 1), (zt < 0)]).to(r.dtype), g1d).chunk(2)  # eq. 9–10, blurred by g
        r[idx] = r[idx] - eps * (over[idx].view(-1, 1, 1, 1) * m1 + under[idx].view(-1, 1, 1, 1) * m0)
    return (x + r).clamp(0.0, 1.0) - x


def _class_diff_grads(model, x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor):
    """One forward pass of x (N, C, H, W) and the input gradients of f_k − f_y for every column of
    ``classes`` (N, J): (logits (N, K), f_k − f_y (N, J), gradients (N, J, C, H, W)).

    One backward pass per column on the shared graph (each sample's gradient is independent of the
    rest of its batch): J backward passes instead of a forward and backward pass of J copies."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x).float()
        diff = logits.gather(1, classes) - logits.gather(1, y[:, None])
        grads = [torch.autograd.grad(diff[:, j].sum(), x, retain_graph=j < classes.shape[1] - 1)[0]
                 for j in range(classes.shape[1])]
    return logits.detach(), diff.detach(), torch.stack(grads, 1)


def deepfool_l2(model, x: torch.Tensor, y: torch.Tensor):
    """L2-DeepFool (Moosavi-Dezfooli et al. 2016) from the images x (N, C, H, W) with classes y (N,),
    run for all of them at once (each sample's iterations are its own).

    Returns (x_p (N, C, H, W) in [0, 1]; l̂ (N,) the class whose linearised boundary x_p crossed, or
    was heading to when the iterations ran out; w (N, C, H, W) = ∇f_l̂(x_p) − ∇f_y(x_p), SmoothFool
    eq. 8; start (N,) bool, x itself is not classified as y — nothing to attack). The gradients come
    from the forward pass that checks x_p's label, so no pass is repeated.
    """
    n = len(x)
    xp, target, w = x.clone(), torch.zeros(n, dtype=torch.long, device=x.device), torch.zeros_like(x)
    r_tot = torch.zeros_like(x)
    cand = None
    start = torch.zeros(n, dtype=torch.bool, device=x.device)
    live = torch.arange(n, device=x.device)  # samples still iterating
    for it in range(DEEPFOOL["max_iter"]):
        xl = (x[live] + (1 + DEEPFOOL["overshoot"]) * r_tot[live]).clamp(0.0, 1.0)
        xp[live] = xl
        yl = y[live]
        xg = xl.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xg).float()
            pred = logits.argmax(1)
            if cand is None:  # at x: the most likely other classes
                masked = logits.detach().clone()
                masked[torch.arange(n, device=x.device), y] = float("-inf")
                cand = masked.topk(min(DEEPFOOL["nb_candidates"], logits.shape[1] - 1), dim=1).indices
            cl = cand[live]
            done = pred != yl
            if it == 0:
                start[live] = done
            # column j of the backward passes: the candidates; a sample that crossed needs only w at
            # its new class (column 0)
            cols = torch.where(done[:, None], pred[:, None], cl) if it > 0 else cl
            diff = logits.gather(1, cols) - logits.gather(1, yl[:, None])
            n_cols = 1 if bool(done.all()) else cols.shape[1]
            if it == 0 and bool(done.all()):
                n_cols = 0
            grads = [torch.autograd.grad(diff[:, j].sum(), xg, retain_graph=j < n_cols - 1)[0]
                     for j in range(n_cols)]
        if it > 0:
            fin = live[done]
            target[fin], w[fin] = pred[done], grads[0][done]
        if bool(done.all()):
            return xp, target, w, start
        keep = ~done
        grads = torch.stack(grads, 1)[keep]  # (M, J, C, H, W)
        diff, cl, idx = diff.detach()[keep], cl[keep], live[keep]
        norms = grads.flatten(2).norm(dim=2).clamp_min(1e-12)
        best = (diff.abs() / norms).argmin(1)
        ar = torch.arange(len(idx), device=x.device)
        gb, db, nb = grads[ar, best], diff[ar, best], norms[ar, best]
        target[idx], w[idx] = cl[ar, best], gb
        r_tot[idx] = r_tot[idx] + ((db.abs() + 1e-4) / nb ** 2).view(-1, 1, 1, 1) * gb
        live = idx
    return xp, target, w, start


def smoothfool_batch(model, x: torch.Tensor, y: torch.Tensor, g1d: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    """SmoothFool (Algorithm 2) on images x (N, C, H, W) with attacked classes y (N,), all at once:
    each sample iterates until it leaves y or reaches the cap; returns the final iterates."""
    xi = x.clone()
    live = torch.arange(len(x), device=x.device)
    for _ in range(cfg.sf_max_iter):
        xp, target, w, start = deepfool_l2(model, xi[live], y[live])  # start: c(x_i) ≠ y, stop
        go = ~start
        live, xp, w = live[go], xp[go], w[go]
        if not len(live):
            break
        xl = xi[live]
        w_s = blur(w, g1d)  # w̃ = g ∗ w
        coef, keep = [], []
        for j in range(len(live)):  # eq. 7's scalar ρ per sample
            denom = float((w[j:j + 1] * w_s[j:j + 1]).sum())
            keep.append(abs(denom) >= 1e-30)  # else w̃ ⟂ w: no smooth projection exists, stop
            coef.append(float((w[j:j + 1] * (xp[j:j + 1] - xl[j:j + 1])).sum()) / denom if keep[-1] else 0.0)
        keep_t = torch.tensor(keep, device=x.device)
        live, xl, w_s = live[keep_t], xl[keep_t], w_s[keep_t]
        if not len(live):
            break
        r = torch.cat([c * w_s[j:j + 1] for j, c in enumerate(k for k, ok in zip(coef, keep) if ok)])  # eq. 7
        xi[live] = xl + smooth_clip(xl, r, g1d, cfg.sf_clip_eps)
    return xi.detach()


def smoothfool_core(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, cfg: AttackConfig,
                    scan=None) -> CoreOutput:
    """Core of SmoothFool for :func:`~sdsgsm.attacks.base.run_method`, one sample at a time: a batched
    forward pass rounds differently from a single one, and SmoothClip's stopping test and DeepFool's
    label checks can turn that 1e-7 into 1e-4, so a sample's result would depend on its batch.
    :func:`smoothfool_batch` takes several at once where that does not matter.

    Args: model (B, 3, H, W) in [0, 1] -> (B, K); x (N, 3, H, W) float32 in [0, 1]; y (N,) the
    labels attacked; clean (N, K) unused; ``scan`` is ignored. Returns x_adv ∈ [0, 1] and the
    realised per-sample L∞ as the budget map (N, 1, H, W).
    """
    g1d = smoothing_kernel(cfg, x.device)
    y = y.to(x.device)
    x_adv = torch.cat([smoothfool_batch(model, x[i:i + 1], y[i:i + 1], g1d, cfg) for i in range(len(x))])
    budget = (x_adv - x).flatten(1).abs().amax(1).view(-1, 1, 1, 1).expand_as(x[:, :1]).clone()
    return CoreOutput(x_adv, budget)
