"""Shared attack types and the one attack wrapper.

The frozen AttackConfig, the AttackResult every method returns, and :func:`run_method`,
which opens and closes every registered method around that method's core (timing, labels,
clean and adversarial logits, the result).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch

from sdsgsm.budget import BudgetConfig
from sdsgsm.memory import run_chunks
from sdsgsm.models import ModelError
from sdsgsm.occlusion import ScanConfig, ScanResult
from sdsgsm.params import GRAD_NORMS, PARAMS, check_fields, default  # noqa: F401  (GRAD_NORMS re-exported)
from sdsgsm.timing import Timer, sync  # noqa: F401  (re-exported for bench/)

MAX_STEPS = PARAMS["steps"].hi


@dataclass(frozen=True)
class AttackConfig:
    """Every parameter of one attack run; frozen and hashable so it can key a cache.

    eps: L∞ budget of the uniform methods (fgsm, pgd, …); the spatial methods use
    ``budget.eps_strong``/``budget.eps_weak``. alpha None means ε_top for one step and
    2.5·ε_top/T for T > 1 (Madry et al.). omega is the tanh steepness ω (eq. 6) applied
    to the gradient normalised by ``grad_norm``. decay is μ of
    MI-/NI-FGSM; ti_kernel/ti_sigma the Gaussian of TI-FGSM; eot_samples the n of EOT (the FGSM family's
    gradient averaged over n draws of a randomised model; 1 = off). sigma_g, sf_kernel, sf_size,
    sf_clip_eps, sf_max_iter: SmoothFool's g, SmoothClip step and iteration cap; patch_size,
    placement, patch_mode, paste_image: the adversarial patch (see sdsgsm/params.py). queries: the
    query budget per image of the black-box attacks (Square, HopSkipJump, SimBA).
    """

    eps: float = default("eps")
    steps: int = default("steps")
    alpha: float | None = default("alpha")
    omega: float = default("omega")
    grad_norm: str = default("grad_norm")
    decay: float = default("decay")
    ti_kernel: int = default("ti_kernel")
    ti_sigma: float = 3.0
    seed: int = default("seed")
    eot_samples: int = default("eot_samples")
    scan: ScanConfig = field(default_factory=ScanConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    sigma_g: float = default("sigma_g")
    sf_kernel: str = default("sf_kernel")
    sf_size: int = default("sf_size")
    sf_clip_eps: float = default("sf_clip_eps")
    sf_max_iter: int = default("sf_max_iter")
    patch_size: int = default("patch_size")
    placement: str = default("placement")
    patch_mode: str = default("patch_mode")
    paste_image: str = default("paste_image")
    queries: int = default("queries")

    def __post_init__(self):
        """Ranges from the parameter spec (sdsgsm/params.py), then ε ≤ ε_max."""
        check_fields(self)
        if not isinstance(self.ti_sigma, (int, float)) or not math.isfinite(self.ti_sigma) or self.ti_sigma <= 0:
            raise ValueError(f"ti_sigma must be a positive finite number (got {self.ti_sigma!r}).")
        if self.eps > self.budget.eps_max + 1e-12:
            raise ValueError(f"ε = {self.eps * 255:.2f}/255 must lie in [0, ε_max = "
                             f"{self.budget.eps_max * 255:.2f}/255].")


# ----------------------------------------------------------------------------- spec values <-> config
def build_config(values: Mapping[str, object] | None = None) -> AttackConfig:
    """AttackConfig from native values (missing names take their spec default).

    Raises ValueError (one line) for an invalid value or combination.
    """

    merged = {name: p.default for name, p in PARAMS.items()} | dict(values or {})
    unknown = set(merged) - set(PARAMS)
    if unknown:
        raise ValueError(f"Unknown parameter {sorted(unknown)[0]!r}; the parameters are {', '.join(PARAMS)}.")
    parts: dict[str, dict] = {"": {}, "scan": {}, "budget": {}}
    for name, value in merged.items():
        owner, _, fname = PARAMS[name].target.rpartition(".")
        parts[owner][fname] = value
    return AttackConfig(**parts[""], scan=ScanConfig(**parts["scan"]), budget=BudgetConfig(**parts["budget"]))


def config_values(cfg: AttackConfig) -> dict:
    """The native value of every spec'd parameter in AttackConfig ``cfg`` (inverse of build_config)."""
    out = {}
    for name, p in PARAMS.items():
        obj = cfg
        for part in p.target.split("."):
            obj = getattr(obj, part)
        out[name] = obj
    return out


@dataclass(frozen=True)
class AttackResult:
    """What every attack returns (all tensors on the input's device).

    x_adv (N, 3, H, W) in [0, 1]; y (N,) labels attacked; label_source says where y came
    from; clean_logits/adv_logits (N, K); budget (N, 1, H, W) the per-pixel L∞ bound E
    (eq. 5/11); saliency (N, nh, nw), boxes (nh·nw, 4) and region (N, nh, nw) bool for the
    spatial methods (None otherwise). attack_time_s: synchronised wall time of the attack
    for the whole batch, excluding the zero-out scan; scan_time_s: the zero-out scan's
    seconds for this batch (measured in the call, or the cached ``ScanResult.seconds``;
    0.0 for non-spatial methods); ``time_s`` is their sum.

    The 8-bit image (what a PNG holds, values k/255): x_adv_8bit (N, 3, H, W) on that grid,
    adv_logits_8bit (N, K) its logits; for a minimum-norm method it is the quantisation-aware
    finish of x_adv (:func:`finish_8bit`), for every other method round(x_adv·255)/255.
    overshoot_8bit (N,) the finish's overshoot η per sample: 0 where rounding alone kept the
    outcome (or there was nothing to keep), η > 0 where x + (1+η)δ was needed, NaN where it gave
    up. finish_time_s: the batch's seconds for the rounding check and the finish (not in time_s).
    queries (N,) int64: the model queries (forward passes of one image) a black-box attack asked per
    sample, up to its first success or its budget; None for the white-box methods.
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
    attack_time_s: float = 0.0
    scan_time_s: float = 0.0
    x_adv_8bit: torch.Tensor | None = None
    adv_logits_8bit: torch.Tensor | None = None
    overshoot_8bit: torch.Tensor | None = None
    finish_time_s: float = 0.0
    queries: torch.Tensor | None = None

    @property
    def time_s(self) -> float:
        """Attack plus zero-out scan seconds for the batch (what the method costs end to end)."""
        return self.attack_time_s + self.scan_time_s

    @property
    def clean_pred(self) -> torch.Tensor:
        return self.clean_logits.argmax(1)

    @property
    def adv_pred(self) -> torch.Tensor:
        return self.adv_logits.argmax(1)

    @property
    def adv_pred_8bit(self) -> torch.Tensor | None:
        """The prediction for the 8-bit image x_adv_8bit (what a saved and reloaded PNG gets)."""
        return None if self.adv_logits_8bit is None else self.adv_logits_8bit.argmax(1)


@dataclass(frozen=True)
class CoreOutput:
    """What a method's core hands back to :func:`run_method`.

    x_adv (N, 3, H, W) in [0, 1]; budget (N, 1, H, W) the L∞ bound E (eq. 5/11; the scalar
    ε map for uniform methods, the realised L∞ for unbounded ones); scan the zero-out scan
    the budget came from (spatial methods only: the cached one passed in, or one computed by
    the core) and region (N, nh, nw) bool, the region R (§3.3); queries (N,) int64 the model queries per
    sample of a black-box attack (None for the others).
    """

    x_adv: torch.Tensor
    budget: torch.Tensor
    scan: ScanResult | None = None
    region: torch.Tensor | None = None
    queries: torch.Tensor | None = None


# core(model, x (N, 3, H, W) float32 in [0, 1], y (N,) labels used, clean (N, K) logits, cfg, scan or None)
Core = Callable[..., CoreOutput]


def resolve_labels(y: torch.Tensor | None, clean_logits: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Labels to attack: the true label where known (y ≥ 0), else the clean prediction."""
    pred = clean_logits.argmax(1)
    if y is None:
        return pred, "clean prediction"
    y = y.to(pred.device).long()
    known = y >= 0
    if bool(known.all()):
        return y, "true label"
    return torch.where(known, y, pred), "true label where known, else clean prediction"


def scalar_budget(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The uniform budget map E = ε everywhere (eq. 5 with R empty), shape (N, 1, H, W)."""
    return torch.full_like(x[:, :1], eps)  # (N, 1, H, W)


def _check_scan(scan: ScanResult | None, x: torch.Tensor) -> None:
    if scan is not None and scan.clean_logits.shape[0] != x.shape[0]:
        raise ValueError(f"The cached scan holds {scan.clean_logits.shape[0]} images but the attack got "
                         f"{x.shape[0]}; pass the scan of the same images (or none).")


def _check_finite(t: torch.Tensor, what: str) -> None:
    """Raise ModelError (one line) when ``t`` holds a NaN or ±inf: no such value may reach a
    metric, an image or a table (a model with NaN weights, a broken checkpoint)."""
    if not torch.isfinite(t).all():
        raise ModelError(f"{what}; no result is shown.")


def quantise(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit image of x: round(clamp(x, 0, 1)·255)/255, what an 8-bit PNG stores and gives back."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


FINISH_ETA0 = 0.02  # the first overshoot η of the finish (DeepFool's own overshoot)
FINISH_TRIES = 20  # η doubles each try: 0.02, 0.04, …, 0.02·2^19


def finish_8bit(model, x: torch.Tensor, x_adv: torch.Tensor, adv_logits: torch.Tensor, y: torch.Tensor, *,
                finish: bool = True, bound: torch.Tensor | None = None, eta0: float = FINISH_ETA0,
                tries: int = FINISH_TRIES) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 8-bit image of x_adv, its logits and the overshoot used: the quantisation-aware finish.

    Rule: x_8 = round(x_adv·255)/255. With ``finish`` (the minimum-norm methods), a sample whose
    float x_adv fools (prediction ≠ y) but whose x_8 does not (prediction = y) is pushed further
    along its own final perturbation δ = x_adv − x: x + (1+η)δ, clipped to [0, 1] (and to ±bound,
    the method's L∞ budget map, when given), rounded and classified, for η = eta0, 2·eta0, … —
    at most ``tries`` times; the first η that fools is kept. Why this rule: a minimum-norm attack
    stops just past the decision boundary (a logit margin of ~1e-4 for DeepFool, an L∞ of a
    fraction of 1/255 for FAB), so the ±0.5/255 rounding error can carry it back; scaling δ is
    DeepFool's own overshoot (Moosavi-Dezfooli et al. 2016), keeps the direction the attack
    found, and grows the perturbation only as much as the 8-bit grid needs (η doubles, so even a
    δ far below 1/255 reaches the grid within the bound of tries). Where no η fools within
    ``tries`` the plain rounding is kept and the overshoot is NaN ('gave up').

    Args: model maps (B, 3, H, W) → (B, K); x (N, 3, H, W) clean; x_adv (N, 3, H, W) the float
    result; adv_logits (N, K) of x_adv; y (N,) the reference prediction (the clean one, as in the
    success metric; for clean-correct samples the label attacked); bound (N, 1, H, W) or None.
    Returns (x_8 (N, 3, H, W) on the k/255 grid, logits (N, K) of x_8, overshoot (N,) float32:
    0 where none was needed, η where used, NaN where it gave up).
    """
    with torch.inference_mode():
        x8 = quantise(x_adv)
        logits8 = model(x8).float()
        eta_used = torch.zeros(len(x), device=x.device)
        y = y.to(logits8.device)
        need = (adv_logits.argmax(1) != y) & (logits8.argmax(1) == y)
        if not finish or not bool(need.any()):
            return x8, logits8, eta_used
        x8, logits8 = x8.clone(), logits8.clone()
        delta = x_adv - x  # (N, 3, H, W)
        eta = eta0
        for _ in range(tries):
            idx = need.nonzero().squeeze(1)
            if not len(idx):
                break
            step = (1.0 + eta) * delta[idx]
            if bound is not None:
                b = bound[idx].to(step)
                step = torch.maximum(torch.minimum(step, b), -b)
            cand = quantise(x[idx] + step)
            out = model(cand).float()
            fooled = out.argmax(1) != y[idx]
            hit = idx[fooled]
            x8[hit], logits8[hit], eta_used[hit] = cand[fooled], out[fooled], eta
            need[hit] = False
            eta *= 2.0
        eta_used[need] = math.nan
        return x8, logits8, eta_used


def run_method(name: str, core: Core, model, x: torch.Tensor, y: torch.Tensor | None, cfg: AttackConfig, *,
               scan: ScanResult | None = None, minimum_norm: bool = False, bounded: bool = True) -> AttackResult:
    """The one wrapper around every registered method's core.

    Detaches x to float32, takes the clean logits f(x) without gradients (or the cached
    scan's), resolves the labels (true label where known, else the clean prediction),
    runs ``core(model, x, y_used, clean, cfg, scan)``, takes the adversarial logits and
    times it all with device synchronisation. A scan the core computed is timed by the scan
    itself (``ScanResult.seconds``) and taken out of ``attack_time_s``.

    Args: name the method name recorded in the result; core see :data:`Core`; model maps
    (B, 3, H, W) in [0, 1] to (B, K) logits; x (N, 3, H, W) in [0, 1]; y (N,) true labels
    (−1 = unknown) or None; scan a cached ScanResult of the same images and ``cfg.scan``.
    Every result also carries the 8-bit image (one more forward pass): :func:`finish_8bit`, with
    the quantisation-aware finish when ``minimum_norm`` (kept inside the budget map when
    ``bounded``); x_adv itself stays the method's float output.
    Returns the AttackResult. Raises ValueError for a scan of a different batch.
    Out of device memory: the images are split in halves (then quarters, …) and attacked part
    by part, announced by a :class:`~sdsgsm.memory.MemoryRetryWarning`, down to one image,
    then :class:`~sdsgsm.memory.DeviceMemoryError` (:func:`sdsgsm.memory.run_chunks`). The
    parts are joined into one result (a random method then draws per part: its seed restarts
    in every part).
    """
    x = x.detach().float()  # (N, 3, H, W)
    _check_scan(scan, x)
    n = len(x)

    def part(a: int, b: int) -> AttackResult:
        whole = (a, b) == (0, n)
        return _run_once(name, core, model, x if whole else x[a:b], y if y is None or whole else y[a:b], cfg,
                         scan if scan is None or whole else _slice_scan(scan, a, b, n), minimum_norm, bounded)

    parts = run_chunks(part, n, n, what=f"the {name} attack")
    return parts[0] if len(parts) == 1 else join_results(parts)


def _slice_scan(scan: ScanResult, a: int, b: int, n: int) -> ScanResult:
    """Images a..b of a cached scan (its time shared in proportion)."""
    return replace(scan, grid=scan.grid[a:b], clean_logits=scan.clean_logits[a:b], seconds=scan.seconds * (b - a) / n)


def _cat(parts: list, attr: str) -> torch.Tensor | None:
    values = [getattr(p, attr) for p in parts]
    return None if values[0] is None else torch.cat(values)


def join_results(parts: list[AttackResult]) -> AttackResult:
    """One AttackResult from the results of consecutive parts of a batch (times summed)."""
    first = parts[0]
    sources = {p.label_source for p in parts}
    source = first.label_source if len(sources) == 1 else "true label where known, else clean prediction"
    return replace(first, label_source=source, **{k: _cat(parts, k) for k in (
        "x_adv", "y", "clean_logits", "adv_logits", "budget", "saliency", "region", "x_adv_8bit", "adv_logits_8bit",
        "overshoot_8bit", "queries")},
        attack_time_s=sum(p.attack_time_s for p in parts), scan_time_s=sum(p.scan_time_s for p in parts),
        finish_time_s=sum(p.finish_time_s for p in parts))


def _run_once(name: str, core: Core, model, x: torch.Tensor, y: torch.Tensor | None, cfg: AttackConfig,
              scan: ScanResult | None, minimum_norm: bool = False, bounded: bool = True) -> AttackResult:
    """:func:`run_method` on one part of the batch (no memory retry)."""
    with Timer(x.device) as timer:
        with torch.inference_mode():
            clean = scan.clean_logits if scan is not None else model(x).float()  # (N, K)
        _check_finite(clean, "The model returned NaN or infinite logits for this image")
        y_used, source = resolve_labels(y, clean)
        out = core(model, x, y_used, clean, cfg, scan)
        x_adv = out.x_adv.detach()  # (N, 3, H, W)
        _check_finite(x_adv, f"{name} produced NaN or infinite pixel values")
        with torch.inference_mode():
            adv = model(x_adv).float()  # (N, K)
        _check_finite(adv, "The model returned NaN or infinite logits for the adversarial image")
    with Timer(x.device) as finish_timer:
        # 'fools' as the success metric means it: the prediction differs from the clean one (for a clean-correct
        # sample that is the label attacked; for one the model already gets wrong, the label would say 'fooled')
        x8, adv8, eta = finish_8bit(model, x, x_adv, adv, clean.argmax(1), finish=minimum_norm,
                                    bound=out.budget if bounded else None)
    used = out.scan
    scan_s = used.seconds if used is not None else 0.0
    attack_s = timer.s - (scan_s if used is not None and used is not scan else 0.0)
    return AttackResult(name, cfg, x_adv, y_used, source, clean.clone(), adv, out.budget,
                        saliency=None if used is None else used.grid, boxes=None if used is None else used.boxes,
                        region=out.region, attack_time_s=attack_s, scan_time_s=scan_s, x_adv_8bit=x8,
                        adv_logits_8bit=adv8, overshoot_8bit=eta, finish_time_s=finish_timer.s,
                        queries=out.queries)
