"""How much and where a patch hurts: top-1 accuracy and target hits under pasted and universal patches, by
patch side and placement.

Two kinds of patch (:mod:`sdsgsm.attacks.patch`):

* ``paste``: a centre crop of another gallery image of a different class, the experiment of Sen, Sen &
  Chatterjee (*Adversarial Attacks on Image Classification Models: Analysis and Defense*, arXiv:2312.16880,
  2023): every evaluation image receives, in turn, a crop of every other image whose label differs; the
  "target" of a pair is the label of the image the crop came from.
* ``universal``: the shipped universal targeted patch (Brown et al., *Adversarial patch*, 2017), target
  "toaster" (ImageNet class 859).

Placement (eq. 11 of the SD-SGSM paper ties it to the zero-out scan, eq. 1–2): ``omega-star`` centres the
patch on the most sensitive window Ω* = argmax Δ_Ω, ``least-sensitive`` on the least sensitive one,
``centre`` on the image centre, ``random`` at a uniform position averaged over ``seeds`` seeds (seed s,
sample i draws from s + i). The scan is computed once per image and shared by both scan placements.

Accuracy counts prediction = gallery label over every (image, crop, seed) evaluation; target hit counts
prediction = the patch's class. Clean accuracy is reported beside them. Each (kind, side, placement) is
one unit of the runner's store, so a killed run keeps its finished rows. :func:`run_patch_eval` is pure
(no files); :func:`patch_eval_files` gives the outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from sdsgsm.attacks import AttackConfig
from sdsgsm.attacks.patch import TARGET, apply_patch, load_universal, paste_crop, patch_info, placements
from sdsgsm.experiments.runner import (
    ExperimentResult,
    UnitStore,
    clean_logits,
    fingerprint_model,
    fingerprint_tensor,
    package_versions,
    result_files,
)
from sdsgsm.occlusion import ScanConfig, occlusion_scan
from sdsgsm.params import PATCH_MODES, PLACEMENTS
from sdsgsm.render.patches import KIND_NAMES, PLACEMENT_NAMES

SIZES = (32, 48, 64)


@dataclass(frozen=True)
class PatchEval:
    """One evaluation: patch kinds (``paste``, ``universal``), sides (px), placements, the number of seeds a
    random placement is averaged over, and the zero-out scan window m (px) the scan placements use."""

    kinds: tuple[str, ...] = PATCH_MODES
    sizes: tuple[int, ...] = SIZES
    placements: tuple[str, ...] = PLACEMENTS
    seeds: int = 5
    window: int = ScanConfig().patch

    def __post_init__(self):
        for name, given, valid in (("kind", self.kinds, PATCH_MODES), ("placement", self.placements, PLACEMENTS)):
            bad = [v for v in given if v not in valid]
            if bad or not given:
                raise ValueError(f"Unknown patch {name} {', '.join(map(repr, bad)) or '(none given)'}; choose from "
                                 f"{', '.join(valid)}.")
        if not self.sizes or any(not 1 <= s <= 1024 for s in self.sizes):
            raise ValueError(f"Patch sides must be 1 … 1024 px (got {list(self.sizes)}).")
        if not 1 <= self.seeds <= 100:
            raise ValueError(f"seeds must be 1 … 100 (got {self.seeds}).")


def _pairs(kind: str, y: torch.Tensor, keys: list[str]) -> list[tuple[int, str | None, int]]:
    """(image index, crop source name or None, target class) for every evaluation of ``kind``."""
    if kind == "universal":
        return [(i, None, TARGET) for i in range(len(y))]
    names = [k.rsplit("/", 1)[-1].rsplit(".", 1)[0] for k in keys]
    return [(i, names[j], int(y[j])) for i in range(len(y)) for j in range(len(y)) if int(y[j]) != int(y[i])]


def _predict(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return clean_logits(model, x, batch_size).argmax(1)


def run_patch_eval(model, x: torch.Tensor, y: torch.Tensor, keys: Sequence[str], spec: PatchEval = PatchEval(), *,
                   batch_size: int = 32, progress: Callable[[str, int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, data: str = "", meta: dict | None = None,
                   units: UnitStore | None = None) -> ExperimentResult:
    """Accuracy and target hits under patches, by kind, side and placement.

    Args: model maps (B, 3, H, W) in [0, 1] to logits; x (N, 3, H, W) gallery images in [0, 1]; y (N,) their
    labels (all known); keys their gallery keys (a pasted crop is read from the gallery by name); spec what to
    evaluate; progress(text, done, total) counts units; should_stop polled before each unit.
    Returns ExperimentResult: summary one row per (kind, size, placement) with n (evaluations), accuracy %,
    target hit %, clean accuracy %; per_sample one row per (kind, size, placement, image, crop, seed).
    """
    t0 = time.perf_counter()
    x, y, keys = x.detach().float(), y.long(), list(keys)
    if bool((y < 0).any()):
        raise ValueError("Every evaluation image needs its label (accuracy under a patch is measured against it).")
    n, _, h, w = x.shape
    scan_cfg = ScanConfig(patch=spec.window)
    scan = occlusion_scan(model, x, scan_cfg)
    clean_acc = float((scan.clean_logits.argmax(1) == y.to(scan.clean_logits.device)).float().mean()) * 100
    plan = [(k, s, p) for k in spec.kinds for s in spec.sizes for p in spec.placements]
    if units is not None:
        units.begin({"experiment": "patch_eval", "spec": spec, "model": fingerprint_model(model), "data": data,
                     "keys": keys, "images": fingerprint_tensor(x), "labels": fingerprint_tensor(y),
                     "patches": {s: fingerprint_tensor(load_universal(s)) for s in spec.sizes}}, len(plan))
    per, rows, stopped = [], [], False
    for u, (kind, size, placement) in enumerate(plan):
        key = UnitStore.key(kind, size, placement)
        if units is not None and key in units:
            frames, unit_rows = units.get(key)
            per += frames
            rows += unit_rows
            continue
        if should_stop is not None and should_stop():
            stopped = True
            break
        if progress is not None:
            progress(f"{kind} patch, {size} px, {placement}", u, len(plan))
        pairs = _pairs(kind, y, keys)
        seeds = range(spec.seeds) if placement == "random" else (0,)
        recs = []
        for seed in seeds:
            where = placements(AttackConfig(placement=placement, seed=seed), scan, n, h, w,
                               min(size, h, w))
            crops = {}
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                xb = torch.cat([apply_patch(x[i:i + 1], _patch(kind, src, size, h, crops).to(x.device),
                                            where[i:i + 1])[0] for i, src, _ in chunk])
                pred = _predict(model, xb, batch_size).cpu()
                recs += [{"kind": kind, "size": size, "placement": placement, "index": i, "key": keys[i],
                          "crop": src or "toaster", "seed": seed, "label": int(y[i]), "target": t,
                          "pred": int(p)} for (i, src, t), p in zip(chunk, pred.tolist())]
        frame = pd.DataFrame(recs)
        row = {"kind": kind, "size": size, "placement": placement, "n": len(frame),
               "accuracy": 100 * float((frame["pred"] == frame["label"]).mean()),
               "target_hit": 100 * float((frame["pred"] == frame["target"]).mean()), "clean_accuracy": clean_acc}
        per.append(frame)
        rows.append(row)
        if units is not None:
            units.add(key, [frame], [row])
    if progress is not None:
        progress("patch evaluation done", len(rows), len(plan))
    config = {"experiment": "patch_eval", "spec": {**spec.__dict__}, "data": data, "n_images": n,
              "model": getattr(model, "name", ""), "clean_accuracy": clean_acc, "target": TARGET,
              "scan": {"window": spec.window, "stride": scan_cfg.stride, "score": scan_cfg.score},
              "wall_time_s": round(time.perf_counter() - t0, 1), "versions": package_versions(), **(meta or {})}
    return ExperimentResult(pd.DataFrame(rows), pd.concat(per, ignore_index=True) if per else pd.DataFrame(),
                            config, stopped)


def _patch(kind: str, src: str | None, size: int, side: int, cache: dict) -> torch.Tensor:
    if (kind, src) not in cache:
        s = min(size, side)
        cache[(kind, src)] = load_universal(s) if kind == "universal" else paste_crop(src, s, side)
    return cache[(kind, src)]


def patch_eval_markdown(result: ExperimentResult) -> str:
    """One table per kind: rows patch side, columns placement, cells 'accuracy % (target hit %)'."""
    s, out = result.summary, []
    if not len(s):
        return "No unit finished.\n"
    out.append(f"Clean top-1 accuracy {result.config['clean_accuracy']:.0f} % on {result.config['n_images']} "
               f"images ({result.config['model']}); cells: top-1 accuracy under the patch % "
               "(prediction = the patch's class %).\n")
    for kind in dict.fromkeys(s["kind"]):
        part = s[s["kind"] == kind]
        cols = list(dict.fromkeys(part["placement"]))
        out.append(f"\n{KIND_NAMES[kind]}\n\n| side (px) | " + " | ".join(PLACEMENT_NAMES[c] for c in cols)
                   + " |\n|---|"
                   + "---|" * len(cols))
        for size in dict.fromkeys(part["size"]):
            cells = []
            for c in cols:
                r = part[(part["size"] == size) & (part["placement"] == c)]
                cells.append(f"{r['accuracy'].iloc[0]:.0f} ({r['target_hit'].iloc[0]:.0f})" if len(r) else "–")
            out.append(f"\n| {size} | " + " | ".join(cells) + " |")
        out.append("\n")
    return "".join(out)


def patch_eval_files(result: ExperimentResult, stem: str = "patch_eval") -> dict[str, bytes]:
    """Tables (CSV, per-sample CSV, Markdown, JSON), the placement figure ``<stem>_placement.pdf/.png/.svg/.json``
    (:func:`sdsgsm.render.patches.placement_figure`) and, when the shipped patches recorded one, their training
    curve ``<stem>_training_curve.*`` (:func:`sdsgsm.render.patches.curve_figure`)."""
    from sdsgsm.render import figures
    from sdsgsm.render.patches import curve_figure, placement_figure

    files = result_files(result, stem, patch_eval_markdown(result))
    if len(result.summary):
        fig = figures.build(placement_figure, result.summary, result.config["clean_accuracy"])
        info = {k: result.config[k] for k in ("spec", "data", "n_images", "model", "clean_accuracy", "target", "scan")}
        files.update(figures.figure_files(fig, f"{stem}_placement", info, "patch_placement"))
    curves = shipped_curves(result.config["spec"]["sizes"])
    if curves and "universal" in result.config["spec"]["kinds"]:
        info = {"patches": {name: {k: e.get(k) for k in ("command", "iterations", "seed", "data", "curve_data",
                                                           "sha256")} for name, e in patch_info()["patches"].items()}}
        files.update(figures.figure_files(figures.build(curve_figure, curves), f"{stem}_training_curve", info,
                                          "patch_training_curve"))
    return files


def shipped_curves(sizes=None) -> dict[int, list[dict]]:
    """{side: training curve} of the shipped universal patches that recorded one (``train-patch --curve-every``),
    limited to ``sizes`` when given."""
    return {e["size"]: e["curve"] for e in patch_info().get("patches", {}).values()
            if e.get("curve") and (sizes is None or e["size"] in sizes)}


def placement_sentence(summary: pd.DataFrame, kind: str, size: int) -> str:
    """What the placement comparison shows for one kind and side, computed from its rows."""
    part = summary[(summary["kind"] == kind) & (summary["size"] == size)].set_index("placement")
    if len(part) < 2:
        return ""
    worst, best = part["accuracy"].idxmin(), part["accuracy"].idxmax()
    names = {"omega-star": "at Ω* (the most sensitive window)", "least-sensitive": "at the least sensitive window",
             "centre": "at the centre", "random": "at random positions"}
    text = (f"A {size}-px {KIND_NAMES[kind]} hurts most {names[worst]} (top-1 {part.loc[worst, 'accuracy']:.0f} %) "
            f"and least {names[best]} ({part.loc[best, 'accuracy']:.0f} %)")
    if worst == "omega-star":
        text += ": the zero-out scan predicts where a patch does the most harm."
    else:
        text += f"; at Ω* it leaves {part.loc['omega-star', 'accuracy']:.0f} %." if "omega-star" in part.index else "."
    return text
