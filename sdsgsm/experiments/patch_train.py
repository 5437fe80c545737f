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
    """One training run: patch side (px), ART iterations (each a pass over the data), seed,
    batch size, target class (defaults and ranges: :data:`sdsgsm.params.PATCH_TRAIN_PARAMS`) and the
    data spec the images come from."""

    size: int = default("size", PATCH_TRAIN_PARAMS)
    steps: int = default("steps", PATCH_TRAIN_PARAMS)
    seed: int = default("seed", PATCH_TRAIN_PARAMS)
    batch_size: int = default("batch_size", PATCH_TRAIN_PARAMS)
    target: int = default("target", PATCH_TRAIN_PARAMS)
    data: str = "gallery:photo"

    def __post_init__(self):
        check_fields(self, spec=PATCH_TRAIN_PARAMS)


def train_universal_patch(model, x: torch.Tensor, run: PatchTraining, verbose: bool = True) -> tuple[np.ndarray, dict]:
    """Train a universal patch for ``model`` on images x (N, 3, H, W) in [0, 1] (Brown et al. 2017).

    Returns (patch (3, s, s) float32 in [0, 1], info: the run, ART parameters, seconds, device).
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
              "scale_max": min(1.0, rel * (1 + EOT["scale_jitter"])), "learning_rate": EOT["learning_rate"],
              "max_iter": run.steps, "batch_size": run.batch_size, "patch_shape": (3, run.size, run.size),
              "patch_type": "square", "optimizer": EOT["optimizer"], "targeted": True}
    attack = AdversarialPatchPyTorch(classifier, verbose=verbose, **params)
    target = np.eye(k, dtype=np.float32)[np.full(len(x), run.target)]
    t0 = time.perf_counter()
    with seeded(run.seed, x.device):
        patch, _ = attack.generate(x=x.cpu().numpy().astype(np.float32), y=target)
    seconds = time.perf_counter() - t0
    info = {**asdict(run), "art": {"class": "AdversarialPatchPyTorch", **params}, "seconds": round(seconds, 1),
            "device": str(x.device), "n_images": len(x), "model": getattr(model, "name", "")}
    return np.clip(patch.astype(np.float32), 0.0, 1.0), info


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
    same = all(entry.get(k) == v for k, v in asdict(run).items())
    return png if same and entry.get("model") == model_name and entry.get("n_images") == n_images else None


def save_patch(patch: np.ndarray, info: dict, out_dir: str | Path = PATCH_DIR, command: str = "") -> Path:
    """Write toaster_<s>.png and merge the run's entry into patches.json in out_dir; returns the PNG path."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"toaster_{info['size']}.png"
    Image.fromarray((patch.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(png)
    meta_path = out / "patches.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    meta.setdefault("target", {"index": info["target"], "name": "toaster"})
    meta.setdefault("patches", {})[png.name] = {"command": command, **info}
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return png
