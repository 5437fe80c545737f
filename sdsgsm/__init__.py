"""SD-SGSM Explorer: where an image classifier looks, and how a spatially distributed,
tanh-smoothed adversarial attack exploits it.

Paper: Xu, Li, Chang, Dong, "A Spatially Distributed Perturbation Strategy with Smoothed
Gradient Sign Method for Adversarial Analysis of Image Classification Systems",
Entropy 2026, 28(2), 193, doi:10.3390/e28020193.

The public API (:mod:`sdsgsm.api`) is available from the package itself, loaded on first use so
that ``import sdsgsm`` stays light: ``sdsgsm.load_model()``, ``sdsgsm.load_image(...)``,
``sdsgsm.scan(...)``, ``sdsgsm.attack(...)``, ``sdsgsm.benchmark(...)``, ``sdsgsm.METHODS`` …
torchattacks-style classes live in :mod:`sdsgsm.attacks` (``sdsgsm.attacks.SDSGSM``).
This package never imports streamlit except ``sdsgsm.ui``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = (
    "AttackConfig", "AttackResult", "BenchmarkResult", "Classifier", "DEFENCES", "GalleryItem", "METHODS",
    "METRICS", "PARAMS", "PRESETS", "ScanResult", "attack", "available_models", "benchmark", "config",
    "gallery", "load_checkpoint", "load_gallery", "load_image", "load_model", "scan", "wrap_model",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Lazy access to the public API (PEP 562): ``sdsgsm.attack`` is ``sdsgsm.api.attack``."""
    if name in _API:
        return getattr(importlib.import_module("sdsgsm.api"), name)
    raise AttributeError(f"module 'sdsgsm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
