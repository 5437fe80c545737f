"""Universal perturbations in two folds: DeepFool's UAP (Moosavi-Dezfooli et al., CVPR 2017) against smooth
UAPs (Dabouei et al., WACV 2020, Algorithm 3), trained on one half of the images and evaluated on the other.

Folds: fold A = the even indices of the image set, fold B = the odd ones. Unit (setting, fold): train v
on that fold with :func:`sdsgsm.attacks.universal.universal_perturbation`, then evaluate it on the other
fold (held out). Fooling = c(clamp(x + v, 0, 1)) ≠ c(x) over all images of the set (the UAP definition,
:data:`sdsgsm.attacks.universal.FOOLING`). The transfer columns (like Dabouei et al.'s Table 5) apply the
same v to the held-out images and ask other models: every model sees the one 224-px image and resizes it
bilinearly inside its forward (:mod:`sdsgsm.ensemble`, as the transfer experiment moves images between
models). ‖v‖2, ‖v‖∞ and the roughness Ω / Ω_n (SmoothFool eq. 4) come from the metric registry with x = 0,
x_adv = v (so r = v).

:func:`run_universal` is pure (no streamlit, no files); finished units go to a
:class:`~sdsgsm.experiments.runner.UnitStore` (v included, as float16), so a stopped run resumes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks.universal import (
    DEEPFOOL_UAP,
    FOOLING,
    RECIPE,
    UniversalConfig,
    apply_perturbation,
    decode_perturbation,
    encode_perturbation,
    fooling_rate,
    predictions,
    universal_perturbation,
)
from sdsgsm.experiments.runner import ExperimentResult, UnitStore, fingerprint_model, fingerprint_tensor, result_files
from sdsgsm.metrics import METRICS, format_metric
from sdsgsm.outputs import package_versions

FOLDS = {"A": "even indices", "B": "odd indices"}
SUMMARY_COLUMNS = ["setting", "inner", "sigma_g", "fold", "n_train", "n_test", "train_fooling", "test_fooling",
                   "l2", "linf_255", "roughness", "roughness_n", "passes", "seconds", "reached_tau"]
SAMPLE_COLUMNS = ["setting", "fold", "model", "index", "key", "clean_pred", "adv_pred", "fooled"]
OUTPUT_FILES = ("universal.csv", "universal_per_sample.csv", "universal.md", "universal.json")


def settings(inners: list[str], sigmas: list[float], base: UniversalConfig) -> list[UniversalConfig]:
    """One UniversalConfig per DeepFool entry and per σ_g of SmoothFool, in that order."""
    out = []
    for inner in inners:
        if inner == "deepfool":
            out.append(replace(base, inner="deepfool"))
        else:
            out += [replace(base, inner="smoothfool", sigma_g=float(s)) for s in sigmas]
    if not out:
        raise ValueError("No settings: give --inner deepfool and/or smoothfool (with --sigmas).")
    return list({c.name: c for c in out}.values())


def fold_indices(n: int, fold: str) -> np.ndarray:
    """Fold A = even indices, fold B = odd indices of n images."""
    if fold not in FOLDS:
        raise ValueError(f"Unknown fold {fold!r}; choose one of {', '.join(FOLDS)}.")
    return np.arange(0 if fold == "A" else 1, n, 2)


def perturbation_stats(v: torch.Tensor) -> dict:
    """‖v‖2, ‖v‖∞ (×1/255), Ω and Ω_n of v (3, H, W) through the metric registry (x = 0, x_adv = v)."""
    zero, res = torch.zeros_like(v[None]), SimpleNamespace(x_adv=v[None])
    return {"l2": float(METRICS["l2"].per_sample(zero, res)[0]),
            "linf_255": float(METRICS["linf"].per_sample(zero, res)[0]) * 255.0,
            "roughness": float(METRICS["roughness"].per_sample(zero, res)[0]),
            "roughness_n": float(METRICS["roughness_n"].per_sample(zero, res)[0])}


@dataclass
class UniversalResult(ExperimentResult):
    """summary: one row per (setting, fold) plus a 'mean' row per setting (SUMMARY_COLUMNS and the transfer
    columns ``fooling_<model>``); per_sample: one row per (setting, fold, model, held-out image);
    perturbations: {(setting, fold): v (3, H, W) float32}."""

    perturbations: dict = field(default_factory=dict)

    def means(self) -> pd.DataFrame:
        return self.summary[self.summary["fold"] == "mean"].reset_index(drop=True)


def _encode(v: torch.Tensor) -> str:
    return base64.b64encode(encode_perturbation(v)).decode("ascii")


def _unit(model, targets: list, x: torch.Tensor, keys: list[str], cfg: UniversalConfig, fold: str,
          should_stop, progress) -> tuple[dict, pd.DataFrame, torch.Tensor, bool]:
    """Train v on ``fold``, evaluate on the other: (summary row, per-sample rows, v, stopped)."""
    tr, te = fold_indices(len(x), fold), fold_indices(len(x), "B" if fold == "A" else "A")
    v, info = universal_perturbation(model, x[tr], None, cfg, should_stop=should_stop, progress=progress)
    row = {"setting": cfg.name, "inner": cfg.inner, "sigma_g": cfg.sigma_g if cfg.inner == "smoothfool" else None,
           "fold": fold, "n_train": len(tr), "n_test": len(te), "train_fooling": info["train_fooling_rate"] * 100,
           **perturbation_stats(v), "passes": info["passes"], "seconds": info["seconds"],
           "reached_tau": info["reached_tau"],
           "fooling_per_pass": [round(r * 100, 4) for r in info["fooling_per_pass"]]}
    parts = []
    for label, m in [("source", model), *targets]:
        xt = x[te]
        clean = predictions(m, xt)
        rate, fooled = fooling_rate(m, xt, v, clean)
        adv = predictions(m, apply_perturbation(xt, v))
        row["test_fooling" if label == "source" else f"fooling_{label}"] = rate * 100
        parts.append(pd.DataFrame({"setting": cfg.name, "fold": fold, "model": label, "index": te,
                                   "key": [keys[i] for i in te], "clean_pred": clean.cpu().numpy(),
                                   "adv_pred": adv.cpu().numpy(), "fooled": fooled.cpu().numpy()}))
    return row, pd.concat(parts, ignore_index=True), v, info["stopped"]


def run_universal(model, targets: list, x: torch.Tensor, cfgs: list[UniversalConfig], *, keys: list[str] | None = None,
                  data: str = "", folds: tuple[str, ...] = ("A", "B"), units: UnitStore | None = None,
                  progress: Callable[[str, int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, meta: dict | None = None) -> UniversalResult:
    """Every (setting, fold) unit in order (module docstring).

    Args: model: the source classifier (B, 3, S, S) -> (B, K); targets: [(label, model)] evaluated with the
    same v (transfer); x (N, 3, S, S) in [0, 1] (N ≥ 2); cfgs from :func:`settings`; units: a UnitStore
    (finished units are read back, not run); progress(text, done, total) counts training images visited;
    should_stop: polled before every image (the unit in progress is dropped, finished ones are kept).
    """
    if len(x) < 2:
        raise ValueError(f"Two folds need at least 2 images (got {len(x)}).")
    bad = [f for f in folds if f not in FOLDS]
    if bad:
        raise ValueError(f"Unknown fold {bad[0]!r}; choose from {', '.join(FOLDS)}.")
    t0, x = time.perf_counter(), x.detach().float()
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    plan = [(c, f) for c in cfgs for f in folds]
    sizes = {f: len(fold_indices(len(x), f)) for f in folds}
    total = sum(c.max_passes * sizes[f] for c, f in plan)
    state = {"base": 0}
    if units is not None:
        units.begin({"experiment": "universal", "settings": [asdict(c) for c in cfgs], "folds": list(folds),
                     "model": fingerprint_model(model), "targets": {t: fingerprint_model(m) for t, m in targets},
                     "data": data, "keys": keys, "images": fingerprint_tensor(x), "deepfool": DEEPFOOL_UAP},
                    len(plan))
    rows, parts, vs, stopped = [], [], {}, False
    for cfg, fold in plan:
        key = UnitStore.key(cfg.name, fold)
        span = cfg.max_passes * sizes[fold]

        def tick(text, done, _total, base=state["base"], fold=fold):
            if progress is not None:
                progress(f"{text} (fold {fold})", base + done, total)

        if units is not None and key in units:
            frames, got = units.get(key)
            row = dict(got[0])
            vs[(cfg.name, fold)] = decode_perturbation(base64.b64decode(row.pop("v")))
        else:
            row, frame, v, stopped = _unit(model, targets, x, keys, cfg, fold, should_stop, tick)
            if stopped:
                break
            vs[(cfg.name, fold)] = v
            frames = [frame]
            if units is not None:
                units.add(key, frames, [{**row, "v": _encode(v)}])
        rows.append(row)
        parts += frames
        state["base"] += span
        if progress is not None:
            progress(f"{cfg.name} fold {fold} done", state["base"], total)
    per_sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SAMPLE_COLUMNS)
    summary = _summary(rows, [t for t, _ in targets])
    config = {"created_utc": datetime.now(UTC).isoformat(timespec="seconds"), "data": data, "n_total": len(x),
              "folds": {f: FOLDS[f] for f in folds}, "fooling": FOOLING, "source": getattr(model, "name", ""),
              "targets": [t for t, _ in targets], "settings": [asdict(c) for c in cfgs], "deepfool": DEEPFOOL_UAP,
              "keys": keys, "wall_time_s": time.perf_counter() - t0, "torch_threads": torch.get_num_threads(),
              "fooling_per_pass": {f"{r['setting']}/{r['fold']}": r.get("fooling_per_pass") for r in rows},
              "versions": package_versions(), **(meta or {})}
    return UniversalResult(summary, per_sample, config, stopped, vs)


def _summary(rows: list[dict], targets: list[str]) -> pd.DataFrame:
    """Per (setting, fold) rows and a 'mean' row per setting (mean over its folds; seconds summed too as
    seconds_total)."""
    cols = SUMMARY_COLUMNS + [f"fooling_{t}" for t in targets]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    out = []
    for name, g in df.groupby("setting", sort=False):
        out.append(g)
        mean = {c: g[c].mean() for c in cols if c not in ("setting", "inner", "sigma_g", "fold", "reached_tau")}
        out.append(pd.DataFrame([{**mean, "setting": name, "inner": g["inner"].iloc[0], "sigma_g": g["sigma_g"].iloc[0],
                                  "fold": "mean", "reached_tau": bool(g["reached_tau"].all())}], columns=cols))
    return pd.concat(out, ignore_index=True)


# ----------------------------------------------------------------------------- tables and files
TABLE_HEADERS = {"setting": "Setting", "fold": "Train fold", "test_fooling": "Held-out fooling (%)",
                 "train_fooling": "Train fooling (%)", "l2": "‖v‖2", "linf_255": "‖v‖∞ (×1/255)", "roughness": "Ω",
                 "roughness_n": "Ω_n ×1e3", "passes": "Passes", "seconds": "Time (s)"}


def setting_label(name: str) -> str:
    """'deepfool' -> 'DeepFool (UAP)', 'smoothfool_sigma5' -> 'SmoothFool σ_g = 5'."""
    if name == "deepfool":
        return "DeepFool (UAP)"
    if name.startswith("smoothfool_sigma"):
        return f"SmoothFool σ_g = {name.removeprefix('smoothfool_sigma')}"
    return f"SmoothFool {name.removeprefix('smoothfool_')}"


def table_cells(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as display strings (metric registry digits for Ω / Ω_n, one decimal for rates)."""
    targets = [c for c in summary.columns if c.startswith("fooling_")]
    out = pd.DataFrame({"Setting": [setting_label(s) for s in summary["setting"]],
                        "Train fold": summary["fold"].astype(str)})
    for c in ("test_fooling", "train_fooling"):
        out[TABLE_HEADERS[c]] = [f"{v:.1f}" for v in summary[c]]
    for t in targets:
        out[f"{t.removeprefix('fooling_')} fooling (%)"] = [f"{v:.1f}" for v in summary[t]]
    out["‖v‖2"] = [f"{v:.3f}" for v in summary["l2"]]
    out["‖v‖∞ (×1/255)"] = [f"{v:.2f}" for v in summary["linf_255"]]
    out["Ω"] = [format_metric("roughness", v, unit=False) for v in summary["roughness"]]
    out["Ω_n ×1e3"] = [format_metric("roughness_n", v, unit=False) for v in summary["roughness_n"]]
    out["Passes"] = [f"{v:g}" for v in summary["passes"]]
    out["Time (s)"] = [f"{v:.0f}" for v in summary["seconds"]]
    return out


def _md(cells: pd.DataFrame) -> str:
    from sdsgsm.render.tables import Table

    cells = cells.astype(str)
    return Table(cells, cells.map(lambda _: False), tuple(cells.columns)).markdown()


def universal_markdown(result: UniversalResult) -> str:
    """The results table (per fold and mean) with the fooling definition and split."""
    c = result.config
    return "\n".join([
        f"### Universal perturbations on {c['source']}: trained on one fold, fooling measured on the other", "",
        _md(table_cells(result.summary)), "",
        f"Fooling: {c['fooling']}. Folds of {c['data']} ({c['n_total']} images): "
        + "; ".join(f"{k} = {v}" for k, v in c["folds"].items()) + ". Held-out and transfer columns: the v "
        "trained on the train fold applied to the other fold's images; transfer models resize the 224-px image "
        "bilinearly inside their forward.", ""])


def universal_files(result: UniversalResult) -> dict[str, bytes]:
    """universal.csv, universal_per_sample.csv, universal.md, universal.json as {name: bytes}."""
    return result_files(result, "universal", universal_markdown(result))


def asset_files(result: UniversalResult, fold: str = "A") -> dict[str, bytes]:
    """The perturbations trained on ``fold`` as ``<setting>.npy`` (float16, signed; decode with
    :func:`sdsgsm.attacks.universal.decode_perturbation`) and the recipe ``universal.json`` (command, seed,
    split, passes, ξ, σ_g, model, seconds, sha256 of each file, and the results table)."""
    files, entries = {}, {}
    rows = result.summary.set_index(["setting", "fold"])
    for cfg in result.config["settings"]:
        name = UniversalConfig(**cfg).name
        if (name, fold) not in result.perturbations:
            continue
        data = encode_perturbation(result.perturbations[(name, fold)])
        files[f"{name}.npy"] = data
        r = rows.loc[(name, fold)]
        entries[name] = {"file": f"{name}.npy", "sha256": hashlib.sha256(data).hexdigest(),
                         "label": setting_label(name),
                         "inner": cfg["inner"], "sigma_g": cfg["sigma_g"] if cfg["inner"] == "smoothfool" else None,
                         "xi": cfg["xi"], "tau": cfg["tau"], "max_passes": cfg["max_passes"],
                         "sf_clip_eps": cfg["sf_clip_eps"], "seed": cfg["seed"], "passes": int(r["passes"]),
                         "seconds": round(float(r["seconds"]), 1), "train_fold": fold,
                         "train_fooling": float(r["train_fooling"]), "test_fooling": float(r["test_fooling"])}
    recipe = {"what": "universal perturbations v (3, 224, 224), float16 .npy, signed, ‖v‖∞ ≤ ξ; apply as "
                      "clamp(x + v, 0, 1)", "model": result.config["source"], "data": result.config["data"],
              "train_split": f"fold {fold} ({FOLDS[fold]} of the {result.config['n_total']} images)",
              "command": result.config.get("command", ""), "fooling": result.config["fooling"],
              "deepfool": result.config["deepfool"], "perturbations": entries,
              "results": json.loads(result.summary.to_json(orient="records")),
              "wall_time_s": round(float(result.config["wall_time_s"]), 1)}
    files[RECIPE] = json.dumps(recipe, indent=2, ensure_ascii=False).encode("utf-8")
    return files


def figure_files(result: UniversalResult, stem: str = "universal_figure") -> dict[str, bytes]:
    """The figure (:func:`sdsgsm.render.universal.universal_figure`) as <stem>.pdf/.png/.svg/.json."""
    from sdsgsm.render import figures
    from sdsgsm.render.universal import universal_figure

    names = [UniversalConfig(**c).name for c in result.config["settings"]]
    shown = [(setting_label(n), result.perturbations[(n, "A")]) for n in names if (n, "A") in result.perturbations]
    fig = figures.build(universal_figure, shown, result.means().assign(label=lambda d: d["setting"].map(setting_label)))
    info = {k: result.config[k] for k in ("data", "n_total", "folds", "fooling", "source", "targets", "settings")}
    return figures.figure_files(fig, stem, info, "universal")


__all__ = ["FOLDS", "OUTPUT_FILES", "SAMPLE_COLUMNS", "SUMMARY_COLUMNS", "UniversalResult", "asset_files",
           "figure_files", "fold_indices", "perturbation_stats", "run_universal", "setting_label", "settings",
           "table_cells", "universal_files", "universal_markdown"]
