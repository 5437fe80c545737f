"""The FGSM family in one loop (paper §3.4–§3.7).

Every method is a ``FamilySpec``: direction sign or tanh, scalar or spatial budget, and
optional random start (PGD), random sign pre-step (R+FGSM), momentum with L1-normalised
gradient (MI-FGSM), Nesterov look-ahead (NI-FGSM) and Gaussian-smoothed gradient (TI-FGSM).
Each step (eq. 7, 12–15):

    x' = x_t + α·d,   d = sign(g) or tanh(ω·ĝ)
    δ  = clip(x' − x, −E, E)          spatial projection, eq. 14
    x_{t+1} = clip(x + δ, 0, 1)       validity projection, eq. 15

The loss is cross-entropy summed over the batch, so a sample's step does not depend on
the batch size. Gradients are taken w.r.t. the input only, in float32. With ``eot_samples`` = n > 1 and a
randomised model (a random defence in front of it), g is averaged over n draws (EOT,
Athalye et al. ICML 2018; :func:`input_gradient`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sdsgsm.attacks.base import AttackConfig, CoreOutput, scalar_budget
from sdsgsm.budget import budget_map
from sdsgsm.occlusion import ScanResult, occlusion_scan


@dataclass(frozen=True)
class FamilySpec:
    """How one named method uses the shared loop."""

    direction: str = "sign"        # 'sign' | 'tanh'
    spatial: bool = False          # budget map E from the zero-out scan (SD-*) or scalar ε
    multi_step: bool = False       # False: always one step with α = ε_top (FGSM-style)
    random_start: bool = False     # PGD: uniform start in [−E, E]
    rand_prestep: bool = False     # R+FGSM: x + (ε/2)·sign(N(0, I)) before the step(s)
    momentum: bool = False         # MI-FGSM
    nesterov: bool = False         # NI-FGSM (implies momentum)
    smooth: bool = False           # TI-FGSM Gaussian-smoothed gradient

    @property
    def deterministic(self) -> bool:
        """No random draw (random start or pre-step): x_adv is a function of x, y and cfg alone."""
        return not (self.random_start or self.rand_prestep)


def normalise_gradient(g: torch.Tensor, mode: str) -> torch.Tensor:
    """ĝ for the tanh direction, per sample.

    ``max``: g / max|g| so ĝ ∈ [−1, 1] and ω → ∞ gives sign(g); ``pow10``: g·10^(−⌊log10 max|g|⌋),
    the authors' rescaling (equal to ``max`` up to a factor in [1, 10)); ``none``: g as is.
    """
    if mode == "none":
        return g
    peak = g.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-30)  # (N, 1, 1, 1)
    if mode == "max":
        return g / peak
    return g * torch.pow(10.0, -torch.floor(torch.log10(peak)))


def direction(g: torch.Tensor, spec: FamilySpec, cfg: AttackConfig) -> torch.Tensor:
    """d = sign(g) (FGSM) or tanh(ω·ĝ) (SGSM, eq. 6)."""
    if spec.direction == "sign":
        return g.sign()
    return torch.tanh(cfg.omega * normalise_gradient(g, cfg.grad_norm))


def gaussian_kernel(size: int, sigma: float, channels: int, device) -> torch.Tensor:
    """Depthwise (C, 1, k, k) normalised Gaussian kernel for TI-FGSM."""
    ax = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    k1 = torch.exp(-0.5 * (ax / sigma) ** 2)
    k2 = torch.outer(k1, k1)
    return (k2 / k2.sum()).expand(channels, 1, size, size).contiguous()


def input_gradient(model, x: torch.Tensor, y: torch.Tensor, samples: int = 1) -> torch.Tensor:
    """∇_x Σ_n CE(f(x_n), y_n) in float32 — summed loss.

    EOT (Athalye, Carlini & Wagner, ICML 2018, §4.3; Athalye et al., ICML 2018, "Synthesizing robust
    adversarial examples"): when ``model`` is randomised (its ``random`` attribute is true, e.g. a
    :class:`~sdsgsm.defences.Defended` random resize-and-pad, which draws afresh on every call) and
    ``samples`` = n > 1, the gradient is the Monte-Carlo estimate of ∇_x E_T[L(f(T(x)))]:
    g = (1/n) Σ_{i=1..n} ∇_x Σ_n CE(f(T_i(x_n)), y_n), one draw T_i per forward pass, in order. A
    deterministic model is differentiated once (n equal gradients average to that one).
    """
    n = samples if getattr(model, "random", False) else 1
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
        x = x.detach().float().clone().requires_grad_(True)  # normal tensors even under inference_mode
        total = None
        for _ in range(n):
            loss = F.cross_entropy(model(x).float(), y.clone(), reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            total = grad if total is None else total + grad
    return total if n == 1 else total / n


def project(x: torch.Tensor, x_new: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Spatial then validity projection (eq. 14–15): clip(x + clip(x_new − x, −E, E), 0, 1)."""
    delta = torch.clamp(x_new - x, -budget, budget)
    return torch.clamp(x + delta, 0.0, 1.0)


def step_size(cfg: AttackConfig, spec: FamilySpec, eps_top: float) -> tuple[float, int]:
    """(α, T). Single-step methods (fgsm, sgsm, sd-fgsm) always use α = ε_top; iterative ones use
    cfg.alpha when given (also at T = 1), else ε_top for one step (ε/2 after R+FGSM's pre-step)
    and 2.5·ε_top/T for T > 1."""
    if not spec.multi_step:
        return eps_top, 1
    if cfg.alpha is not None:
        return cfg.alpha, cfg.steps
    if cfg.steps == 1:
        return (eps_top / 2 if spec.rand_prestep else eps_top), 1
    return 2.5 * eps_top / cfg.steps, cfg.steps


def _start(x: torch.Tensor, budget: torch.Tensor, spec: FamilySpec, eps_top: float,
           gen: torch.Generator) -> torch.Tensor:
    """Starting point: x, a uniform random point in the budget box (PGD), or R+FGSM's pre-step."""
    if spec.random_start:
        noise = torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1
        return project(x, x + noise * budget, budget)
    if spec.rand_prestep:
        noise = torch.randn(x.shape, generator=gen, device=x.device)
        return project(x, x + (eps_top / 2) * noise.sign(), budget)
    return x.clone()


def _spatial_budget(model, x, y, cfg, scan: ScanResult | None):
    """Scan (unless cached) and build E (N, 1, H, W) and the region mask."""
    if scan is None:
        scan = occlusion_scan(model, x, cfg.scan, y=y)
    budget, region = budget_map(scan.grid, scan.boxes, x.shape[2], x.shape[3], cfg.budget)
    return scan, budget, region


@dataclass
class Trajectory:
    """What the loop records when asked (``family_core(..., record=Trajectory())``; off by default,
    so benchmarks run the plain loop): the iterates x_0 … x_T (eq. 12–15) and their logits f(x_t).

    states[t] (N, 3, H, W) in [0, 1], detached copies, x_T equal to the attack's x_adv bit for bit;
    logits[t] (N, K) float32, taken without gradients after the step (never fed back into it).
    """

    states: list[torch.Tensor] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)

    def add(self, model, x_t: torch.Tensor) -> None:
        with torch.inference_mode():
            self.logits.append(model(x_t).float())  # (N, K)
        self.states.append(x_t.detach().clone())  # (N, 3, H, W)


def family_core(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, cfg: AttackConfig,
                scan: ScanResult | None, *, spec: FamilySpec, record: Trajectory | None = None) -> CoreOutput:
    """Core of one FGSM-family method for :func:`~sdsgsm.attacks.base.run_method` (paper
    Algorithm 1 for the SD-* members: scan eq. 1–2, budget map eq. 11, steps eq. 12–15).

    Args: model (B, 3, H, W) in [0, 1] -> (B, K) logits; x (N, 3, H, W) float32 in [0, 1];
    y (N,) the labels attacked; clean (N, K) clean logits (unused); scan a cached ScanResult
    of the same images and ``cfg.scan`` (spatial methods skip the zero-out scan), or None.
    Returns x_adv with |x_adv − x| ≤ E and x_adv ∈ [0, 1] elementwise, E (N, 1, H, W) and,
    for the spatial methods, the scan used and the region R (N, nh, nw). ``record``: a
    :class:`Trajectory` to fill with every iterate x_0 … x_T and its logits (None: record nothing).
    """
    if spec.spatial:
        scan, budget, region = _spatial_budget(model, x, y, cfg, scan)
        return CoreOutput(_loop(model, x, y, budget, cfg, spec, cfg.budget.eps_strong, record), budget, scan,
                          region)
    budget = scalar_budget(x, cfg.eps)  # (N, 1, H, W)
    return CoreOutput(_loop(model, x, y, budget, cfg, spec, cfg.eps, record), budget)


def _loop(model, x, y, budget, cfg: AttackConfig, spec: FamilySpec, eps_top: float,
          record: Trajectory | None = None) -> torch.Tensor:
    """The shared iteration (eq. 12–15) with momentum / Nesterov / TI switches; ``record`` (if given)
    receives x_0 (the start: x, PGD's random start or R+FGSM's pre-step) and every x_{t+1}."""
    alpha, steps = step_size(cfg, spec, eps_top)
    gen = torch.Generator(device=x.device).manual_seed(cfg.seed)
    x_adv = _start(x, budget, spec, eps_top, gen)
    kernel = gaussian_kernel(cfg.ti_kernel, cfg.ti_sigma, x.shape[1], x.device) if spec.smooth else None
    mom = torch.zeros_like(x)
    if record is not None:
        record.add(model, x_adv)
    for _ in range(steps):
        x_in = x_adv + alpha * cfg.decay * mom if spec.nesterov else x_adv
        g = input_gradient(model, x_in, y, cfg.eot_samples)
        if kernel is not None:
            g = F.conv2d(g, kernel, padding=cfg.ti_kernel // 2, groups=x.shape[1])
        if spec.momentum or spec.nesterov:
            g = cfg.decay * mom + g / g.abs().sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            mom = g
        x_adv = project(x, x_adv + alpha * direction(g, spec, cfg), budget)
        if record is not None:
            record.add(model, x_adv)
    return x_adv.detach()
