"""The figure grid's data (paper Fig. 5/6): scan each image once and attack it with every method; the records
go to :func:`sdsgsm.render.figures.grid_figure`, which only draws."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from sdsgsm.data import IMAGE_EXTENSIONS, gallery, image_title
from sdsgsm.experiments.report import attack_tensor, image_record, resolve_image
from sdsgsm.occlusion import occlusion_scan

__all__ = ["grid_records", "image_list"]


def image_list(specs: Sequence[str]) -> list[str]:
    """Gallery keys, image paths and folders (their images, sorted) -> a flat list of image references."""
    out: list[str] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        if spec in ("gallery", "gallery:imagenet", "gallery:photo", "gallery:cifar10"):
            out += [g.key for g in gallery(spec.partition(":")[2] or "imagenet")]
        elif Path(spec).is_dir():
            found = sorted(str(p) for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"The folder {Path(spec).name!r} holds no images.")
            out += found
        else:
            out.append(spec)
    if not out:
        raise ValueError("No images given.")
    return out


def grid_records(model, images: Sequence[str], methods: Sequence[str], cfg) -> tuple[list[list[dict]], list[str]]:
    """Scan each image once (eq. 1–2) and attack it with every method: (rows of image records, row names:
    class names of gallery images, :func:`sdsgsm.data.image_title`).

    images: gallery keys or paths; cfg: the AttackConfig shared by the methods.
    """
    rows, names = [], []
    loaded = [resolve_image(ref, model.input_size) for ref in images]  # every file checked before any attack
    for x, label, name in loaded:
        x = x.to(model.device)
        if label is not None and not 0 <= label < model.num_classes:
            label = None
        y = None if label is None else torch.tensor([label], device=x.device)
        scan = occlusion_scan(model, x, cfg.scan, y=y)
        rows.append([image_record(attack_tensor(model, x, cfg, m, label, name, scan=scan)) for m in methods])
        names.append(image_title(name))  # the class name of a gallery image, else the file name
    return rows, names
