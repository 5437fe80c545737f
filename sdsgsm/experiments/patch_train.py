"""Training a universal targeted adversarial patch (Brown et al. 2017) with IBM ART.

ART's ``AdversarialPatchPyTorch`` maximises the expectation, over training images, random
positions, rotations (±``rotation_max``°) and scales, of log p_target(image with the patch)
(targeted cross-entropy, Adam). ART resizes the patch to the image side and then scales it by a
factor drawn from [scale_min, scale_max]; we draw around s / side (±10 %), so the patch is trained
at about the s×s pixels it is pasted at. Run from the command line
(``python -m sdsgsm train-patch``) with a progress bar, on the GPU when there is one; the app only
loads the shipped results (assets/patches), it never trains.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from sdsgsm.attacks.art_baselines import art_classifier, seeded
from sdsgsm.attacks.patch import EOT, PATCH_DIR
from sdsgsm.params import PATCH_TRAIN_PARAMS, check_fields, default


@dataclass(frozen=True)
class PatchTraining:
    """One training run: patch side (px), ART iterations (each a pass over ``repeats`` randomly placed
    copies of the data), seed, batch size, target class, Adam's learning rate (defaults and ranges:
    :data:`sdsgsm.params.PATCH_TRAIN_PARAMS`) and the data spec the images come from."""

    size: int = default("size", PATCH_TRAIN_PARAMS)
    steps: int = default("steps", PATCH_TRAIN_PARAMS)
    seed: int = default("seed", PATCH_TRAIN_PARAMS)
    batch_size: int = default("batch_size", PATCH_TRAIN_PARAMS)
    target: int = default("target", PATCH_TRAIN_PARAMS)
    learning_rate: float = default("learning_rate", PATCH_TRAIN_PARAMS)
    repeats: int = default("repeats", PATCH_TRAIN_PARAMS)
    data: str = "gallery:photo"

    def __post_init__(self):
        check_fields(self, spec=PATCH_TRAIN_PARAMS)


def train_universal_patch(model, x: torch.Tensor, run: PatchTraining, verbose: bool = True,
                          every: int | None = None, on_chunk=None, should_stop=None) -> tuple[np.ndarray, dict]:
    """Train a universal patch for ``model`` on images x (N, 3, H, W) in [0, 1] (Brown et al. 2017).

    Expectation over transformation: each iteration is one pass over ``run.repeats`` copies of x, every copy
    with its own random position, rotation and scale; Adam maximises log p_target of the patched copies.
    Every ``every`` iterations (never when None) ``on_chunk(iterations_done, patch (3, s, s) float32 tensor in
    [0, 1])`` may return a dict, kept in info["curve"] (the training curve). It is called from inside the one
    ART run, between optimisation steps, and draws no random numbers, so the patch does not depend on
    ``every``. ``should_stop()`` True ends training at the end of the current iteration (info["iterations"]
    says how far it got).

    Returns (patch (3, s, s) float32 in [0, 1], info: the run, ART parameters, seconds of training (the
    curve's evaluations excluded), device, curve).
    """
    from art.attacks.evasion import AdversarialPatchPyTorch

    side = min(x.shape[2:])
    if run.size > side:
        raise ValueError(f"Patch side {run.size} is larger than the image side {side}.")
    with torch.inference_mode():
        k = model(x[:1]).shape[1]
    if run.target >= k:
        raise ValueError(f"Target class {run.target} is not a class of this model (0 … {k - 1}).")
    classifier = art_classifier(model, tuple(x.shape[1:]), k)
    rel = run.size / side
    params = {"rotation_max": EOT["rotation_max"], "scale_min": rel * (1 - EOT["scale_jitter"]),
              "scale_max": min(1.0, rel * (1 + EOT["scale_jitter"])), "learning_rate": run.learning_rate,
              "max_iter": run.steps, "batch_size": run.batch_size, "patch_shape": (3, run.size, run.size),
              "patch_type": "square", "optimizer": EOT["optimizer"], "targeted": True}
    attack = AdversarialPatchPyTorch(classifier, verbose=verbose, **params)
    data = x.repeat(run.repeats, 1, 1, 1).cpu().numpy().astype(np.float32)
    target = np.eye(k, dtype=np.float32)[np.full(len(data), run.target)]
    per_iteration = -(-len(data) // run.batch_size)  # optimisation steps per pass
    state = {"steps": 0, "iterations": 0, "eval_s": 0.0}
    curve: list[dict] = []
    train_step = attack._train_step

    def step(*args, **kwargs):  # ART's step, then the curve and the stop check at each iteration's end
        loss = train_step(*args, **kwargs)
        state["steps"] += 1
        if state["steps"] % per_iteration == 0:
            done = state["iterations"] = state["steps"] // per_iteration
            if on_chunk is not None and every and done % every == 0:
                t_eval = time.perf_counter()
                point = on_chunk(done, attack._patch.detach().clamp(0.0, 1.0).float().cpu())
                state["eval_s"] += time.perf_counter() - t_eval
                if point:
                    curve.append({"iteration": done, "seconds": round(time.perf_counter() - t0 - state["eval_s"], 1),
                                  **point})
            if should_stop is not None and done < run.steps and should_stop():
                raise _Stopped
        return loss

    attack._train_step = step
    t0 = time.perf_counter()
    with seeded(run.seed, x.device):
        try:
            patch, _ = attack.generate(x=data, y=target)
        except _Stopped:
            patch = attack._patch.detach().cpu().numpy()
    seconds = time.perf_counter() - t0 - state["eval_s"]
    info = {**asdict(run), "art": {"class": "AdversarialPatchPyTorch", **params}, "iterations": state["iterations"],
            "optimisation_steps": state["steps"], "seconds": round(seconds, 1), "device": str(x.device),
            "n_images": len(x), "model": getattr(model, "name", ""), "curve": curve}
    return np.clip(patch.astype(np.float32), 0.0, 1.0), info


class _Stopped(Exception):
    """Raised inside ART's loop to end training early (a Stop / Ctrl-C between iterations)."""


def finished(run: PatchTraining, model_name: str, n_images: int, out_dir: str | Path = PATCH_DIR) -> Path | None:
    """The PNG of ``run`` when an earlier run already wrote it with the same settings (the file and its
    patches.json record, same size, steps, seed, batch size, target, data, model and image count), else None."""
    out = Path(out_dir)
    png, meta_path = out / f"toaster_{run.size}.png", out / "patches.json"
    if not png.is_file() or not meta_path.is_file():
        return None
    try:
        entry = json.loads(meta_path.read_text(encoding="utf-8")).get("patches", {}).get(png.name, {})
    except (OSError, ValueError):
        return None
    same = all(entry.get(k) == v for k, v in asdict(run).items()) and entry.get("iterations") == run.steps
    return png if same and entry.get("model") == model_name and entry.get("n_images") == n_images else None


def save_patch(patch: np.ndarray, info: dict, out_dir: str | Path = PATCH_DIR, command: str = "") -> Path:
    """Write toaster_<s>.png and merge the run's entry into patches.json in out_dir; returns the PNG path."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"toaster_{info['size']}.png"
    Image.fromarray((patch.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(png)
    sha = hashlib.sha256(png.read_bytes()).hexdigest()
    meta_path = out / "patches.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    meta.setdefault("target", {"index": info["target"], "name": "toaster"})
    meta.setdefault("patches", {})[png.name] = {"command": command, **info, "sha256": sha}
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return png


def curve_evaluator(model, x: torch.Tensor, y: torch.Tensor, size: int, target: int, seeds: int = 3):
    """``on_chunk`` for :func:`train_universal_patch`: the patch pasted on held-out images x (N, 3, H, W) with
    labels y at Ω* (the zero-out scan's argmax window, computed once here) and at random positions (``seeds``
    seeds); returns {hit_omega_star, acc_omega_star, hit_random, acc_random} in %. Reporting only: the patch
    shipped is the last one whatever the curve says."""
    from sdsgsm.attacks.base import AttackConfig
    from sdsgsm.attacks.patch import apply_patch, placements
    from sdsgsm.occlusion import ScanConfig, occlusion_scan

    n, _, h, w = x.shape
    s = min(size, h, w)
    with torch.inference_mode(False):
        scan = occlusion_scan(model, x, ScanConfig())
    where = {"omega_star": [placements(AttackConfig(placement="omega-star"), scan, n, h, w, s)],
             "random": [placements(AttackConfig(placement="random", seed=k), scan, n, h, w, s) for k in range(seeds)]}
    y = y.to(x.device)

    def evaluate(_done: int, patch: torch.Tensor) -> dict:
        out = {}
        for name, corners in where.items():
            with torch.inference_mode():
                pred = torch.cat([model(apply_patch(x, patch.to(x.device), c)[0]).argmax(1) for c in corners])
            yy = y.repeat(len(corners))
            out[f"hit_{name}"] = round(100 * float((pred == target).float().mean()), 1)
            out[f"acc_{name}"] = round(100 * float((pred == yy).float().mean()), 1)
        return out

    return evaluate
