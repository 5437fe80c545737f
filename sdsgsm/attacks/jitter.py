"""Jitter (Schwinn et al. 2021, "Exploring misclassifications of robust neural networks to
enhance adversarial attacks") — our implementation; IBM ART 1.20.1 has no Jitter.

A PGD-style L∞ attack (random start, T sign steps of size α, projection on the ε-box and
[0, 1], as in our FGSM-family loop) whose loss replaces cross-entropy by

    ẑ = softmax(s · z / ‖z‖∞) + σ·N(0, I),      L = mean_k (ẑ_k − onehot(y)_k)²,

and, for samples that are already misclassified, L / ‖x_t − x‖∞ (so the attack keeps
pushing while preferring smaller perturbations). Defaults s = 10, σ = 0.1, random start,
as in the authors' code and torchattacks' ``Jitter``. The Gaussian jitter and the random
start come from a generator seeded with ``cfg.seed``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sdsgsm.attacks.base import AttackConfig, CoreOutput, scalar_budget
from sdsgsm.attacks.fgsm_family import FamilySpec, project, step_size

JITTER_CONSTANTS = {"scale": 10.0, "std": 0.1, "random_start": True}


def jitter_params(cfg: AttackConfig) -> dict:
    """The parameters Jitter runs with for ``cfg`` (recorded in config.json)."""
    alpha, steps = step_size(cfg, FamilySpec(multi_step=True), cfg.eps)
    return {"implementation": "sdsgsm.attacks.jitter (ART 1.20.1 has no Jitter)", "norm": "inf",
            "eps": cfg.eps, "alpha": alpha, "max_iter": steps, **JITTER_CONSTANTS, "seed": cfg.seed}


def jitter_loss(logits: torch.Tensor, y: torch.Tensor, delta_inf: torch.Tensor, noise: torch.Tensor,
                scale: float) -> torch.Tensor:
    """Per-sample Jitter loss (N,) from logits (N, K), labels (N,), ‖δ‖∞ (N,) and noise (N, K)."""
    z_hat = F.softmax(scale * logits / logits.abs().amax(1, keepdim=True).clamp_min(1e-12), dim=1) + noise
    loss = (z_hat - F.one_hot(y, logits.shape[1]).float()).pow(2).mean(1)
    wrong = (logits.argmax(1) != y) & (delta_inf > 0)
    return torch.where(wrong, loss / delta_inf.clamp_min(1e-12), loss)


def jitter_core(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, cfg: AttackConfig,
                scan=None) -> CoreOutput:
    """Core of Jitter for :func:`~sdsgsm.attacks.base.run_method`: ε = cfg.eps, α and T as the
    FGSM-family's multi-step methods, projection as eq. 14–15.

    Args: model (B, 3, H, W) in [0, 1] -> (B, K); x (N, 3, H, W) float32 in [0, 1]; y (N,)
    the labels attacked; clean (N, K) unused; ``scan`` is ignored. Returns x_adv and the
    scalar ε budget map; |x_adv − x| ≤ ε and x_adv ∈ [0, 1].
    """
    p = jitter_params(cfg)
    budget = scalar_budget(x, cfg.eps)  # (N, 1, H, W)
    gen = torch.Generator(device=x.device).manual_seed(cfg.seed)
    x_adv = x.clone()
    if p["random_start"]:
        noise = torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1
        x_adv = project(x, x + noise * budget, budget)
    for _ in range(p["max_iter"]):
        x_in = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(x_in).float()
            noise = p["std"] * torch.randn(logits.shape, generator=gen, device=x.device)
            delta_inf = (x_adv - x).flatten(1).abs().amax(1)
            loss = jitter_loss(logits, y, delta_inf, noise, p["scale"]).sum()
            (grad,) = torch.autograd.grad(loss, x_in)
        x_adv = project(x, x_adv + p["alpha"] * grad.sign(), budget)
    return CoreOutput(x_adv, budget)
