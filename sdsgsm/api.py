"""The public Python API: the names a researcher imports from ``sdsgsm``.

    import sdsgsm
    model = sdsgsm.load_model()                              # the embedded EfficientNet-Lite0
    x = sdsgsm.load_image("imagenet/imagenet_00_243.jpg")    # a gallery key or a file: (1, 3, 224, 224)
    result = sdsgsm.attack(model, x, method="sd-sgsm", eps_strong=8 / 255, steps=5)
    result.clean_pred, result.adv_pred_8bit                  # labels before / after (8-bit image)

Any ``nn.Module`` that maps images in [0, 1] to logits works where a model is expected;
:func:`wrap_model` adds a normalisation (mean, std) and class names to a bare network. Parameters
are keyword arguments named as in the one parameter spec (:data:`sdsgsm.params.PARAMS`); an
unknown name or an out-of-range value raises ``ValueError`` with a one-line message. For the
torchattacks habit (``atk = PGD(model, eps=8/255); adv = atk(images, labels)``) use the classes
in :mod:`sdsgsm.attacks` (``sdsgsm.attacks.SDSGSM``, ``sdsgsm.attacks.PGD``, …).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdsgsm.attacks import (
    METHODS,
    AttackConfig,
    AttackResult,
    build_config,
    config_values,
    get_method,
    run_attack,
)
from sdsgsm.data import GalleryItem, gallery, gallery_item, load_gallery
from sdsgsm.data import load_image as _load_image
from sdsgsm.defences import DEFENCES
from sdsgsm.experiments.benchmark import BenchmarkResult, preset_config, run_benchmark
from sdsgsm.metrics import METRICS
from sdsgsm.models import Classifier, available_models, load_checkpoint
from sdsgsm.models import load_model as _load_model
from sdsgsm.occlusion import ScanResult, occlusion_scan
from sdsgsm.params import PARAMS, PRESETS

__all__ = [
    "AttackConfig", "AttackResult", "BenchmarkResult", "Classifier", "DEFENCES", "GalleryItem", "METHODS",
    "METRICS", "PARAMS", "PRESETS", "ScanResult", "attack", "available_models", "benchmark", "config",
    "gallery", "load_checkpoint", "load_gallery", "load_image", "load_model", "scan", "wrap_model",
]

_SCAN_PARAMS = tuple(name for name, p in PARAMS.items() if p.target.startswith("scan."))


def load_model(name: str = "efficientnet_lite0", device: str | None = None) -> Classifier:
    """A model by name: the embedded EfficientNet-Lite0/1/2 (installed with the package) or a
    torchvision architecture whose weights are already in the local torch cache (never downloaded);
    :func:`available_models` lists them with the reason a model is unavailable."""
    return _load_model(name, device)


def wrap_model(module: nn.Module, *, mean: Sequence[float] = (0.0, 0.0, 0.0),
               std: Sequence[float] = (1.0, 1.0, 1.0), labels: Sequence[str] | None = None,
               input_size: int = 224, name: str = "custom") -> Classifier:
    """Wrap a bare network that expects normalised inputs: the result takes images in [0, 1],
    normalises them as (x − mean) / std, and is frozen in eval mode. ``labels``: class names
    (default "class 0", "class 1", …, counted from one forward pass)."""
    if labels is None:
        with torch.no_grad():
            probe = torch.zeros(1, len(mean), input_size, input_size)
            k = module.eval()((probe - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1))
        labels = [f"class {i}" for i in range(k.shape[1])]
    return Classifier(module, name, list(labels), input_size, tuple(mean), tuple(std))


def load_image(src: str | Path | bytes, size: int = 224) -> torch.Tensor:
    """An image file, its bytes, or a gallery key (e.g. "imagenet/imagenet_00_243.jpg", see :func:`gallery`)
    as a (1, 3, size, size) tensor in [0, 1] (EXIF orientation applied, centre-cropped and resized)."""
    if isinstance(src, str) and not Path(src).exists() and src in {item.key for item in gallery()}:
        src = gallery_item(src).path
    return _load_image(src, size).unsqueeze(0)


def config(**params: Any) -> AttackConfig:
    """An :class:`AttackConfig` from spec parameters (missing ones take their default)."""
    return build_config(params)


def scan(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, **params: Any) -> ScanResult:
    """The zero-out scan (paper eq. 1–2) of ``images`` (N, 3, H, W): one score per window.

    Keyword parameters: the scan's spec parameters (``patch``, ``stride``, ``score``)."""
    unknown = sorted(set(params) - set(_SCAN_PARAMS))
    if unknown:
        raise ValueError(f"Unknown scan parameter {unknown[0]!r}; the scan's parameters are "
                         f"{', '.join(_SCAN_PARAMS)}.")
    cfg = build_config(params).scan.for_size(min(images.shape[-2:]))
    return occlusion_scan(model, images, cfg, y=labels)


def attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None,
           method: str = "sd-sgsm", **params: Any) -> AttackResult:
    """Attack ``images`` (N, 3, H, W) in [0, 1] with registry ``method`` (see :data:`METHODS`).

    labels: (N,) class indices, or None to attack the model's clean prediction. Keyword
    parameters: spec names (``eps``, ``eps_strong``, ``eps_weak``, ``steps``, ``alpha``, ``omega``, …)."""
    get_method(method)
    return run_attack(model, images, labels, build_config(params), method=method)


def benchmark(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None,
              methods: Sequence[str] | None = None, *, preset: str | None = None, batch_size: int = 16,
              **params: Any) -> BenchmarkResult:
    """Run several methods on ``images`` and measure every metric of :data:`METRICS`.

    ``preset`` (a name of :data:`PRESETS`, e.g. "table2") gives the methods and settings; keyword
    parameters override them. Returns a result whose ``summary`` (one row per method) and
    ``per_sample`` are pandas DataFrames."""
    if preset is not None:
        preset_methods, cfg = preset_config(preset)
        cfg = build_config({**config_values(cfg), **params})
        methods = list(methods or preset_methods)
    else:
        cfg = build_config(params)
        methods = list(methods or ("fgsm", "sd-sgsm"))
    for m in methods:
        get_method(m)
    return run_benchmark(model, images, labels, methods, cfg, batch_size=batch_size)

