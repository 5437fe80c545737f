"""One image, end to end: load, scan, attack, measure (paper §3, §4.2), and the one output writer.

The writer is pure: :func:`image_record` turns an :class:`ImageReport` into a numpy record
(what the app caches), :func:`image_files` turns a record into ``{file name: bytes}`` (the
CLI's seven files and the app's downloads, byte for byte the same), :func:`write_files`
writes such a dict. ``write_outputs`` = image_files(image_record(report)) + write_files.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from sdsgsm.attacks import AttackConfig, AttackResult, get_method, run_attack
from sdsgsm.attacks.base import quantise
from sdsgsm.budget import region_mask, region_warnings
from sdsgsm.data import gallery_item, load_image
from sdsgsm.metrics import METRICS, Metrics, amplify, evaluate, top_tiles
from sdsgsm.occlusion import ScanResult, occlusion_scan, upsample_grid
from sdsgsm.outputs import write_files
from sdsgsm.render.viz import YELLOW, draw_boxes, png_bytes, region_boxes, saliency_image, to_pil

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


def top5_of_logits(logits: torch.Tensor, labels: list[str]) -> list[dict]:
    probs = logits.float().softmax(-1)
    values, idx = probs.topk(min(5, probs.numel()))
    return [{"index": int(i), "name": labels[int(i)], "prob": float(v)} for v, i in zip(values, idx)]


def _prediction(logits: torch.Tensor, labels: list[str]) -> dict:
    """The top-1 class (index, name, prob) with the top-5 list under 'top5'."""
    top5 = top5_of_logits(logits, labels)
    return {**top5[0], "top5": top5}


def image_summary(model, report_x, result: AttackResult, scan: ScanResult, metrics: Metrics,
                  image_name: str) -> dict:
    """JSON-ready dictionary of one single-image run (result.json); 'metrics' holds every registry
    metric of the sample (success, success_8bit, l2, linf, ssim, time_s = scan_time_s + attack_time_s, …).

    'adversarial' is the prediction for the float x_adv (the method's output, arrays.npz 'x_adv');
    'adversarial_8bit' the prediction for the 8-bit image (adversarial.png, arrays.npz 'x_adv_8bit'),
    what a saved and reloaded file gets; 'eight_bit' says which file holds which and the finish's overshoot."""
    labels = model.labels
    y, clean, adv = int(result.y[0]), result.clean_logits[0], result.adv_logits[0]
    adv8 = result.adv_logits_8bit[0] if result.adv_logits_8bit is not None else adv
    eta = float(result.overshoot_8bit[0]) if result.overshoot_8bit is not None else 0.0
    mask = result.region if result.region is not None else region_mask(scan.grid, result.cfg.budget)
    region = region_boxes(mask[0], scan.boxes)  # (k, 4) — red boxes
    tiles = top_tiles(report_x, result.x_adv, scan.boxes, k=max(1, len(region)))[0]  # yellow boxes
    return {
        "image": image_name, "model": model.name, "device": str(result.x_adv.device),
        "method": result.method, "parameters": asdict(result.cfg),
        "label": {"index": y, "name": labels[y], "source": result.label_source},
        "clean": _prediction(clean, labels), "adversarial": _prediction(adv, labels),
        "adversarial_8bit": _prediction(adv8, labels),
        "eight_bit": {
            "adversarial.png": "x_adv_8bit = round(x_adv·255)/255, the 8-bit image; its prediction is "
                               "'adversarial_8bit' and metrics 'success_8bit'",
            "arrays.npz": "'x_adv' the float32 output of the method (prediction 'adversarial', metrics 'success', "
                          "the norms); 'x_adv_8bit' the 8-bit image of adversarial.png",
            "finish": "minimum-norm methods only: x + (1+η)·(x_adv − x), rounded, for the smallest η of 0.02·2^k "
                      "(k < 20) that keeps the attack fooling once rounded",
            "overshoot": "gave up" if eta != eta else eta,
        },
        "metrics": metrics.sample(0),
        "region_boxes": region.tolist(), "top_perturbation_boxes": tiles.tolist(),
        "box_format": "(top, left, height, width) in pixels of the model-sized image",
    }


def misclassified_text(summary: dict) -> str:
    """The outcome sentence for an image the model already gets wrong (the ASR criterion skips it)."""
    clean, label = summary["clean"], summary["label"]
    return (f"Already misclassified: the model predicts '{clean['name']}' ({clean['prob']:.1%}) for an image "
            f"labelled '{label['name']}', so there is nothing to fool; not counted in ASR. Attack the prediction "
            "instead (the clean prediction as the label) to see the attack move it.")


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
    summary = image_summary(model, x, result, scan, metrics, name)
    summary["warnings"] = region_warnings(scan.grid, cfg.budget) if get_method(method).spatial else []
    summary["already_misclassified"] = not summary["metrics"]["evaluated"]
    if summary["already_misclassified"]:
        summary["warnings"].append(misclassified_text(summary))
    elif get_method(method).failure and not summary["metrics"]["success"]:
        summary["warnings"].append(get_method(method).failure.format(cfg=cfg))
    return ImageReport(x, result, scan, metrics, summary)


def attack_image(model, image, cfg: AttackConfig, method: str = "sd-sgsm", label: int | None = None,
                 scan: ScanResult | None = None) -> ImageReport:
    """Load ``image`` (path, bytes or gallery key) at the model's size, then ``attack_tensor``."""
    x, gallery_label, name = resolve_image(image, model.input_size)
    return attack_tensor(model, x, cfg, method, gallery_label if label is None else label, name, scan)


def metrics_csv(summaries: list[dict]) -> str:
    """CSV text, one row per single-image summary: image, model, method, labels, 'evaluated', every
    registry per-sample column (success, l2, linf, ssim, time_s, scan_time_s, attack_time_s, …), criterion."""
    buf = io.StringIO()
    cols = ["image", "model", "method", "label", "clean", "adversarial", "evaluated",
            *(m.source for m in METRICS.values()), "criterion"]
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        m = s["metrics"]
        values = {k: (v if isinstance(v, (bool, str)) else f"{v:.6f}") for k, v in m.items() if k in cols}
        writer.writerow({**values, "image": s["image"], "model": s["model"], "method": s["method"],
                         "label": s["label"]["name"], "clean": s["clean"]["name"],
                         "adversarial": s["adversarial"]["name"], "criterion": m["criterion"]})
    return buf.getvalue()


def _hwc(t: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float32 array."""
    return t[0].detach().float().permute(1, 2, 0).cpu().numpy().astype(np.float32)


def image_record(report: ImageReport) -> dict:
    """The numpy record of one single-image run (what the app caches; :func:`image_files` input).

    Keys: original, adversarial, perturbation_x5 (×5 around grey, Fig. 5/6), delta — (H, W, 3)
    float32; budget (H, W) E; saliency_grid (nh, nw); saliency_map (H, W) upsampled Δ (eq. 2);
    boxes (P, 4) windows; region_boxes (k, 4) red R; tile_boxes (k, 4) yellow top-perturbation
    tiles (top, left, h, w); summary (result.json); arrays {x, x_adv, x_adv_8bit, saliency, budget}
    float32 NCHW. 'adversarial' (adversarial.png, the Explorer's image) is the 8-bit image x_adv_8bit;
    perturbation_x5 and delta are those of the float x_adv, the method's output.
    """
    x, r, scan = report.x, report.result, report.scan
    h, w = x.shape[2:]
    f32 = lambda t: t.detach().float().cpu().numpy().astype(np.float32)  # noqa: E731
    x8 = r.x_adv_8bit if r.x_adv_8bit is not None else quantise(r.x_adv)
    return {
        "original": _hwc(x), "adversarial": _hwc(x8), "perturbation_x5": _hwc(amplify(x, r.x_adv)),
        "delta": _hwc(r.x_adv - x), "budget": f32(r.budget[0, 0]), "saliency_grid": f32(scan.grid[0]),
        "saliency_map": f32(upsample_grid(scan.grid, scan.boxes, h, w)[0]), "boxes": scan.boxes.cpu().numpy(),
        "region_boxes": np.asarray(report.summary["region_boxes"], dtype=np.int64).reshape(-1, 4),
        "tile_boxes": np.asarray(report.summary["top_perturbation_boxes"], dtype=np.int64).reshape(-1, 4),
        "summary": report.summary,
        "arrays": {"x": f32(x), "x_adv": f32(r.x_adv), "x_adv_8bit": f32(x8), "saliency": f32(scan.grid),
                   "budget": f32(r.budget)},
    }


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive of the arrays as float32 (zip entries carry the fixed 1980 date: same arrays, same bytes)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    return buf.getvalue()


def image_files(record: dict) -> dict[str, bytes]:
    """The seven output files of one single-image run as {name: bytes} (order of OUTPUT_FILES).

    original/adversarial PNGs; perturbation_x5.png with the yellow top-perturbation tiles;
    saliency.png = the saliency heat map blended over the photo with the red region boxes;
    result.json; metrics.csv; arrays.npz. Deterministic: the same record gives the same bytes.
    """
    files = {
        "original.png": png_bytes(to_pil(record["original"])),
        "adversarial.png": png_bytes(to_pil(record["adversarial"])),
        "perturbation_x5.png": png_bytes(draw_boxes(to_pil(record["perturbation_x5"]), record["tile_boxes"],
                                                    YELLOW)),
        "saliency.png": png_bytes(saliency_image(record["saliency_map"], record["region_boxes"],
                                                 record["original"])),
        "result.json": json.dumps(record["summary"], indent=2, ensure_ascii=False).encode("utf-8"),
        "metrics.csv": metrics_csv([record["summary"]]).encode("utf-8"),
        "arrays.npz": npz_bytes(record["arrays"]),
    }
    return {name: files[name] for name in OUTPUT_FILES}


def write_outputs(report: ImageReport, out: str | Path) -> list[Path]:
    """The CLI's seven files for one report: ``write_files(image_files(image_record(report)), out)``."""
    return write_files(image_files(image_record(report)), out)
