"""Adversarial patch attack (Brown et al. 2017, "Adversarial Patch"; arXiv:2312.16880,
"Adversarial Attacks on Image Classification Models: Analysis and Defense").

A square patch of s×s pixels replaces the image inside one box; everything else is unchanged.

Modes (``cfg.patch_mode``):
* ``universal``: the optimised universal targeted patch shipped in ``assets/patches`` (target
  "toaster", ImageNet class 859, sides 32 / 48 / 64, trained for the embedded EfficientNet-Lite0
  with :func:`train_universal_patch`, i.e. ART's ``AdversarialPatchPyTorch``: expectation over
  images, positions, rotations and scales of log p_target). Other sides resize the nearest larger
  shipped patch (bilinear, antialiased).
* ``paste``: a centre crop of another gallery image (``cfg.paste_image``), as in arXiv:2312.16880.

Placement (``cfg.placement``) ties the patch to the paper's zero-out scan (eq. 1–2, 11):
``omega-star`` centres the patch on the most sensitive window Ω* = argmax Δ_Ω, ``least-sensitive``
on the least sensitive window, ``centre`` on the image centre, ``random`` at a seeded uniform
position (sample i of a batch draws from seed + i). The box is clamped inside the image; a patch
larger than the image is cut to the image side. The budget map is the realised L∞ inside the
patch box and 0 outside it (not an ε-bounded attack).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from sdsgsm.attacks.base import AttackConfig, CoreOutput
from sdsgsm.data import ASSETS, gallery_item, load_image
from sdsgsm.occlusion import ScanResult, occlusion_scan

PATCH_DIR: Path = ASSETS / "patches"
TARGET = 859  # ImageNet "toaster", the most harmful patch in arXiv:2312.16880
SHIPPED_SIZES = (32, 48, 64)
EOT = {"rotation_max": 22.5, "scale_jitter": 0.1, "learning_rate": 0.1, "optimizer": "Adam"}


def patch_path(size: int) -> Path:
    return PATCH_DIR / f"toaster_{size}.png"


def patch_info() -> dict:
    """assets/patches/patches.json: how the shipped patches were made (command, seed, data, steps, …)."""
    return json.loads((PATCH_DIR / "patches.json").read_text(encoding="utf-8"))


def load_universal(size: int) -> torch.Tensor:
    """The shipped universal patch of side ``size`` (3, size, size) in [0, 1]; other sides are resized
    from the nearest larger shipped one (the largest if none is larger). Raises ValueError if missing."""
    exact = patch_path(size)
    src = exact if exact.exists() else patch_path(min((s for s in SHIPPED_SIZES if s >= size),
                                                      default=max(SHIPPED_SIZES)))
    if not src.exists():
        raise ValueError(f"No shipped patch {src.name}; train one with `python -m sdsgsm train-patch`.")
    from PIL import Image

    with Image.open(src) as im:
        p = torch.from_numpy(__import__("numpy").asarray(im.convert("RGB"), dtype="float32") / 255.0)
    p = p.permute(2, 0, 1)  # (3, s, s)
    if p.shape[1] != size:
        p = F.interpolate(p[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return p.clamp(0.0, 1.0)


def paste_crop(name: str, size: int, side: int = 224) -> torch.Tensor:
    """Centre crop (3, size, size) of gallery image ``imagenet/<name>.jpg`` loaded at ``side`` px."""
    img = load_image(gallery_item(f"imagenet/{name}.jpg").path, max(side, size))  # (3, S, S)
    top = (img.shape[1] - size) // 2
    left = (img.shape[2] - size) // 2
    return img[:, top:top + size, left:left + size]


def patch_pixels(cfg: AttackConfig, size: int) -> torch.Tensor:
    """The patch (3, size, size) in [0, 1] for ``cfg.patch_mode``."""
    return load_universal(size) if cfg.patch_mode == "universal" else paste_crop(cfg.paste_image, size)


def _window_topleft(box: list[int], size: int, h: int, w: int) -> tuple[int, int]:
    """Top-left of a size×size box centred on window (top, left, bh, bw), clamped inside H×W."""
    t, l_, bh, bw = box
    top = round(t + bh / 2 - size / 2)
    left = round(l_ + bw / 2 - size / 2)
    return min(max(top, 0), h - size), min(max(left, 0), w - size)


def placements(cfg: AttackConfig, scan: ScanResult | None, n: int, h: int, w: int, size: int) -> torch.Tensor:
    """Top-left corners (N, 2) int64 of the patch per sample for ``cfg.placement``.

    omega-star / least-sensitive: centred on the argmax / argmin window of ``scan.grid`` (eq. 11);
    centre; random: uniform over valid positions from a generator seeded with cfg.seed + i.
    """
    if cfg.placement in ("omega-star", "least-sensitive"):
        flat = scan.grid.flatten(1)  # (N, nh·nw)
        pick = flat.argmax(1) if cfg.placement == "omega-star" else flat.argmin(1)
        return torch.tensor([_window_topleft(scan.boxes[int(i)].tolist(), size, h, w) for i in pick])
    if cfg.placement == "centre":
        return torch.tensor([[(h - size) // 2, (w - size) // 2]] * n)
    out = []
    for i in range(n):
        gen = torch.Generator().manual_seed(cfg.seed + i)
        out.append([int(torch.randint(0, h - size + 1, (1,), generator=gen)),
                    int(torch.randint(0, w - size + 1, (1,), generator=gen))])
    return torch.tensor(out)


def apply_patch(x: torch.Tensor, patch: torch.Tensor, topleft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste patch (3, s, s) into every image of x (N, 3, H, W) at topleft (N, 2).

    Returns (x_adv (N, 3, H, W): exactly the patch pixels inside each box, x elsewhere;
    mask (N, 1, H, W) bool, True inside the box).
    """
    s = patch.shape[-1]
    x_adv, mask = x.clone(), torch.zeros_like(x[:, :1], dtype=torch.bool)
    for i, (t, l_) in enumerate(topleft.tolist()):
        x_adv[i, :, t:t + s, l_:l_ + s] = patch.to(x_adv)
        mask[i, :, t:t + s, l_:l_ + s] = True
    return x_adv, mask


def _region(scan: ScanResult | None, cfg: AttackConfig) -> torch.Tensor | None:
    """R shown with the result: the chosen window for omega-star / least-sensitive, none otherwise."""
    if scan is None:
        return None
    flat = scan.grid.flatten(1)
    region = torch.zeros_like(flat, dtype=torch.bool)
    if cfg.placement in ("omega-star", "least-sensitive"):
        pick = flat.argmax(1) if cfg.placement == "omega-star" else flat.argmin(1)
        region[torch.arange(len(flat)), pick] = True
    return region.view_as(scan.grid)


def patch_core(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, cfg: AttackConfig,
               scan: ScanResult | None = None) -> CoreOutput:
    """Core of the patch attack for :func:`~sdsgsm.attacks.base.run_method`.

    Args: x (N, 3, H, W) float32 in [0, 1]; y (N,) labels (for a confidence_drop scan); clean (N, K);
    scan the zero-out scan of x and cfg.scan, computed here when the placement needs one and none is
    given (its time is then reported as scan time). Returns x_adv, the budget map (realised L∞ inside
    the box, 0 outside), the scan used and the chosen window as region.
    """
    n, _, h, w = x.shape
    size = min(cfg.patch_size, h, w)
    if cfg.placement in ("omega-star", "least-sensitive") and scan is None:
        scan = occlusion_scan(model, x, cfg.scan, y=y, clean_logits=clean)
    patch = patch_pixels(cfg, size).to(x.device)
    x_adv, mask = apply_patch(x, patch, placements(cfg, scan, n, h, w, size))
    linf = (x_adv - x).flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    return CoreOutput(x_adv, mask.to(x.dtype) * linf, scan, _region(scan, cfg))
