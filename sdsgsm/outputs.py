"""The one output writer: every command and every download turns a result into {file name: bytes}, and this
module writes them; plus the package versions each output's config records."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import torch


def write_files(files: dict[str, bytes], out_dir: str | Path) -> list[Path]:
    """Write {name: bytes} into out_dir (created if needed); returns the paths in the dict's order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in files]
    for path, data in zip(paths, files.values()):
        path.write_bytes(data)
    return paths


def package_versions() -> dict:
    """Versions of python, torch, torchvision, ART, scikit-image, numpy and pandas (no imports)."""
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for key, dist in (("torchvision", "torchvision"), ("art", "adversarial-robustness-toolbox"),
                      ("skimage", "scikit-image"), ("numpy", "numpy"), ("pandas", "pandas")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    out["platform"] = platform.platform()
    return out
