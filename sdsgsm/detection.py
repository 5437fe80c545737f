"""Detecting adversarial images by feature squeezing, and the adaptive attack that evades the detector.

Feature squeezing (Xu, Evans & Qi, NDSS 2018, "Feature squeezing: detecting adversarial examples in deep
neural networks", §3 and §5): a legitimate image's prediction barely moves when the image is *squeezed*
(fewer colour bits, a median filter), an adversarial one's moves a lot. With p(x) = softmax(f(x)) and
squeezers T_1 … T_k, the detector's score is the joint (maximum) L1 distance

    score(x) = max_i ‖p(x) − p(T_i(x))‖₁  ∈ [0, 2]                                   (Xu et al. §5.1)

and x is flagged adversarial when score(x) > t. The threshold t is set on clean images at a stated
false-positive rate (FPR; Xu et al. use 5 %): with s_(1) ≥ s_(2) ≥ … the clean scores in decreasing
order and k = ⌊FPR·N⌋, t = s_(k+1), so at most k of those N clean images score strictly above t — the
FPR *on the images used to set t* is at most the stated one by construction (on other images it is
an estimate, and with few images a coarse one).

The squeezers are the registry's own defences (:mod:`sdsgsm.defences`): ``bitdepth`` (ART
FeatureSqueezing, ``bit_depth`` bits) and ``median`` (ART SpatialSmoothing, ``median_window``), both
from the one :class:`~sdsgsm.defences.DefenceConfig`.

The adaptive attack (Carlini & Wagner, AISec 2017, "Adversarial examples are not easily detected:
bypassing ten detection methods"): the attacker knows the detector and optimises against it too. Ours
is L∞ PGD without random start (Madry et al. 2018; the step and projection of
:mod:`sdsgsm.attacks.fgsm_family`, eq. 12–15) ascending the loss

    L(x') = Σ_n min(max_{j≠y_n} Z_j(x'_n) − Z_{y_n}(x'_n), 0) − λ · Σ_n score(x'_n)

with Z = f(x') the logits: C&W's margin term with confidence κ = 0 (it pulls an image across the decision
boundary and is flat once it is misclassified), minus λ times the detector score — a classification term
plus the detector, NOT an attack on the squeezed models' ensemble. The squeezers are not
differentiable, so ∇ score passes through them by BPDA (identity backward, Athalye, Carlini &
Wagner, ICML 2018, §4.1): ∂p(T_i(x'))/∂x' is taken as ∇_z p(z) at z = T_i(x').
Per image the attack returns the last iterate that is misclassified *and* scores at most t (evades),
else its final iterate (as C&W keep their best adversarial example).

Pure functions, no state; ``model`` maps (B, 3, H, W) in [0, 1] to (B, K) logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sdsgsm.attacks.base import AttackConfig, AttackResult, CoreOutput, run_method, scalar_budget
from sdsgsm.attacks.fgsm_family import FamilySpec, project, step_size
from sdsgsm.defences import DefenceConfig, defend, get_defence, transform
from sdsgsm.params import DETECTION_BITS, DETECTION_PARAMS, check

SQUEEZERS = ("bitdepth", "median")  # Xu et al.'s two squeezers for colour images available here
ADAPTIVE_NAME = "pgd+detector"  # the adaptive attack's name in results


@dataclass(frozen=True)
class DetectionConfig:
    """The detector: squeezers (registry defence names, deterministic ones), the false-positive rate its
    threshold is set at (``fpr``), the adaptive attack's λ (``detect_lambda``, per unit of logit margin) and
    the squeezers' parameters (``defence``: bit_depth, by default DETECTION_BITS, and median_window). Checked on
    creation."""

    squeezers: tuple[str, ...] = SQUEEZERS
    fpr: float = DETECTION_PARAMS["fpr"].default
    detect_lambda: float = DETECTION_PARAMS["detect_lambda"].default
    defence: DefenceConfig = field(default_factory=lambda: DefenceConfig(bit_depth=DETECTION_BITS))

    def __post_init__(self):
        check("fpr", self.fpr, DETECTION_PARAMS)
        check("detect_lambda", self.detect_lambda, DETECTION_PARAMS)
        if not self.squeezers:
            raise ValueError("A feature-squeezing detector needs at least one squeezer (e.g. bitdepth,median).")
        for name in self.squeezers:
            d = get_defence(name)
            if name == "none" or d.random:
                raise ValueError(f"{name!r} cannot be a squeezer; use deterministic defences such as bitdepth, median.")


def parse_squeezers(text: str | list[str]) -> tuple[str, ...]:
    """'bitdepth,median' or a list -> registry names in order, duplicates dropped (checked by DetectionConfig)."""
    names = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))


# ----------------------------------------------------------------------------- the score
def squeeze_distances(model, x: torch.Tensor, cfg: DetectionConfig, logits: torch.Tensor | None = None,
                      bpda: bool = False) -> torch.Tensor:
    """‖p(x) − p(T_i(x))‖₁ per image and squeezer: x (N, 3, H, W) -> (N, k) float32, k = len(cfg.squeezers).

    ``logits`` f(x) if already computed; ``bpda``: keep the graph (BPDA through the squeezers) for the
    adaptive attack, else computed without gradients."""
    with torch.set_grad_enabled(bpda and torch.is_grad_enabled()):
        p = F.softmax((model(x) if logits is None else logits).float(), dim=1)
        cols = []
        for name in cfg.squeezers:
            z = defend(x, name, cfg.defence) if bpda else transform(x, name, cfg.defence)
            cols.append((p - F.softmax(model(z).float(), dim=1)).abs().sum(1))
        return torch.stack(cols, 1)


def scores(model, x: torch.Tensor, cfg: DetectionConfig, batch_size: int = 16) -> torch.Tensor:
    """The joint score max_i ‖p(x) − p(T_i(x))‖₁ (Xu et al. §5.1) of x (N, 3, H, W): (N,) float32 in [0, 2],
    without gradients, ``batch_size`` images at a time."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(squeeze_distances(model, x[i:i + batch_size], cfg).amax(1))
    return torch.cat(out) if out else torch.zeros(0)


def threshold_at(clean_scores: torch.Tensor, fpr: float) -> float:
    """The threshold t for a false-positive rate ``fpr`` on these clean scores (N,): t = s_(k+1), the
    (k+1)-th largest, k = ⌊fpr·N⌋, so #{s > t} ≤ k ≤ fpr·N (ties at t are not flagged)."""
    s = torch.sort(clean_scores.detach().float().flatten(), descending=True).values
    if not len(s):
        raise ValueError("No clean images to set the detector's threshold on.")
    k = math.floor(fpr * len(s) + 1e-9)
    return float(s[min(k, len(s) - 1)])


def flagged(score: torch.Tensor, threshold: float) -> torch.Tensor:
    """x is flagged adversarial when score(x) > t: (N,) bool."""
    return score > threshold


# ----------------------------------------------------------------------------- the adaptive attack
def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{j≠y} Z_j − Z_y per row of logits (N, K): > 0 exactly when the prediction is not y. (N,)"""
    z_y = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(1) - z_y


def _adaptive_core(cfg_det: DetectionConfig, threshold: float):
    def core(model, x, y, clean, cfg: AttackConfig, scan) -> CoreOutput:
        alpha, steps = step_size(cfg, FamilySpec(multi_step=True), cfg.eps)
        budget = scalar_budget(x, cfg.eps)  # (N, 1, H, W)
        x_adv, best = x.clone(), x.clone()

        def keep(x_t, logits, score):
            evades = (logits.argmax(1) != y) & (score <= threshold)
            best[evades] = x_t[evades]
            return evades

        evaded = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for t in range(steps):
            with torch.inference_mode(False), torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
                xg = x_adv.detach().clone().requires_grad_(True)
                logits = model(xg).float()
                score = squeeze_distances(model, xg, cfg_det, logits, bpda=True).amax(1)  # (N,)
                loss = margin(logits, y).clamp_max(0.0).sum() - cfg_det.detect_lambda * score.sum()
                (g,) = torch.autograd.grad(loss, xg)
            if t > 0:  # x_0 = x is the clean image: never an adversarial example to keep
                evaded |= keep(xg.detach(), logits.detach(), score.detach())
            x_adv = project(x, x_adv + alpha * g.sign(), budget)
        with torch.no_grad():
            logits = model(x_adv).float()
            final = keep(x_adv, logits, squeeze_distances(model, x_adv, cfg_det, logits).amax(1))
        out = torch.where((evaded & ~final)[:, None, None, None], best, x_adv)
        return CoreOutput(out.detach(), budget)

    return core


def adaptive_attack(model, x: torch.Tensor, y: torch.Tensor | None, cfg: AttackConfig, det: DetectionConfig,
                    threshold: float) -> AttackResult:
    """The adaptive attack on the squeezing detector (module docstring): L∞ PGD of ε = ``cfg.eps``, T =
    ``cfg.steps``, α as the FGSM family's (``cfg.alpha`` or 2.5·ε/T), on min(margin, 0) − λ·score with BPDA
    through the squeezers; per image the last iterate that is misclassified with score ≤ ``threshold``, else the final
    one. x (N, 3, H, W) in [0, 1]; y (N,) labels (−1 / None: the clean prediction). Returns the
    :class:`~sdsgsm.attacks.base.AttackResult` of :func:`~sdsgsm.attacks.base.run_method` (named
    :data:`ADAPTIVE_NAME`; its logits are the undefended model's)."""
    return run_method(ADAPTIVE_NAME, _adaptive_core(det, threshold), model, x, y, cfg)


__all__ = ["ADAPTIVE_NAME", "DETECTION_BITS", "SQUEEZERS", "DetectionConfig", "adaptive_attack", "flagged",
           "parse_squeezers", "margin", "scores", "squeeze_distances", "threshold_at"]
