"""Shared attack types: the frozen AttackConfig and the AttackResult every method returns."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..budget import BudgetConfig
from ..occlusion import ScanConfig

GRAD_NORMS = ("max", "pow10", "none")
MAX_STEPS = 1000


@dataclass(frozen=True)
class AttackConfig:
    """Every parameter of one attack run; frozen and hashable so it can key a cache.

    eps: L∞ budget of the uniform methods (fgsm, pgd, …); the spatial methods use
    ``budget.eps_strong``/``budget.eps_weak``. alpha None means ε_top for one step and
    2.5·ε_top/T for T > 1 (Madry et al.). omega is the tanh steepness ω (eq. 6) applied
    to the gradient normalised by ``grad_norm`` (DESIGN.md §2.4). decay is μ of
    MI-/NI-FGSM; ti_kernel/ti_sigma the Gaussian of TI-FGSM.
    """

    eps: float = 8 / 255
    steps: int = 1
    alpha: float | None = None
    omega: float = 10.0
    grad_norm: str = "max"
    decay: float = 1.0
    ti_kernel: int = 7
    ti_sigma: float = 3.0
    seed: int = 0
    scan: ScanConfig = field(default_factory=ScanConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)

    def __post_init__(self):
        for name in ("eps", "omega", "decay", "ti_sigma") + (("alpha",) if self.alpha is not None else ()):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number (got {value!r}).")
        if not 0 <= self.eps <= self.budget.eps_max + 1e-12:
            raise ValueError(f"ε = {self.eps * 255:.2f}/255 must lie in [0, ε_max = "
                             f"{self.budget.eps_max * 255:.2f}/255].")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"Steps must be an integer from 1 to {MAX_STEPS} (got {self.steps!r}).")
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"Step size α must be positive (got {self.alpha}).")
        if self.omega <= 0:
            raise ValueError(f"ω must be positive (got {self.omega}).")
        if self.grad_norm not in GRAD_NORMS:
            raise ValueError(f"Unknown grad_norm {self.grad_norm!r}; choose one of {', '.join(GRAD_NORMS)}.")
        if self.decay < 0 or self.ti_sigma <= 0 or self.ti_kernel < 1 or self.ti_kernel % 2 == 0:
            raise ValueError("Need decay ≥ 0, ti_sigma > 0 and an odd ti_kernel ≥ 1.")


@dataclass
class AttackResult:
    """What every attack returns (all tensors on the input's device).

    x_adv (N, 3, H, W) in [0, 1]; y (N,) labels attacked; label_source says where y came
    from; clean_logits/adv_logits (N, K); budget (N, 1, H, W) the per-pixel L∞ bound E;
    saliency (N, nh, nw), boxes (nh·nw, 4) and region (N, nh, nw) bool for the spatial
    methods (None otherwise); time_s wall time of the whole call, scan_time_s the part
    spent in the zero-out scan (0 when a cached scan was passed in).
    """

    method: str
    cfg: AttackConfig
    x_adv: torch.Tensor
    y: torch.Tensor
    label_source: str
    clean_logits: torch.Tensor
    adv_logits: torch.Tensor
    budget: torch.Tensor
    saliency: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    region: torch.Tensor | None = None
    time_s: float = 0.0
    scan_time_s: float = 0.0

    @property
    def clean_pred(self) -> torch.Tensor:
        return self.clean_logits.argmax(1)

    @property
    def adv_pred(self) -> torch.Tensor:
        return self.adv_logits.argmax(1)


def resolve_labels(y: torch.Tensor | None, clean_logits: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Labels to attack: the true label where known (y ≥ 0), else the clean prediction (§2.5)."""
    pred = clean_logits.argmax(1)
    if y is None:
        return pred, "clean prediction"
    y = y.to(pred.device).long()
    known = y >= 0
    if bool(known.all()):
        return y, "true label"
    return torch.where(known, y, pred), "true label where known, else clean prediction"


def sync(device: torch.device) -> None:
    """Wait for queued device work so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Context manager measuring synchronised wall time in seconds (``.s``)."""

    def __init__(self, device: torch.device):
        self.device, self.s = device, 0.0

    def __enter__(self):
        sync(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.s = time.perf_counter() - self.t0
