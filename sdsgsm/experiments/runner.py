"""The one experiment runner's shared pieces: data and label selection, method lists, warm-up, the clean
pass and one result class. The benchmark, sweep, transfer matrix, defence grid and lab build on them.

A new experiment is one module here (select the samples with :func:`select`, warm up with :func:`warm_up`,
return an :class:`ExperimentResult`), one CLI module in :mod:`sdsgsm.cli`, one page and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from sdsgsm.attacks import METHODS, AttackConfig, resolve_labels
from sdsgsm.data import load_cifar10, load_folder, load_gallery
from sdsgsm.memory import run_chunks
from sdsgsm.outputs import package_versions

__all__ = ["ExperimentResult", "cfg_map", "clean_logits", "load_benchmark_data", "model_device", "package_versions",
           "parse_methods", "select", "warm_up"]


@dataclass
class ExperimentResult:
    """What every experiment returns. summary: one row per method (or per point / cell); per_sample: one
    row per (method, sample, …); config: every parameter, counts and package versions (JSON-ready);
    stopped: the run ended early (Ctrl-C or a Stop button) and holds the work finished until then."""

    summary: pd.DataFrame
    per_sample: pd.DataFrame
    config: dict
    stopped: bool = False


def parse_methods(methods: str | list[str]) -> list[str]:
    """'a,b,c' or a list -> registry names in order, duplicates dropped; unknown names raise ValueError."""
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    out = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if not out:
        raise ValueError("No methods given; pass --methods a,b,c or --preset table1|table2.")
    bad = [n for n in out if n not in METHODS]
    if bad:
        raise ValueError(f"Unknown method {bad[0]!r}; choose from {', '.join(METHODS)}.")
    return out



# ----------------------------------------------------------------------------- data
def _labels_fit(dataset: str, num_classes: int) -> bool:
    return {"imagenet": num_classes == 1000, "photo": num_classes == 1000, "cifar10": num_classes == 10}[dataset]


def _folder_labels(y: torch.Tensor, classes: list[str], model) -> tuple[torch.Tensor, str]:
    """Map ImageFolder class indices to the model's classes: by name, else by index if the counts match."""
    names = [str(n).lower().replace("_", " ") for n in getattr(model, "labels", [])]
    if classes and all(c.lower().replace("_", " ") in names for c in classes):
        lut = torch.tensor([names.index(c.lower().replace("_", " ")) for c in classes])
        return torch.where(y >= 0, lut[y.clamp_min(0)], y), "folder class names matched to the model's labels"
    if classes and len(classes) == len(names):
        return y, "folder class index (sorted sub-folder names)"
    return torch.full_like(y, -1), "unknown (clean prediction)"


def load_benchmark_data(spec: str, model, limit: int | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, list[str], dict]:
    """Images for a benchmark at the model's input size.

    spec: 'gallery' (20 ImageNet samples, or the 20 CIFAR-10 ones for a model of ≤ 64 px),
    'gallery:imagenet|cifar10|photo', 'cifar10:PATH' (extracted cifar-10-batches-py under
    PATH, test split, 32-px models) or a folder (ImageFolder or flat). Labels that do not
    belong to the model's class set become −1 (the clean prediction is attacked).
    Returns x (N, 3, S, S) in [0, 1], y (N,), N keys, and info (name, label source).
    Raises ImageError/ValueError with a one-sentence message.
    """
    size, k = model.input_size, model.num_classes
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1 (got {limit}).")
    if spec == "gallery" or spec.startswith("gallery:"):
        dataset = spec.partition(":")[2] or ("cifar10" if size <= 64 else "imagenet")
        x, y, keys = load_gallery(dataset, size, limit)
        name, source = f"gallery:{dataset}", "gallery labels"
        if not _labels_fit("photo" if dataset == "photos" else dataset, k):
            y, source = torch.full_like(y, -1), "unknown (clean prediction)"
    elif spec.startswith("cifar10:"):
        if size != 32:
            raise ValueError(f"CIFAR-10 images are 32 px but {model.name} expects {size} px; use a 32-px checkpoint.")
        x, y, _ = load_cifar10(spec.partition(":")[2], limit)
        keys, name = [f"cifar10_test_{i:05d}" for i in range(len(x))], spec
        y, source = (y, "CIFAR-10 labels") if k == 10 else (torch.full_like(y, -1), "unknown (clean prediction)")
    else:
        x, y, classes = load_folder(spec, size, limit)
        y, source = _folder_labels(y, classes, model)
        keys, name = [f"{Path(spec).name}[{i}]" for i in range(len(x))], spec
    y = torch.where((y >= 0) & (y < k), y, torch.full_like(y, -1))
    return x, y, keys, {"name": name, "label_source": source}



# ----------------------------------------------------------------------------- clean pass and warm-up
def model_device(model) -> torch.device:
    for t in (*model.buffers(), *model.parameters()):
        return t.device
    return torch.device("cpu")


def clean_logits(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N, K) clean logits in batches; out of device memory halves the batch (sdsgsm.memory)."""
    def clean(a: int, b: int) -> torch.Tensor:
        with torch.inference_mode():
            return model(x[a:b]).float()

    return torch.cat(run_chunks(clean, len(x), batch_size, what="the clean pass"))


def select(model, x: torch.Tensor, y: torch.Tensor | None, batch_size: int, criterion: str):
    """Clean pass: (labels used, their source, clean-correct mask (N,), indices to attack); warms up."""
    clean = clean_logits(model, x, batch_size)
    y_used, label_source = resolve_labels(None if y is None else y.to(x.device), clean)
    correct = clean.argmax(1) == y_used
    idx = torch.nonzero(correct if criterion == "clean_correct" else torch.ones_like(correct))[:, 0]
    if len(idx) == 0:
        raise ValueError(f"None of the {len(x)} images is classified correctly by {getattr(model, 'name', 'the model')}"
                         "; nothing to attack under the clean-correct criterion (use criterion 'all').")
    return y_used, label_source, correct, idx


def warm_up(model, x: torch.Tensor, method: str, warm: bool) -> None:
    """Untimed: one forward/backward pass (kernel selection, allocator) before the first method, and
    ART's slow import plus the classifier wrapper before an ART method, so no time pays for them."""
    if not warm:
        xb = x[:1].clone().requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.grad(model(xb).float().sum(), xb)
    if METHODS[method].backend == "art":
        import art.attacks.evasion  # noqa: F401

        from sdsgsm.attacks.art_baselines import art_classifier

        with torch.inference_mode():
            k = model(x[:1]).shape[1]
        art_classifier(model, tuple(x.shape[1:]), k)


def cfg_map(methods: list[str], cfgs: dict[str, AttackConfig] | AttackConfig) -> dict[str, AttackConfig]:
    if isinstance(cfgs, AttackConfig):
        return dict.fromkeys(methods, cfgs)
    missing = [m for m in methods if m not in cfgs]
    if missing:
        raise ValueError(f"No AttackConfig given for {', '.join(missing)}.")
    return {m: cfgs[m] for m in methods}
