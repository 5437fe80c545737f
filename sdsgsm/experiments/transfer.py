"""Transferability: craft x_adv on a source model, evaluate it on target models (Papernot et al. 2016).

Adversarial examples crafted on one model often fool another (Papernot et al. 2016; Liu et al.
2017), which makes black-box attacks possible: the attacker crafts on a surrogate it owns. The
FGSM family's momentum (MI-FGSM, Dong et al. 2018), Nesterov look-ahead (NI-FGSM, Lin et al.
2020) and gradient smoothing (TI-FGSM, Dong et al. 2019) were designed to transfer better, and an
**ensemble source** (the mean of several models' logits, :class:`sdsgsm.ensemble.Ensemble`; Liu et
al. 2017, Tramèr et al. 2018) is a black-box strategy: hold the target out of it.

:func:`run_transfer` is pure (no streamlit, no files). For each method and each source it crafts
x_adv **once** with the registry method (the benchmark's batches, seeds and shared zero-out scan,
so a source equal to its target reproduces the white-box benchmark exactly) and classifies it with
every target. Every model sees the same ``size``-px image (:mod:`sdsgsm.ensemble`: a model of
another native size resizes bilinearly inside its forward).

ASR criterion (:data:`CRITERION`): a (source, target) cell counts the samples that **both** the source
and the target classify correctly when clean; success = the target's prediction of x_adv differs
from the label (an unknown label, −1, is replaced by the source's clean prediction, as in the benchmark, so
the target must then agree with the source). L2, L∞, SSIM and time are properties of x_adv, hence of the
source: measured through the metric registry over every sample attacked on that source (its clean-correct ones).

Scaling to an L∞ budget (``scale_linf``, :data:`sdsgsm.params.TRANSFER_PARAMS`, default 0 = off): a minimum-norm
attack (DeepFool, SmoothFool, CW) stops just past the source's decision boundary, so its raw perturbation
rarely transfers. SmoothFool's transfer study (Dabouei, Soleymani, Taherkhani, Dawson & Nasrabadi, WACV 2020,
Table 4) rescales every perturbation r = x_adv − x to L∞ = 16/255 before handing it to the target models:
x_t = clip(x + r·(s / ‖r‖∞), 0, 1) (:func:`scale_to_linf`). With ``scale_linf`` = s > 0 every target (the
source itself included) classifies x_t, and the L2, L∞ and SSIM columns are those of x_t; the source's white-box
ASR (``source_asr``) stays that of the attack itself. A sample whose r is zero is left as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks import METHODS, AttackConfig, method_label
from sdsgsm.ensemble import ModelSpec
from sdsgsm.experiments.runner import (
    ExperimentResult,
    UnitStore,
    cfg_map,
    clean_logits,
    fingerprint_model,
    fingerprint_tensor,
    package_versions,
    parse_methods,
    result_files,
    select,
    warm_up,
)
from sdsgsm.metrics import evaluate, l2_norms, linf_norms, ssim_scores, summarise
from sdsgsm.occlusion import occlusion_scan
from sdsgsm.params import TRANSFER_PARAMS, check

DEFAULT_METHODS = ("fgsm", "ifgsm", "mifgsm", "nifgsm", "tifgsm", "pgd", "sd-sgsm")
CRITERION = ("ASR over samples that both the source and the target classify correctly when clean (clean "
             "prediction = label); success = the target's prediction of x_adv differs from the label")
RESIZE_RULE = ("every attack and evaluation works on one {size}-px image; a model of another native size resizes "
               "it bilinearly (align_corners=False, differentiable) inside its forward, so the target sees exactly "
               "the x_adv crafted on the source")
RELATIONS = {"white-box": "the target is the source", "member": "the target is a member of the ensemble source",
             "held-out": "the target is not part of the source (black-box transfer)"}
SAMPLE_COLUMNS = ["method", "source", "source_models", "target", "target_models", "relation", "index", "key",
                  "label", "source_clean_pred", "source_adv_pred", "target_clean_pred", "target_adv_pred",
                  "evaluated", "success", "l2", "linf", "ssim", "time_s", "batch"]
SUMMARY_COLUMNS = ["method", "source", "source_models", "target", "target_models", "relation", "n", "asr",
                   "source_asr", "n_source", "l2_mean", "l2_std", "linf_max", "ssim_mean", "ssim_std", "time_s_mean",
                   "n_total", "steps", "eps", "size", "complete", "criterion"]
SCALE_RULE = ("every perturbation r = x_adv − x is scaled to L∞ = {s:g}/255 before the targets classify it, "
              "x_t = clip(x + r·s/‖r‖∞, 0, 1) (SmoothFool, Dabouei et al. WACV 2020, Table 4); L2, L∞ and SSIM are "
              "those of x_t, the source's white-box ASR that of the attack itself")
OUTPUT_FILES = ("transfer.csv", "transfer_per_sample.csv", "transfer.md", "transfer.json")
Model = tuple[ModelSpec, torch.nn.Module]


def relation(source: ModelSpec, target: ModelSpec) -> str:
    """'white-box' (target = source), 'member' (target in the ensemble source) or 'held-out'."""
    if source == target:
        return "white-box"
    return "member" if not target.ensemble and set(target.members) <= set(source.members) else "held-out"


@dataclass
class TransferResult(ExperimentResult):
    """summary: one row per (method, source, target) (SUMMARY_COLUMNS); per_sample: one row per
    (method, source, target, sample) (SAMPLE_COLUMNS); config: JSON-ready settings; stopped: ended early;
    adversarial: {(method, source): (indices (M,), x_adv (M, 3, S, S) float32 numpy)} of the attacked
    samples (kept in memory for the app's example image; not written to files)."""

    adversarial: dict = field(default_factory=dict)

    def matrix(self, method: str, value: str = "asr") -> pd.DataFrame:
        """Sources × targets of ``value`` for one method (ASR in %), in the run's order; NaN = not run."""
        rows = self.summary[self.summary["method"] == method]
        sources = [s["label"] for s in self.config["sources"]]
        targets = [t["label"] for t in self.config["targets"]]
        m = rows.pivot(index="source", columns="target", values=value).reindex(index=sources, columns=targets)
        m.index.name, m.columns.name = "source", "target"
        return m * 100.0 if value == "asr" else m

    def panels(self) -> list[tuple[str, pd.DataFrame]]:
        """(method, ASR % matrix) for every method with results: the figure's panels."""
        done = set(self.summary["method"])
        return [(m, self.matrix(m)) for m in self.config["methods"] if m in done]

    def source_table(self) -> pd.DataFrame:
        """One row per (method, source): white-box ASR, n attacked, mean L2 / L∞ max / SSIM / time."""
        cols = ["method", "source", "source_models", "n_source", "source_asr", "l2_mean", "l2_std", "linf_max",
                "ssim_mean", "ssim_std", "time_s_mean"]
        return self.summary[cols].drop_duplicates(["method", "source"]).reset_index(drop=True)


def scale_to_linf(x: torch.Tensor, x_adv: torch.Tensor, linf: float) -> torch.Tensor:
    """x_t = clip(x + r·(linf / ‖r‖∞), 0, 1) per sample, r = x_adv − x (SmoothFool, Dabouei et al. WACV 2020,
    Table 4: every perturbation scaled to L∞ = 16/255 before transfer); x (N, C, H, W). A zero r is kept.
    The clip to [0, 1] can leave a pixel's change below ``linf``, never above it."""
    r = x_adv - x
    norm = r.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    factor = torch.where(norm > 0, linf / norm.clamp_min(1e-12), torch.ones_like(norm))
    return (x + r * factor).clamp(0.0, 1.0)


def _target_clean(targets: list[Model], x: torch.Tensor, batch_size: int) -> dict[str, np.ndarray]:
    """Each target's clean predictions (N,) on x, by label."""
    return {spec.label: clean_logits(model, x, batch_size).argmax(1).cpu().numpy() for spec, model in targets}


def _target_rows(rows: pd.DataFrame, src: ModelSpec, targets: list[Model], clean: dict, x_adv: torch.Tensor,
                 label: np.ndarray, idx: np.ndarray) -> list[pd.DataFrame]:
    """Per-target rows of one attacked batch: each target classifies x_adv (the same batch as crafted)."""
    out = []
    for spec, model in targets:
        with torch.inference_mode():
            adv = model(x_adv).float().argmax(1).cpu().numpy()
        t_clean = clean[spec.label][idx]
        out.append(rows.assign(target=spec.label, target_models=spec.models, relation=relation(src, spec),
                               target_clean_pred=t_clean, target_adv_pred=adv, evaluated=t_clean == label,
                               success=adv != label))
    return out


@dataclass
class _Source:
    """One source's clean pass: labels used, indices attacked (its clean-correct samples), keys."""

    spec: ModelSpec
    model: torch.nn.Module
    y: torch.Tensor
    idx: torch.Tensor
    keys: list[str]


def _source(spec: ModelSpec, model, x: torch.Tensor, y, batch_size: int, keys: list[str]) -> _Source:
    """The source's clean pass (the benchmark's ``_select``): labels used and its clean-correct indices."""
    y_used, _, _, idx = select(model, x, y, batch_size, "clean_correct")
    return _Source(spec, model, y_used, idx, keys)


def _attack_source(src: _Source, x: torch.Tensor, targets: list[Model], clean: dict, method: str,
                   cfg: AttackConfig, batch_size: int, tick: Callable[[int], bool], scans: dict,
                   adv: list, scale_linf: float = 0.0) -> tuple[list, bool]:
    """Craft with one method on one source in the benchmark's batches; rows for every target; appends
    (indices, x_adv numpy) per batch to ``adv``. ``tick(n)`` reports progress and returns True to stop
    before the next batch. ``scale_linf`` > 0: the targets see :func:`scale_to_linf` of x_adv."""
    m, parts = METHODS[method], []
    for b, start in enumerate(range(0, len(src.idx), batch_size)):
        if tick(0):
            return parts, True
        idx = src.idx[start:start + batch_size]
        xb, yb = x[idx], src.y[idx]
        if m.spatial and (b, cfg.scan) not in scans:  # one zero-out scan per batch, shared by the spatial methods
            scans[(b, cfg.scan)] = occlusion_scan(src.model, xb, cfg.scan, y=yb)
        result = m.fn(src.model, xb, yb, cfg, scan=scans.get((b, cfg.scan)) if m.spatial else None)
        per = evaluate(xb, result).per_sample
        x_t = result.x_adv
        if scale_linf > 0:  # the L2 / L∞ / SSIM of what the targets see
            x_t = scale_to_linf(xb, result.x_adv, scale_linf)
            per = per.assign(l2=l2_norms(xb, x_t), linf=linf_norms(xb, x_t), ssim=ssim_scores(xb, x_t))
        i = idx.cpu().numpy()
        rows = pd.DataFrame({"method": method, "source": src.spec.label, "source_models": src.spec.models,
                             "index": i, "key": [src.keys[j] for j in i], "label": result.y.cpu().numpy(),
                             "source_clean_pred": result.clean_pred.cpu().numpy(),
                             "source_adv_pred": result.adv_pred.cpu().numpy(), "source_success": per["success"],
                             **{c: per[c].to_numpy() for c in ("l2", "linf", "ssim", "time_s")}, "batch": b})
        parts += _target_rows(rows, src.spec, targets, clean, x_t, rows["label"].to_numpy(), i)
        adv.append((i, x_t.detach().float().cpu().numpy()))
        tick(len(idx))
    return parts, False


def _craft_all(srcs: list[_Source], x, targets, clean, methods, cfg_of, batch_size, tick, state,
               units: UnitStore | None = None, scale_linf: float = 0.0) -> tuple:
    """Every (source, method) in order: (per-target rows, [(method, source, complete)], x_adv per pair,
    stopped). The zero-out scan of a batch is shared by the source's spatial methods. A (method, source)
    finished by an earlier run is read back from ``units`` (its x_adv is not kept then)."""
    parts, done, adversarial = [], [], {}
    for src in srcs:
        scans = {}
        for k, method in enumerate(methods):
            state["label"] = f"{method} on {src.spec.label}"
            key = UnitStore.key(method, src.spec.label)
            if units is not None and key in units:
                parts += units.get(key)[0]
                done.append((method, src.spec.label, True))
                tick(len(src.idx))
                continue
            warm_up(src.model, x[src.idx[:1]], method, k > 0)
            adv = []
            got, stopped = _attack_source(src, x, targets, clean, method, cfg_of[method], batch_size, tick, scans,
                                          adv, scale_linf)
            if units is not None and not stopped and got:
                got = [pd.concat(got, ignore_index=True)]
                units.add(key, got)
            parts += got
            if adv:
                adversarial[(method, src.spec.label)] = (np.concatenate([a for a, _ in adv]),
                                                         np.concatenate([b for _, b in adv]))
            done.append((method, src.spec.label, not stopped))
            if stopped:
                return parts, done, adversarial, True
    return parts, done, adversarial, False


def run_transfer(sources: list[Model], targets: list[Model], x: torch.Tensor, y: torch.Tensor | None,
                 methods: list[str], cfgs: dict[str, AttackConfig] | AttackConfig, batch_size: int = 16,
                 progress: Callable[[str, int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, *, keys: list[str] | None = None,
                 data: str = "", meta: dict | None = None, units: UnitStore | None = None,
                 scale_linf: float = TRANSFER_PARAMS["scale_linf"].default) -> TransferResult:
    """The transfer matrix (source × target ASR per method) and each source's L2 / SSIM (Papernot et al. 2016).

    Args:
        sources, targets: (ModelSpec, model) pairs; every model maps (B, 3, S, S) in [0, 1] to (B, K)
            logits over one shared class list (build them with :func:`sdsgsm.ensemble.build`).
        x: (N, 3, S, S) in [0, 1]; y: (N,) labels (−1 or None: the source's clean prediction).
        methods: registry names; cfgs: one AttackConfig or one per method.
        batch_size: images per attack call; progress(text, done, total) counts attacked samples over
            all (source, method) pairs; should_stop: polled before every batch (finished batches are kept).
        units: a :class:`~sdsgsm.experiments.runner.UnitStore` recording every finished (method, source); those
            an earlier run with the same configuration finished are read back, not run.
        scale_linf: 0 (off) or the L∞ every perturbation is scaled to before the targets see it
            (:func:`scale_to_linf`; SmoothFool's Table 4 uses 16/255).
    Returns a TransferResult. Raises ValueError for bad methods / batch size or a source that gets no
    image right.
    """
    methods = parse_methods(methods)
    cfg_of = cfg_map(methods, cfgs)
    check("scale_linf", scale_linf, TRANSFER_PARAMS)
    scale_linf = float(scale_linf)
    if not sources or not targets:
        raise ValueError("Give at least one source and one target.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Batch size must be a positive integer (got {batch_size!r}).")
    t0, x = time.perf_counter(), x.detach().float()
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    clean = _target_clean(targets, x, batch_size)
    srcs = [_source(spec, model, x, y, batch_size, keys) for spec, model in sources]
    state = {"done": 0, "total": len(methods) * sum(len(s.idx) for s in srcs), "label": ""}

    def tick(n: int) -> bool:
        state["done"] += n
        if progress:
            progress(state["label"], state["done"], state["total"])
        return n == 0 and should_stop is not None and should_stop()

    if units is not None:
        units.begin({"experiment": "transfer", "methods": methods, "attack_configs": cfg_of, "batch_size": batch_size,
                     "sources": {s.label: fingerprint_model(m) for s, m in sources},
                     "targets": {t.label: fingerprint_model(m) for t, m in targets}, "data": data, "keys": keys,
                     "images": fingerprint_tensor(x), "labels": None if y is None else fingerprint_tensor(y),
                     "device": str(x.device), **({"scale_linf": scale_linf} if scale_linf > 0 else {})},
                    len(methods) * len(srcs))
    parts, done, adversarial, stopped = _craft_all(srcs, x, targets, clean, methods, cfg_of, batch_size, tick, state,
                                                   units, scale_linf)
    per_sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*SAMPLE_COLUMNS,
                                                                                          "source_success"])
    config = _config(sources, targets, methods, cfg_of, srcs, x, data, keys, time.perf_counter() - t0, meta)
    config["scale_linf"] = scale_linf
    if scale_linf > 0:
        config["scale_linf_rule"] = SCALE_RULE.format(s=scale_linf * 255)
    summary = _summary(per_sample, cfg_of, done, config)
    return TransferResult(summary, per_sample[SAMPLE_COLUMNS], config, stopped, adversarial)


def _summary(per_sample: pd.DataFrame, cfg_of: dict, done: list, config: dict) -> pd.DataFrame:
    """One row per (method, source, target), via the one aggregator :func:`sdsgsm.metrics.summarise`:
    the cell's ASR over its evaluated samples; the source's white-box ASR, L2, SSIM, time over all it attacked."""
    rows = []
    complete = {(m, s): ok for m, s, ok in done}
    for (method, source, target), cell in per_sample.groupby(["method", "source", "target"], sort=False):
        src_rows = cell.assign(evaluated=True, success=cell["source_success"])
        src = summarise(src_rows)
        tgt = summarise(cell)
        cfg, m = cfg_of[method], METHODS[method]
        rows.append({"method": method, "source": source, "source_models": cell["source_models"].iloc[0],
                     "target": target, "target_models": cell["target_models"].iloc[0],
                     "relation": cell["relation"].iloc[0], "n": tgt["n"], "asr": tgt["asr"],
                     "source_asr": src["asr"], "n_source": src["n"], **{k: src[k] for k in (
                         "l2_mean", "l2_std", "linf_max", "ssim_mean", "ssim_std", "time_s_mean")},
                     "n_total": config["n_total"], "steps": cfg.steps if m.multi_step else 1,
                     "eps": cfg.budget.eps_strong if m.spatial else cfg.eps, "size": config["size"],
                     "complete": complete[(method, source)], "criterion": CRITERION})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _model_info(spec: ModelSpec, model) -> dict:
    members = list(model.members) if spec.ensemble else [model]
    return {"label": spec.label, "models": spec.models, "ensemble": spec.ensemble,
            "native_sizes": [int(getattr(m, "native_size", m.input_size)) for m in members]}


def _config(sources, targets, methods, cfg_of, srcs, x, data, keys, seconds, meta) -> dict:
    """transfer.json's content: models (ensembles with their members), sizes, resizing rule, methods and
    their AttackConfigs, criterion, counts, seed, device, versions and wall time."""
    from datetime import UTC, datetime

    size = int(x.shape[-1])
    return {"created_utc": datetime.now(UTC).isoformat(timespec="seconds"), "data": data, "n_total": len(x),
            "size": size, "resize_rule": RESIZE_RULE.format(size=size), "criterion": CRITERION,
            "relations": RELATIONS, "sources": [_model_info(s, m) for s, m in sources],
            "targets": [_model_info(s, m) for s, m in targets], "methods": methods,
            "n_clean_correct": {s.spec.label: len(s.idx) for s in srcs},
            "attack_configs": {m: asdict(c) for m, c in cfg_of.items()},
            "seed": sorted({c.seed for c in cfg_of.values()}), "device": str(x.device),
            "torch_threads": torch.get_num_threads(), "wall_time_s": seconds, "keys": keys,
            "versions": package_versions(), **(meta or {})}


def merge_transfer(parts: list[TransferResult]) -> TransferResult:
    """Join runs over the same data and targets (e.g. one per (source, method), as the app caches them):
    rows concatenated in order, sources and methods united in order, wall time summed."""
    if not parts:
        raise ValueError("Nothing to merge.")
    config = dict(parts[-1].config)
    config["sources"] = list({s["label"]: s for p in parts for s in p.config["sources"]}.values())
    config["methods"] = list(dict.fromkeys(m for p in parts for m in p.config["methods"]))
    config["n_clean_correct"] = {k: v for p in parts for k, v in p.config["n_clean_correct"].items()}
    config["attack_configs"] = {k: v for p in parts for k, v in p.config["attack_configs"].items()}
    config["wall_time_s"] = sum(p.config["wall_time_s"] for p in parts)
    stopped = any(p.stopped for p in parts)
    return TransferResult(pd.concat([p.summary for p in parts], ignore_index=True),
                          pd.concat([p.per_sample for p in parts], ignore_index=True), config, stopped,
                          {k: v for p in parts for k, v in p.adversarial.items()})


def _md(cells: pd.DataFrame) -> str:
    """A frame of display strings as a GitHub Markdown table (:class:`sdsgsm.render.tables.Table`, nothing bold)."""
    from sdsgsm.render.tables import Table

    cells = cells.astype(str)
    return Table(cells, cells.map(lambda _: False), tuple(cells.columns)).markdown()


def source_cells(result: TransferResult) -> pd.DataFrame:
    """The per-source table for display: method, source, its models, n, white-box ASR (%), L2, L∞ max, SSIM,
    time per sample (s), with the metric registry's digits."""
    from sdsgsm.metrics import METRICS, format_metric

    t = result.source_table()
    fmt = {"source_asr": "asr", "l2_mean": "l2", "linf_max": "linf", "ssim_mean": "ssim", "time_s_mean": "time_s"}
    out = t[["method", "source", "source_models", "n_source"]].rename(
        columns={"method": "Method", "source_models": "models", "n_source": "n"})
    out["Method"] = [method_label(m) for m in out["Method"]]
    for col, key in fmt.items():
        m = METRICS[key]
        head = {"asr": "White-box ASR (%)", "linf": f"L∞ max ({m.unit})"}.get(key, m.header)
        out[head] = [format_metric(key, v, unit=False) for v in t[col]]
    return out


def transfer_markdown(result: TransferResult) -> str:
    """The matrices (one per method, ASR % with n per cell) and the per-source L2 / SSIM table, with the criterion."""
    lines = []
    for method, mat in result.panels():
        n = result.matrix(method, "n")
        cells = pd.DataFrame({t: [("–" if pd.isna(mat.loc[s, t]) else f"{mat.loc[s, t]:.1f} (n={int(n.loc[s, t])})")
                                  for s in mat.index] for t in mat.columns})
        cells.insert(0, "source \\ target", list(mat.index))
        lines += [f"### {method_label(method)}: ASR (%), source (rows) → target (columns)", "", _md(cells), ""]
    lines += ["### Perturbation per source (white-box ASR over the source's clean-correct samples)", "",
              _md(source_cells(result)), "", f"ASR criterion: {CRITERION}.",
              f"Images: {result.config['resize_rule']}.",
              "Models: " + "; ".join(f"{s['label']} = {s['models']}" for s in result.config["sources"]) + "."]
    if result.config.get("scale_linf_rule"):
        lines.append(f"Scaling: {result.config['scale_linf_rule']}.")
    return "\n".join(lines) + "\n"


def transfer_files(result: TransferResult) -> dict[str, bytes]:
    """transfer.csv, transfer_per_sample.csv, transfer.md and transfer.json as {name: bytes}."""
    return result_files(result, "transfer", transfer_markdown(result))


def transfer_figure(result: TransferResult):
    """The print figure: one ASR (%) panel per method in a grid, n in every cell, cells with n < 10
    framed (:func:`sdsgsm.render.figures.matrix_figure`)."""
    from sdsgsm.render import figures

    panels = result.panels()
    return figures.build(figures.matrix_figure, panels, "ASR (%)", digits=0,
                         counts=[result.matrix(m, "n") for m, _ in panels],
                         title="Transfer ASR (%): source model (rows) → target model (columns)")


def figure_files(result: TransferResult, stem: str = "transfer_matrix") -> dict[str, bytes]:
    """The matrix figure (:func:`transfer_figure`): ``<stem>.pdf/.png/.svg`` + ``<stem>.json`` caption
    (:func:`sdsgsm.render.figures.figure_files`)."""
    from sdsgsm.render import figures

    fig = transfer_figure(result)
    info = {k: result.config[k] for k in ("data", "n_total", "size", "resize_rule", "criterion", "sources",
                                          "targets", "methods", "seed")}
    return figures.figure_files(fig, stem, info, "transfer")


__all__ = ["CRITERION", "DEFAULT_METHODS", "OUTPUT_FILES", "RESIZE_RULE", "SCALE_RULE", "TransferResult",
           "figure_files", "merge_transfer", "relation", "run_transfer", "scale_to_linf", "source_cells",
           "transfer_figure", "transfer_files", "transfer_markdown"]
