"""Pure computations behind the Learn page (paper §3, Fig. 1, Fig. 2, Proposition 1): no streamlit.

Everything here calls the attack code the app uses (the FGSM-family ``direction``,
``input_gradient``, ``run_method``, the zero-out operator's window masks, ``region_mask`` and
``budget_map``), so what a class sees is what the attack does, not a re-implementation.

* :func:`occlude`        Z_Ω x for one window and the top-5 before/after, Δ_Ω (Fig. 1, eq. 1–2);
* :func:`tanh_path`      tanh(ω·ĝ) as ω grows, from the gradient direction to the vertex sign(g) (Fig. 2);
* :func:`toy_example`    the paper's eq. 6 toy: tanh(ω·[−0.2, −0.05, 0, 0.05, 0.2]);
* :func:`saturation`     how much of |tanh(ω·ĝ)| over all pixels is saturated at a given ω;
* :func:`proposition1`   ‖δ_tanh‖₂ of the gain-matched tanh step against ‖δ_FGSM‖₂ (§3.5, App. A);
* :func:`replay`         one FGSM-family attack with its trajectory x_0 … x_T, loss and probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from sdsgsm.attacks import FAMILY_SPECS, AttackConfig, AttackResult, run_method
from sdsgsm.attacks.fgsm_family import FamilySpec, Trajectory, direction, family_core, input_gradient
from sdsgsm.budget import BudgetConfig, budget_map
from sdsgsm.experiments.report import top5_of_logits
from sdsgsm.occlusion import window_masks

SIGN, TANH = FamilySpec(direction="sign"), FamilySpec(direction="tanh")
PAPER_TOY = (-0.2, -0.05, 0.0, 0.05, 0.2)  # the 1-D gradient of §3.4's toy example
SATURATED = 0.95  # |tanh(ω·ĝ)| at or above this counts as saturated (ω·|ĝ| ≥ 1.83)
LINEAR = 0.3      # |tanh(u)| below this is the linear regime (tanh(u) within 3.2 % of u)


# ----------------------------------------------------------------------------- Fig. 1: one window zeroed out
def top5(model, x: torch.Tensor) -> list[dict]:
    """The model's top-5 on one image x (1, 3, H, W): [{'index', 'name', 'prob'}] (station 1)."""
    with torch.inference_mode():
        return top5_of_logits(model(x).float()[0], model.labels)


def occlude(model, x: torch.Tensor, box: tuple[int, int, int, int]) -> dict:
    """Zero out one window Ω (eq. 1) and measure what the model loses (eq. 2).

    Args: model (B, 3, H, W) in [0, 1] -> (B, K) logits; x (1, 3, H, W) in [0, 1]; box
    (top, left, h, w) in pixels. Returns {'occluded' (1, 3, H, W) Z_Ω x, 'delta' Δ_Ω =
    ‖f(x) − f(Z_Ω x)‖₂ (float32 full forward passes), 'before'/'after' top-5 lists of
    {'index', 'name', 'prob'}, 'p_top1_after' the probability of the clean top-1 class after}.
    """
    mask = window_masks(torch.tensor([box], device=x.device), x.shape[2], x.shape[3])  # (1, 1, H, W)
    occluded = x.masked_fill(mask, 0.0)
    with torch.inference_mode():
        logits = model(torch.cat([x, occluded])).float()  # (2, K)
    before, after = top5_of_logits(logits[0], model.labels), top5_of_logits(logits[1], model.labels)
    return {"occluded": occluded, "delta": float(torch.linalg.vector_norm(logits[0] - logits[1])),
            "before": before, "after": after,
            "p_top1_after": float(logits[1].softmax(0)[before[0]["index"]])}


# ----------------------------------------------------------------------------- Fig. 2: sign versus tanh
def _direction(g: torch.Tensor, spec: FamilySpec, omega: float, grad_norm: str) -> torch.Tensor:
    """The attack's own direction (eq. 6) on a flat gradient g (n,): sign(g) or tanh(ω·ĝ)."""
    cfg = replace(AttackConfig(), omega=omega, grad_norm=grad_norm)
    return direction(g.reshape(1, -1, 1, 1).float(), spec, cfg).reshape(-1)


def tanh_path(g, omegas, grad_norm: str = "max") -> dict:
    """tanh(ω·ĝ) for each ω (paper Fig. 2): small ω gives (nearly) ω·ĝ, the gradient direction;
    ω → ∞ gives the vertex sign(g) of the cube [−1, 1]ⁿ.

    Args: g (n,) gradient values (n = 2 or 3 for the pictures); omegas (k,) positive.
    Returns {'points' (k, n), 'sign' (n,), 'g_hat' (n,) ĝ = g / max|g| (grad_norm 'max')}.
    """
    g = torch.as_tensor(np.asarray(g, dtype=np.float32))
    points = np.stack([_direction(g, TANH, float(w), grad_norm).numpy() for w in omegas])
    peak = float(g.abs().max()) or 1.0
    return {"points": points, "sign": _direction(g, SIGN, 1.0, grad_norm).numpy(), "g_hat": (g / peak).numpy()}


def pick_pixels(grad: np.ndarray, quantiles=(1.0, 0.99, 0.9)) -> list[dict]:
    """Real gradient values for the cube pictures: for each quantile of |g| (1.0 = the largest) the
    value g at that rank, ĝ = g / max|g| over the whole image (what the attack's ``max``
    normalisation gives that pixel) and where it is:
    [{'value', 'g_hat', 'channel', 'row', 'col', 'quantile'}]."""
    flat = np.asarray(grad).reshape(-1)
    order = np.argsort(np.abs(flat), kind="stable")
    peak = float(np.abs(flat).max()) or 1.0
    out = []
    for q in quantiles:
        idx = int(order[min(len(order) - 1, int(round(q * (len(order) - 1))))])
        c, i, j = np.unravel_index(idx, np.asarray(grad).shape[-3:])
        out.append({"value": float(flat[idx]), "g_hat": float(flat[idx]) / peak, "channel": int(c), "row": int(i),
                    "col": int(j), "quantile": q})
    return out


def toy_example(omega: float = 5.0) -> dict:
    """§3.4's toy example with eq. 6 read literally (no normalisation): g, sign(g), tanh(ω·g)."""
    g = torch.tensor(PAPER_TOY)
    return {"g": g.numpy(), "sign": _direction(g, SIGN, omega, "none").numpy(),
            "tanh": _direction(g, TANH, omega, "none").numpy()}


def saturation(grad: torch.Tensor, omega: float, grad_norm: str = "max", bins: int = 20) -> dict:
    """Histogram of |tanh(ω·ĝ)| over every value of one image's gradient (3·H·W values).

    Returns {'counts' (bins,), 'edges' (bins + 1,) over [0, 1], 'saturated' share with
    |d| ≥ SATURATED, 'linear' share with |d| < LINEAR, 'n' the number of values}.
    """
    cfg = replace(AttackConfig(), omega=omega, grad_norm=grad_norm)
    d = direction(grad.reshape(1, *grad.shape[-3:]).float(), TANH, cfg).abs().flatten().numpy()
    counts, edges = np.histogram(d, bins=bins, range=(0.0, 1.0))
    return {"counts": counts, "edges": edges, "saturated": float((d >= SATURATED).mean()),
            "linear": float((d < LINEAR).mean()), "n": int(d.size)}


# ----------------------------------------------------------------------------- Proposition 1
@dataclass(frozen=True)
class Prop1:
    """Proposition 1 (§3.5, App. A) on one gradient g (n values) and budget ε.

    l2_fgsm ‖ε·sign(g)‖₂ (= ε√n when no g_i is 0); l2_tanh ‖α·tanh(ω·ĝ)‖₂ with the gain-matched α
    (eq. 10: ⟨g, δ_tanh⟩ = ⟨g, δ_FGSM⟩); l2_linear ε‖g‖₁/‖g‖₂, the value in the linear regime
    (App. A, eq. A10), never above ε√n (Cauchy–Schwarz); gain_fgsm, gain_tanh the first-order gains
    ⟨g, δ⟩ (equal by construction); linf_tanh max|δ_tanh| (may exceed ε: the proposition matches
    gains, not budgets).
    """

    n: int
    eps: float
    omega: float
    alpha: float
    l2_fgsm: float
    l2_tanh: float
    l2_linear: float
    gain_fgsm: float
    gain_tanh: float
    linf_tanh: float

    @property
    def ratio(self) -> float:
        """‖δ_tanh‖₂ / ‖δ_FGSM‖₂ (< 1 is Proposition 1's claim)."""
        return self.l2_tanh / self.l2_fgsm


def proposition1(grad: torch.Tensor, eps: float, omega: float, grad_norm: str = "max") -> Prop1:
    """Gain-matched tanh step versus the FGSM step on gradient ``grad`` (any shape, one sample),
    with the attack's own sign and tanh directions (eq. 6, 8–10). Computed in float64."""
    g = grad.detach().double().reshape(-1)
    d_sign = _direction(g, SIGN, omega, grad_norm).double()
    d_tanh = _tanh64(g, omega, grad_norm)
    delta_fgsm = eps * d_sign
    gain = float(g @ delta_fgsm)  # ε‖g‖₁
    if gain == 0.0 or float(g @ d_tanh) == 0.0:
        raise ValueError("The gradient is zero here (or vanishes at this ω), so there is no step to compare.")
    alpha = gain / float(g @ d_tanh)
    delta_tanh = alpha * d_tanh
    l1, l2 = float(g.abs().sum()), float(torch.linalg.vector_norm(g))
    return Prop1(g.numel(), eps, omega, alpha, float(torch.linalg.vector_norm(delta_fgsm)),
                 float(torch.linalg.vector_norm(delta_tanh)), eps * l1 / l2, gain, float(g @ delta_tanh),
                 float(delta_tanh.abs().max()))


def _tanh64(g: torch.Tensor, omega: float, grad_norm: str) -> torch.Tensor:
    """tanh(ω·ĝ) in float64 through the attack's ``direction`` (float64 keeps tiny ω exact)."""
    cfg = replace(AttackConfig(), omega=omega, grad_norm=grad_norm)
    return direction(g.reshape(1, -1, 1, 1), TANH, cfg).reshape(-1)


def prop1_curve(grad: torch.Tensor, eps: float, omegas, grad_norm: str = "max") -> np.ndarray:
    """‖δ_tanh‖₂ / ‖δ_FGSM‖₂ for each ω (k,): the linear-regime value at small ω, 1 as ω → ∞."""
    return np.array([proposition1(grad, eps, float(w), grad_norm).ratio for w in omegas])


# ----------------------------------------------------------------------------- budget map (eq. 5, 11)
def budget_counts(grid: torch.Tensor, boxes: torch.Tensor, side: tuple[int, int], cfg: BudgetConfig) -> dict:
    """E (H, W) and R (nh, nw) for one image's scan grid (1, nh, nw), with how many pixels get which
    budget: {'budget' (H, W), 'region' (nh, nw) bool, 'strong', 'weak', 'between' pixel counts}."""
    e, region = budget_map(grid, boxes, side[0], side[1], cfg)
    e = e[0, 0]
    strong = int((e >= cfg.eps_strong - 1e-9).sum())
    weak = int((e <= cfg.eps_weak + 1e-9).sum()) if cfg.eps_weak < cfg.eps_strong else 0
    return {"budget": e.cpu().numpy(), "region": region[0].cpu().numpy(), "strong": strong, "weak": weak,
            "between": e.numel() - strong - weak}


# ----------------------------------------------------------------------------- the iterations, replayed
@dataclass(frozen=True)
class Replay:
    """One FGSM-family attack and its trajectory (§3.7, eq. 12–15), batch of one.

    result: the AttackResult (what the Explorer shows); states (T + 1, 3, H, W) x_0 … x_T with
    x_T == result.x_adv exactly; loss (T + 1,) CE(f(x_t), y); p_true (T + 1,) p_y(x_t);
    p_other (T + 1,) the largest other class probability, other (T + 1,) its index; pred
    (T + 1,) the top-1 class of x_t; flip the first t whose top-1 is not the attacked label y
    (None: never).
    """

    result: AttackResult
    states: torch.Tensor
    loss: np.ndarray
    p_true: np.ndarray
    p_other: np.ndarray
    other: np.ndarray
    pred: np.ndarray
    flip: int | None


def replay(model, x: torch.Tensor, y: torch.Tensor | None, cfg: AttackConfig, method: str = "sd-sgsm",
           scan=None) -> Replay:
    """Run FGSM-family ``method`` through the one wrapper ``run_method`` with the core's trajectory
    recorder switched on. Args as :func:`sdsgsm.attacks.run_attack` (x (1, 3, H, W)).
    Raises ValueError for a method outside the FGSM family."""
    if method not in FAMILY_SPECS:
        raise ValueError(f"Only FGSM-family methods can be replayed ({', '.join(FAMILY_SPECS)}), not {method!r}.")
    traj = Trajectory()
    core = partial(family_core, spec=FAMILY_SPECS[method], record=traj)
    result = run_method(method, core, model, x, y, cfg, scan=scan)
    logits = torch.cat(traj.logits)  # (T + 1, K)
    y_used = result.y.expand(len(logits))
    probs = logits.softmax(1)
    others = probs.scatter(1, y_used[:, None], -1.0)
    flips = (logits.argmax(1) != y_used).nonzero()
    return Replay(result, torch.cat(traj.states),
                  F.cross_entropy(logits, y_used, reduction="none").cpu().numpy(),
                  probs.gather(1, y_used[:, None])[:, 0].cpu().numpy(), others.amax(1).cpu().numpy(),
                  others.argmax(1).cpu().numpy(), logits.argmax(1).cpu().numpy(),
                  int(flips[0, 0]) if len(flips) else None)


def step_alpha(cfg: AttackConfig, method: str) -> float:
    """The step size α the FGSM-family loop uses for ``method`` under ``cfg`` (auto resolved)."""
    from sdsgsm.attacks.fgsm_family import step_size

    spec = FAMILY_SPECS[method]
    return step_size(cfg, spec, cfg.budget.eps_strong if spec.spatial else cfg.eps)[0]


def image_gradient(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_x CE(f(x), y) of one image (1, 3, H, W) by the attack's own ``input_gradient``."""
    return input_gradient(model, x, y)
