"""Universal adversarial perturbations: one v with ‖v‖∞ ≤ ξ that changes the prediction of most images.

* **UAP** (Moosavi-Dezfooli, Fawzi, Fawzi & Frossard, CVPR 2017, Algorithm 1): v ← 0; while the fooling
  rate of v on the data X is below τ (and fewer than ``max_passes`` passes ran): for each x_i of X (in a
  seeded random order, reshuffled every pass), if c(x_i + v) = c(x_i), find the minimal perturbation Δv_i
  that sends x_i + v across the decision boundary (DeepFool, Moosavi-Dezfooli et al. CVPR 2016: L2,
  overshoot 0.02, the 10 most likely other classes) and, if it crosses, v ← P_ξ(v + Δv_i), the projection
  on the L∞ ball of radius ξ (clipping every pixel to [−ξ, ξ]).
* **Smooth UAP** (Dabouei, Soleymani, Dawson & Nasrabadi, WACV 2020, supplementary Algorithm 3): the same
  loop with SmoothFool (their Algorithm 2, :func:`sdsgsm.attacks.smoothfool.smoothfool_batch`) as the inner
  step and SmoothClip (their Algorithm 1) as the projection: v ← (v/ξ + 1)·0.5 (to [0, 1]);
  v ← SmoothClip(0, v, g, ε); v ← (2v − 1)·ξ. The paper's setting: ξ = 10/255, ε = 0.1, τ = 0.9.
  Algorithm 3 as printed writes SmoothFool(f, x_i, g); we run it from x_i + v, as the UAP setup it adopts
  does (Δv must move x_i + v, not x_i, across the boundary).

Definitions used here:

* the image a model sees is clamp(x + v, 0, 1) (a valid image);
* **fooling**: c(clamp(x + v, 0, 1)) ≠ c(x), the change of the predicted label (UAP's definition; labels
  are not used), evaluated over **all** images of the set, whether the clean prediction is right or not;
* an inner step that does not cross the boundary (DeepFool's or SmoothFool's iteration cap) leaves v as it
  was (UAP Algorithm 1: "if the minimal perturbation exists").

Deterministic: the data order comes from ``torch.Generator().manual_seed(seed)``; the rest has no randomness.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sdsgsm.attacks.base import build_config
from sdsgsm.attacks.deepfool import deepfool
from sdsgsm.attacks.smoothfool import smooth_clip, smoothfool_batch, smoothing_kernel
from sdsgsm.data import ASSETS
from sdsgsm.params import SF_KERNELS

UNIVERSAL_DIR = ASSETS / "universal"
RECIPE = "universal.json"

INNER = ("deepfool", "smoothfool")
DEEPFOOL_UAP = {"max_iter": 50, "overshoot": 0.02, "nb_grads": 10}  # the UAP paper's DeepFool settings
FOOLING = "c(clamp(x + v, 0, 1)) ≠ c(x) (change of the predicted label) over all images, clean-correct or not"

__all__ = ["DEEPFOOL_UAP", "FOOLING", "INNER", "RECIPE", "UNIVERSAL_DIR", "UniversalConfig", "apply_perturbation",
           "decode_perturbation", "encode_perturbation", "fooling_rate", "load_universal_perturbation",
           "predictions", "project", "shipped_names", "shipped_recipe", "universal_perturbation"]


@dataclass(frozen=True)
class UniversalConfig:
    """One universal-perturbation run.

    inner: 'deepfool' (UAP, Moosavi-Dezfooli et al. 2017) or 'smoothfool' (smooth UAP, Dabouei et al.
    2020); xi: the L∞ radius ξ (in [0, 1] pixel units, 10/255 in both papers); tau: the target fooling rate
    τ on the training images (0.9); max_passes: at most this many passes over the data; sigma_g, kernel,
    sf_size: SmoothFool's low-pass g (Gaussian σ_g of width 5σ_g, or uniform / linear of side sf_size);
    sf_clip_eps: SmoothClip's step ε (0.1); sf_max_iter: SmoothFool's iteration cap; seed: the data order.
    Invalid values raise ValueError (one line, listing the valid names where there are names).
    """

    inner: str = "smoothfool"
    xi: float = 10 / 255
    tau: float = 0.9
    max_passes: int = 5
    sigma_g: float = 5.0
    kernel: str = "gaussian"
    sf_size: int = 25
    sf_clip_eps: float = 0.1
    sf_max_iter: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.inner not in INNER:
            raise ValueError(f"Unknown inner step {self.inner!r}; choose one of {', '.join(INNER)}.")
        if self.kernel not in SF_KERNELS:
            raise ValueError(f"Unknown kernel {self.kernel!r}; choose one of {', '.join(SF_KERNELS)}.")
        if not (isinstance(self.xi, (int, float)) and math.isfinite(self.xi) and 0 < self.xi <= 1):
            raise ValueError(f"xi must be in (0, 1] (got {self.xi!r}); e.g. 10/255.")
        if not (isinstance(self.tau, (int, float)) and 0 < self.tau <= 1):
            raise ValueError(f"tau must be in (0, 1] (got {self.tau!r}).")
        for name in ("max_passes", "sf_max_iter", "sf_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer of at least 1 (got {v!r}).")
        if not (isinstance(self.sigma_g, (int, float)) and math.isfinite(self.sigma_g) and self.sigma_g > 0):
            raise ValueError(f"sigma_g must be positive (got {self.sigma_g!r}).")
        if not (isinstance(self.sf_clip_eps, (int, float)) and 0 < self.sf_clip_eps <= 1):
            raise ValueError(f"sf_clip_eps must be in (0, 1] (got {self.sf_clip_eps!r}).")

    @property
    def name(self) -> str:
        """'deepfool' or 'smoothfool_sigma5' (the Gaussian σ_g), 'smoothfool_uniform25', … (file names)."""
        if self.inner == "deepfool":
            return "deepfool"
        if self.kernel == "gaussian":
            return f"smoothfool_sigma{self.sigma_g:g}"
        return f"smoothfool_{self.kernel}{self.sf_size}"

    def attack_config(self):
        """The AttackConfig SmoothFool runs with (g, SmoothClip ε, iteration cap)."""
        return build_config({"sigma_g": float(self.sigma_g), "sf_kernel": self.kernel, "sf_size": int(self.sf_size),
                             "sf_clip_eps": float(self.sf_clip_eps), "sf_max_iter": int(self.sf_max_iter)})


def apply_perturbation(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """clamp(x + v, 0, 1): images x (N, 3, H, W) in [0, 1] with the universal v (3, H, W) added."""
    return (x + v.to(x.device, x.dtype)).clamp(0.0, 1.0)


def predictions(model, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """c(x): the predicted classes (N,) of images x (N, 3, H, W), in batches."""
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch_size]).float().argmax(1) for i in range(0, len(x), batch_size)])


def fooling_rate(model, x: torch.Tensor, v: torch.Tensor, clean: torch.Tensor | None = None,
                 batch_size: int = 16) -> tuple[float, torch.Tensor]:
    """(share of images with c(clamp(x + v, 0, 1)) ≠ c(x), the fooled mask (N,)). ``clean``: c(x) if known."""
    clean = predictions(model, x, batch_size) if clean is None else clean
    fooled = predictions(model, apply_perturbation(x, v), batch_size) != clean.to(x.device)
    return float(fooled.float().mean()) if len(fooled) else 0.0, fooled


def project(v: torch.Tensor, cfg: UniversalConfig, g1d: torch.Tensor | None = None) -> torch.Tensor:
    """P_ξ(v) for v (3, H, W): clipping to [−ξ, ξ] (UAP), or for the smooth inner step SmoothClip
    (Dabouei et al. 2020, Algorithm 3 lines 9–11): u = (v/ξ + 1)·0.5; u ← SmoothClip(0, u, g, ε); v = (2u − 1)·ξ.
    Either way ‖v‖∞ ≤ ξ (SmoothClip's last residue, below half an 8-bit level of u, is clipped)."""
    if cfg.inner == "deepfool":
        return v.clamp(-cfg.xi, cfg.xi)
    u = (v / cfg.xi + 1.0) * 0.5
    u = smooth_clip(torch.zeros_like(u[None]), u[None], g1d, cfg.sf_clip_eps)[0]
    return ((2.0 * u - 1.0) * cfg.xi).clamp(-cfg.xi, cfg.xi)


def _inner_step(model, xv: torch.Tensor, c: torch.Tensor, cfg: UniversalConfig, attack_cfg, g1d) -> torch.Tensor:
    """Δv for one image x + v (1, 3, H, W) of class c (1,): DeepFool's or SmoothFool's minimal perturbation."""
    if cfg.inner == "deepfool":
        with torch.inference_mode():
            k = model(xv).shape[1]
        adv = deepfool(model, xv.detach().cpu().numpy(), max_iter=DEEPFOOL_UAP["max_iter"],
                       epsilon=DEEPFOOL_UAP["overshoot"], nb_grads=DEEPFOOL_UAP["nb_grads"], nb_classes=k,
                       device=xv.device)
        return torch.from_numpy(adv).to(xv.device) - xv
    return smoothfool_batch(model, xv, c, g1d, attack_cfg) - xv


def universal_perturbation(model, x: torch.Tensor, y: torch.Tensor | None, cfg: UniversalConfig,
                           should_stop: Callable[[], bool] | None = None,
                           progress: Callable[[str, int, int], None] | None = None) -> tuple[torch.Tensor, dict]:
    """A universal perturbation v for the images x (UAP Algorithm 1 of Moosavi-Dezfooli et al. 2017, or
    Algorithm 3 of Dabouei et al. 2020 with ``cfg.inner == 'smoothfool'``; see the module docstring).

    Args:
        model: (B, 3, H, W) in [0, 1] -> (B, K) logits. x: (N, 3, H, W) float32 in [0, 1], the training images.
        y: unused (fooling is a change of the predicted label; accepted so callers can pass their labels).
        cfg: a :class:`UniversalConfig`. should_stop: polled before every image; True ends the run with
            the v reached so far (``info['stopped']``). progress(text, done, total): images visited over
            ``max_passes`` passes.
    Returns:
        v (3, H, W) float32 with ‖v‖∞ ≤ ξ, and info: passes (int), fooling_per_pass (the training fooling
        rate after each pass), train_fooling_rate (the last), updates (how many inner steps moved v),
        seconds, stopped, reached_tau, inner, fooling (the definition).
    """
    del y
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"Expected a non-empty batch of images (N, 3, H, W); got shape {tuple(x.shape)}.")
    t0 = time.perf_counter()
    x = x.detach().float()
    device = x.device
    v = torch.zeros_like(x[0])
    g1d = smoothing_kernel(cfg.attack_config(), device) if cfg.inner == "smoothfool" else None
    attack_cfg = cfg.attack_config() if cfg.inner == "smoothfool" else None
    clean = predictions(model, x)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    rate, per_pass, updates, passes, stopped = 0.0, [], 0, 0, False
    total = cfg.max_passes * len(x)
    while rate < cfg.tau and passes < cfg.max_passes and not stopped:
        order = torch.randperm(len(x), generator=gen).tolist()
        for j, i in enumerate(order):
            if should_stop is not None and should_stop():
                stopped = True
                break
            xv = apply_perturbation(x[i:i + 1], v)
            ci = clean[i:i + 1]
            if predictions(model, xv)[0] == ci[0]:  # not fooled yet: Δv_i from x_i + v
                dv = _inner_step(model, xv, ci, cfg, attack_cfg, g1d)[0]
                if predictions(model, apply_perturbation(x[i:i + 1], v + dv))[0] != ci[0]:
                    v = project(v + dv, cfg, g1d)
                    updates += 1
            if progress is not None:
                progress(f"{cfg.name}: pass {passes + 1}, image {j + 1}/{len(x)}", passes * len(x) + j + 1, total)
        if stopped and passes == 0 and not per_pass:
            rate = fooling_rate(model, x, v, clean)[0]
            break
        passes += 0 if stopped else 1
        rate = fooling_rate(model, x, v, clean)[0]
        if not stopped:
            per_pass.append(rate)
    info = {"inner": cfg.inner, "passes": passes, "fooling_per_pass": per_pass, "train_fooling_rate": rate,
            "updates": updates, "reached_tau": rate >= cfg.tau, "stopped": stopped,
            "seconds": time.perf_counter() - t0, "fooling": FOOLING}
    return v.detach().float(), info


# ----------------------------------------------------------------------------- shipped perturbations
def encode_perturbation(v: torch.Tensor | np.ndarray) -> bytes:
    """v (3, H, W) as the bytes of a float16 ``.npy`` file (signed values kept; float16 holds ξ = 10/255
    to about 3e-5, far below an 8-bit level)."""
    buf = io.BytesIO()
    arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    np.save(buf, arr.astype(np.float16), allow_pickle=False)
    return buf.getvalue()


def decode_perturbation(data: bytes) -> torch.Tensor:
    """The ``.npy`` bytes of :func:`encode_perturbation` as v (3, H, W) float32 (no pickles are read)."""
    return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32))


def shipped_recipe() -> dict:
    """assets/universal/universal.json: how the shipped perturbations were made (command, seed, split,
    passes, ξ, σ_g, model, seconds, the sha256 of every file) and their results table."""
    return json.loads((UNIVERSAL_DIR / RECIPE).read_text(encoding="utf-8"))


def shipped_names() -> list[str]:
    """The names of the shipped universal perturbations, in the recipe's order."""
    return list(shipped_recipe()["perturbations"])


def load_universal_perturbation(name: str) -> tuple[torch.Tensor, dict]:
    """A shipped universal perturbation: (v (3, H, W) float32, its recipe entry). The file's sha256 is
    checked against the recipe. Raises ValueError for an unknown name (listing the valid ones) or a
    file whose sha256 differs from the record."""
    entries = shipped_recipe()["perturbations"]
    if name not in entries:
        raise ValueError(f"Unknown universal perturbation {name!r}; choose one of {', '.join(entries)}.")
    entry = entries[name]
    data = (UNIVERSAL_DIR / entry["file"]).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"{entry['file']} has sha256 {digest[:12]}…, the recipe records {entry['sha256'][:12]}…; "
                         "the shipped file was changed.")
    return decode_perturbation(data), entry
