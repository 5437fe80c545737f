"""One image, end to end: load, scan, attack, measure, and write the CLI's seven files."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .attacks import AttackConfig, AttackResult, run_attack
from .budget import region_mask
from .data import gallery_item, load_image
from .metrics import Metrics, amplify, evaluate, top_tiles
from .occlusion import ScanResult, occlusion_scan, upsample_grid
from .viz import region_boxes, saliency_image, to_pil

OUTPUT_FILES = ("original.png", "adversarial.png", "perturbation_x5.png", "saliency.png",
                "result.json", "metrics.csv", "arrays.npz")


@dataclass
class ImageReport:
    """Everything shown for one attacked image (batch of one)."""

    x: torch.Tensor            # (1, 3, H, W) clean image in [0, 1]
    result: AttackResult
    scan: ScanResult
    metrics: Metrics
    summary: dict              # JSON-ready: parameters, labels, metrics, boxes


def resolve_image(image, size: int) -> tuple[torch.Tensor, int | None, str]:
    """An image path, bytes, or gallery key -> ((1, 3, size, size), gallery label or None, name)."""
    if isinstance(image, (str, Path)) and not Path(image).exists() and "/" in str(image):
        try:
            item = gallery_item(str(image))
            return load_image(item.path, size)[None], item.label, item.key
        except ValueError:
            pass  # fall through: load_image reports the missing file clearly
    name = Path(image).name if isinstance(image, (str, Path)) else "upload"
    return load_image(image, size)[None], None, name


def _top5(logits: torch.Tensor, labels: list[str]) -> list[dict]:
    probs = logits.float().softmax(-1)
    values, idx = probs.topk(min(5, probs.numel()))
    return [{"index": int(i), "name": labels[int(i)], "prob": float(v)} for v, i in zip(values, idx)]


def summarise(model, report_x, result: AttackResult, scan: ScanResult, metrics: Metrics,
              image_name: str) -> dict:
    """JSON-ready dictionary of one single-image run (result.json)."""
    labels = model.labels
    y, clean, adv = int(result.y[0]), result.clean_logits[0], result.adv_logits[0]
    mask = result.region if result.region is not None else region_mask(scan.grid, result.cfg.budget)
    region = region_boxes(mask[0], scan.boxes)  # (k, 4) — red boxes
    tiles = top_tiles(report_x, result.x_adv, scan.boxes, k=max(1, len(region)))[0]  # yellow boxes
    s = metrics.summary()
    return {
        "image": image_name, "model": model.name, "device": str(result.x_adv.device),
        "method": result.method, "parameters": asdict(result.cfg),
        "label": {"index": y, "name": labels[y], "source": result.label_source},
        "clean": {**_top5(clean, labels)[0], "top5": _top5(clean, labels)},
        "adversarial": {**_top5(adv, labels)[0], "top5": _top5(adv, labels)},
        "metrics": {"success": bool(metrics.success[0]), "evaluated": bool(metrics.evaluated[0]),
                    "criterion": s["criterion"], "l2": float(metrics.l2[0]), "linf": float(metrics.linf[0]),
                    "ssim": float(metrics.ssim[0]), "time_s": result.time_s, "scan_time_s": result.scan_time_s},
        "region_boxes": region.tolist(), "top_perturbation_boxes": tiles.tolist(),
        "box_format": "(top, left, height, width) in pixels of the model-sized image",
    }


def attack_tensor(model, x: torch.Tensor, cfg: AttackConfig, method: str = "sd-sgsm",
                  label: int | None = None, name: str = "image", scan: ScanResult | None = None) -> ImageReport:
    """Scan (unless ``scan`` is given), attack and measure one image x (1, 3, H, W) in [0, 1].

    ``label`` is the true label if known (else the clean prediction is attacked).
    """
    x = x.to(model.device)
    if label is not None and not 0 <= label < model.num_classes:
        raise ValueError(f"Label {label} is outside 0..{model.num_classes - 1} for {model.name}.")
    y = None if label is None else torch.tensor([label], device=x.device)
    if scan is None:
        scan = occlusion_scan(model, x, cfg.scan, y=y)
    result = run_attack(model, x, y, cfg, method, scan=scan)
    metrics = evaluate(x, result)
    return ImageReport(x, result, scan, metrics, summarise(model, x, result, scan, metrics, name))


def attack_image(model, image, cfg: AttackConfig, method: str = "sd-sgsm", label: int | None = None,
                 scan: ScanResult | None = None) -> ImageReport:
    """Load ``image`` (path, bytes or gallery key) at the model's size, then ``attack_tensor``."""
    x, gallery_label, name = resolve_image(image, model.input_size)
    return attack_tensor(model, x, cfg, method, gallery_label if label is None else label, name, scan)


def metrics_csv(summaries: list[dict]) -> str:
    """CSV text, one row per single-image summary (method, labels, metrics, criterion)."""
    buf = io.StringIO()
    cols = ["image", "model", "method", "label", "clean", "adversarial", "success",
            "l2", "linf", "ssim", "time_s", "criterion"]
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    for s in summaries:
        m = s["metrics"]
        writer.writerow({"image": s["image"], "model": s["model"], "method": s["method"],
                         "label": s["label"]["name"], "clean": s["clean"]["name"],
                         "adversarial": s["adversarial"]["name"], "success": m["success"],
                         "l2": f"{m['l2']:.6f}", "linf": f"{m['linf']:.6f}", "ssim": f"{m['ssim']:.6f}",
                         "time_s": f"{m['time_s']:.4f}", "criterion": m["criterion"]})
    return buf.getvalue()


def write_outputs(report: ImageReport, out: Path) -> list[Path]:
    """Write original/adversarial/perturbation_x5/saliency PNGs, result.json and arrays.npz."""
    out.mkdir(parents=True, exist_ok=True)
    x, r, scan = report.x, report.result, report.scan
    h, w = x.shape[2:]
    sal = upsample_grid(scan.grid, scan.boxes, h, w)[0].cpu().numpy()
    to_pil(x[0]).save(out / "original.png")
    to_pil(r.x_adv[0]).save(out / "adversarial.png")
    to_pil(amplify(x, r.x_adv)[0]).save(out / "perturbation_x5.png")
    saliency_image(sal, report.summary["region_boxes"], x[0]).save(out / "saliency.png")
    (out / "result.json").write_text(json.dumps(report.summary, indent=2, ensure_ascii=False))
    (out / "metrics.csv").write_text(metrics_csv([report.summary]))
    np.savez(out / "arrays.npz", x=x.cpu().numpy().astype(np.float32),
             x_adv=r.x_adv.cpu().numpy().astype(np.float32),
             saliency=scan.grid.cpu().numpy().astype(np.float32),
             budget=r.budget.cpu().numpy().astype(np.float32))
    return [out / f for f in OUTPUT_FILES]
