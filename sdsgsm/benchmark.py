"""Benchmark many methods on many images and write paper-style tables (paper §4.2, Tables 1–2).

``run_benchmark`` is a pure function (no streamlit, no files): it attacks the clean-correct
samples (default criterion) with every requested registry method in batches and returns
a :class:`BenchmarkResult` with one summary row per method, one row per (method, sample)
and a JSON-ready config. ``write_benchmark`` writes results.csv, per_sample.csv,
results.md, results.tex and config.json. Presets reproduce the settings of the paper's
Table 1 (single step, ε = 8/255) and Table 2 (T = 10, α = 4/255, ε_max = 8/255); see
:data:`PRESETS` for how the SD methods' dual budget is mapped under the ε_max cap.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import occlusion
from .attacks import METHODS, AttackConfig, Method, resolve_labels
from .data import load_cifar10, load_folder, load_gallery
from .metrics import ASR_CRITERION, evaluate
from .occlusion import ScanConfig, ScanResult, occlusion_scan

OUTPUT_FILES = ("results.csv", "per_sample.csv", "results.md", "results.tex", "config.json")
SUMMARY_COLUMNS = ["method", "n", "asr", "l2_mean", "l2_std", "linf_mean", "linf_max", "ssim_mean", "ssim_std",
                   "time_per_sample_s", "device", "model", "data", "linf_std", "n_attacked", "n_total", "steps",
                   "eps", "eps_weak", "bounded", "complete", "criterion"]
SAMPLE_COLUMNS = ["method", "index", "key", "label", "clean_pred", "adv_pred", "evaluated", "success",
                  "l2", "linf", "ssim", "time_s", "batch"]


@dataclass(frozen=True)
class Preset:
    """A named method list plus the numbers every method of it runs with."""

    name: str
    methods: tuple[str, ...]
    description: str
    eps: float
    eps_strong: float
    eps_weak: float
    steps: int
    alpha: float | None


PRESETS: dict[str, Preset] = {
    "table1": Preset(
        "table1", ("fgsm", "sgsm", "sd-fgsm", "sd-sgsm"),
        "Paper Table 1 (ablation): one step, ε = 8/255. SD methods: ε_strong = 8/255 on R, ε_weak = 4/255 "
        "elsewhere (the paper's SD L∞ of 0.0549 > 8/255 breaks its own ε_max cap, so it is not copied)",
        eps=8 / 255, eps_strong=8 / 255, eps_weak=4 / 255, steps=1, alpha=None),
    "table2": Preset(
        "table2", ("pgd", "jitter", "cw", "deepfool", "fab", "apgd", "apgd-dlr", "autoattack", "sd-sgsm"),
        "Paper Table 2: T = 10, α = 4/255, ε = ε_max = 8/255. SD-SGSM: ε_strong = 8/255, ε_weak = 4/255 (the "
        "paper's literal ε_g = ε_l = 4/255, L∞ 0.0157, is --eps-strong 4/255 --eps-weak 4/255)",
        eps=8 / 255, eps_strong=8 / 255, eps_weak=4 / 255, steps=10, alpha=4 / 255),
}


def preset_config(name: str, base: AttackConfig | None = None) -> tuple[list[str], AttackConfig]:
    """(methods, AttackConfig) of preset ``name``; other fields (ω, scan, region, seed, …) from ``base``."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    p, base = PRESETS[name], base or AttackConfig()
    budget = replace(base.budget, eps_strong=p.eps_strong, eps_weak=p.eps_weak)
    return list(p.methods), replace(base, eps=p.eps, steps=p.steps, alpha=p.alpha, budget=budget)


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


# ----------------------------------------------------------------------------- running
@dataclass
class BenchmarkResult:
    """summary: one row per method (SUMMARY_COLUMNS); per_sample: one row per (method, sample);
    config: every parameter, counts and package versions; stopped: ended early by should_stop."""

    summary: pd.DataFrame
    per_sample: pd.DataFrame
    config: dict
    stopped: bool = False

    @property
    def criterion_text(self) -> str:
        return self.config["criterion_text"]

    def markdown(self) -> str:
        return results_markdown(self)

    def latex(self) -> str:
        return results_latex(self)


def _model_device(model) -> torch.device:
    for t in (*model.buffers(), *model.parameters()):
        return t.device
    return torch.device("cpu")


def _clean_logits(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])


def _warm_up(model, x: torch.Tensor, method: str, warm: bool) -> None:
    """Untimed: one forward/backward pass (kernel selection, allocator) before the first method, and
    ART's slow import plus the classifier wrapper before an ART method, so no time pays for them."""
    if not warm:
        xb = x[:1].clone().requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.grad(model(xb).float().sum(), xb)
    if METHODS[method].backend == "art":
        import art.attacks.evasion  # noqa: F401

        from .attacks.art_baselines import art_classifier

        with torch.inference_mode():
            k = model(x[:1]).shape[1]
        art_classifier(model, tuple(x.shape[1:]), k)


def _cfg_map(methods: list[str], cfgs: dict[str, AttackConfig] | AttackConfig) -> dict[str, AttackConfig]:
    if isinstance(cfgs, AttackConfig):
        return dict.fromkeys(methods, cfgs)
    missing = [m for m in methods if m not in cfgs]
    if missing:
        raise ValueError(f"No AttackConfig given for {', '.join(missing)}.")
    return {m: cfgs[m] for m in methods}


def _scan_for(cache: dict, model, xb, yb, batch: int, cfg: ScanConfig) -> tuple[ScanResult, float]:
    """The zero-out scan of one batch, computed once and shared by the spatial methods."""
    if (batch, cfg) not in cache:
        t0 = time.perf_counter()
        scan = occlusion_scan(model, xb, cfg, y=yb)
        if xb.device.type == "cuda":
            torch.cuda.synchronize(xb.device)
        cache[(batch, cfg)] = (scan, time.perf_counter() - t0)
    return cache[(batch, cfg)]


def _sample_rows(method: str, idx: torch.Tensor, keys: list[str], result, metrics, seconds: float,
                 batch: int) -> pd.DataFrame:
    n = len(idx)
    return pd.DataFrame({
        "method": method, "index": idx.tolist(), "key": [keys[i] for i in idx.tolist()],
        "label": result.y.tolist(), "clean_pred": result.clean_pred.tolist(), "adv_pred": result.adv_pred.tolist(),
        "evaluated": metrics.evaluated, "success": metrics.success, "l2": metrics.l2, "linf": metrics.linf,
        "ssim": metrics.ssim, "time_s": np.full(n, seconds / n), "batch": batch})


def _steps(m: Method, cfg: AttackConfig) -> int:
    return cfg.steps if m.multi_step else 1


def _summary_row(method: str, df: pd.DataFrame, cfg: AttackConfig, complete: bool, info: dict) -> dict:
    """Aggregate one method's per-sample rows (mean and population std over the evaluated samples)."""
    m, ev = METHODS[method], df[df["evaluated"]]
    n = len(ev)
    row = {"method": method, "n": n, "asr": float(ev["success"].mean()) if n else math.nan}
    for key in ("l2", "linf", "ssim"):
        row[f"{key}_mean"] = float(ev[key].mean()) if n else math.nan
        row[f"{key}_std"] = float(ev[key].std(ddof=0)) if n else math.nan
    row["linf_max"] = float(ev["linf"].max()) if n else math.nan
    row["time_per_sample_s"] = float(df["time_s"].sum() / len(df))
    eps = cfg.budget.eps_strong if m.spatial else cfg.eps
    row.update(device=info["device"], model=info["model"], data=info["data"], n_attacked=len(df),
               n_total=info["n_total"], steps=_steps(m, cfg), eps=eps if m.bounded else math.nan,
               eps_weak=cfg.budget.eps_weak if m.spatial else math.nan, bounded=m.bounded, complete=complete,
               criterion=info["criterion"])
    return row


def run_benchmark(model, x: torch.Tensor, y: torch.Tensor | None, methods: list[str],
                  cfgs: dict[str, AttackConfig] | AttackConfig, batch_size: int = 16,
                  criterion: str = "clean_correct", progress: Callable[[str, int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, *, keys: list[str] | None = None,
                  data: str = "", meta: dict | None = None) -> BenchmarkResult:
    """Attack x with every method and measure ASR, L2, L∞, SSIM and time per sample (§4.2).

    Args:
        model: (B, 3, H, W) in [0, 1] -> (B, K) logits (a ``Classifier``).
        x: (N, 3, H, W) float in [0, 1]; y: (N,) labels, −1 or None = use the clean prediction.
        methods: registry names; cfgs: one AttackConfig for all, or one per method.
        batch_size: images per attack call (≥ 1).
        criterion: 'clean_correct' (attack and evaluate only samples the model gets right,
            default) or 'all' (attack everything; success = the prediction changes).
        progress: called as progress(method, done, total) when a method starts and after each
            batch; done/total count attacked samples over the whole run (all methods).
        should_stop: polled before every batch; True ends the run, keeping finished batches
            (the interrupted method is marked complete=False, later methods are left out).
        keys: N sample names for per_sample.csv; data: data-set name; meta: extra config entries.
    Returns a BenchmarkResult. Raises ValueError for unknown methods/criteria or when no
    sample is left to attack.
    """
    methods = parse_methods(methods)
    cfg_of = _cfg_map(methods, cfgs)
    if criterion not in ASR_CRITERION:
        raise ValueError(f"Unknown ASR criterion {criterion!r}; choose one of {', '.join(ASR_CRITERION)}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Batch size must be a positive integer (got {batch_size!r}).")
    t_start, device = time.perf_counter(), _model_device(model)
    x = x.detach().float().to(device)
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    y_used, label_source, correct, idx_all = _select(model, x, y, batch_size, criterion)
    info = {"device": str(device), "model": getattr(model, "name", type(model).__name__), "data": data,
            "n_total": len(x), "criterion": criterion}
    run = _Run(model, x, y_used, idx_all, keys, batch_size, criterion, progress, should_stop,
               total=len(methods) * len(idx_all))
    rows, parts, stopped = [], [], False
    for method in methods:
        df, stopped = run.method(method, cfg_of[method])
        if df is not None:
            parts.append(df)
            rows.append(_summary_row(method, df, cfg_of[method], complete=len(df) == len(idx_all), info=info))
        if stopped:
            break
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    per_sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SAMPLE_COLUMNS)
    config = _config(model, methods, cfg_of, summary, {
        **info, "criterion_text": ASR_CRITERION[criterion], "batch_size": batch_size, "stopped_early": stopped,
        "n_clean_correct": int(correct.sum()), "n_attacked": len(idx_all), "label_source": label_source,
        "keys": keys, "wall_time_s": time.perf_counter() - t_start, **(meta or {})}, x[:1])
    return BenchmarkResult(summary, per_sample, config, stopped)


def _select(model, x: torch.Tensor, y: torch.Tensor | None, batch_size: int, criterion: str):
    """Clean pass: (labels used, their source, clean-correct mask (N,), indices to attack); warms up."""
    clean = _clean_logits(model, x, batch_size)
    y_used, label_source = resolve_labels(None if y is None else y.to(x.device), clean)
    correct = clean.argmax(1) == y_used
    idx = torch.nonzero(correct if criterion == "clean_correct" else torch.ones_like(correct))[:, 0]
    if len(idx) == 0:
        raise ValueError(f"None of the {len(x)} images is classified correctly by {getattr(model, 'name', 'the model')}"
                         "; nothing to attack under the clean-correct criterion (use criterion 'all').")
    return y_used, label_source, correct, idx


@dataclass
class _Run:
    """State shared by the methods of one run: the samples to attack, cached scans, progress."""

    model: object
    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    keys: list[str]
    batch_size: int
    criterion: str
    progress: Callable[[str, int, int], None] | None
    should_stop: Callable[[], bool] | None
    total: int
    done: int = 0
    scans: dict = field(default_factory=dict)
    warm: bool = False

    def _tick(self, method: str, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(method, self.done, self.total)

    def method(self, name: str, cfg: AttackConfig) -> tuple[pd.DataFrame | None, bool]:
        """Attack every batch with one method: (its per-sample rows or None, stopped early)."""
        m, parts = METHODS[name], []
        _warm_up(self.model, self.x[self.idx[:1]], name, self.warm)
        self.warm = True
        self._tick(name, 0)
        for b, start in enumerate(range(0, len(self.idx), self.batch_size)):
            if self.should_stop is not None and self.should_stop():
                return (pd.concat(parts, ignore_index=True) if parts else None), True
            idx = self.idx[start:start + self.batch_size]
            xb, yb = self.x[idx], self.y[idx]
            scan, scan_s = _scan_for(self.scans, self.model, xb, yb, b, cfg.scan) if m.spatial else (None, 0.0)
            result = m.fn(self.model, xb, yb, cfg, scan=scan)
            parts.append(_sample_rows(name, idx.cpu(), self.keys, result, evaluate(xb, result, self.criterion),
                                      result.time_s + scan_s, b))
            self._tick(name, len(idx))
        return pd.concat(parts, ignore_index=True), False


# ----------------------------------------------------------------------------- config
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


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, torch threads: {torch.get_num_threads()}"


def _method_detail(name: str, cfg: AttackConfig, model, probe: torch.Tensor) -> dict:
    """Description, flags, the AttackConfig, the method's own parameters and, for spatial
    methods, the scan engine and precision that 'auto' resolved to on this device."""
    m = METHODS[name]
    out = {"description": m.description, "backend": m.backend, "spatial": m.spatial, "bounded": m.bounded,
           "steps": _steps(m, cfg), "attack_config": asdict(cfg), "params": m.params(cfg) if m.params else None}
    if m.spatial:
        try:
            engine, precision = occlusion.resolve(model, probe, cfg.scan)
            out["scan_resolved"] = {"engine": engine, "precision": precision}
        except (AttributeError, ValueError):
            out["scan_resolved"] = None
    return out


def _config(model, methods: list[str], cfg_of: dict, summary: pd.DataFrame, info: dict,
            probe: torch.Tensor) -> dict:
    """config.json's content: every parameter, the data counts, seed, device and versions."""
    seeds = sorted({c.seed for c in cfg_of.values()})
    device = torch.device(info["device"])
    n_total = info["n_total"]
    return {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in info.items() if k not in ("keys",)},
        "clean_accuracy": info["n_clean_correct"] / n_total if n_total else math.nan,
        "methods": methods, "methods_completed": summary.loc[summary["complete"], "method"].tolist(),
        "seed": seeds[0] if len(seeds) == 1 else seeds, "device_name": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "model_info": {"name": info["model"], "input_size": getattr(model, "input_size", None),
                       "num_classes": getattr(model, "num_classes", None)},
        "method_details": {m: _method_detail(m, cfg_of[m], model, probe) for m in methods},
        "versions": package_versions(), "keys": info["keys"],
    }


# ----------------------------------------------------------------------------- tables
COLUMNS = (("ASR (%)", "asr", "max"), ("L2 Norm", "l2", "min"), ("L∞ Norm", "linf", "min"),
           ("SSIM", "ssim", "max"), ("Time (s)", "time_per_sample_s", "min"))


def eps_text(value: float) -> str:
    """8/255-style text when value·255 is (nearly) an integer, else 4 decimals; '–' for NaN."""
    if value is None or not math.isfinite(value):
        return "–"
    k = value * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{value:.4f}"


def _cell(row: pd.Series, key: str, pm: str) -> tuple[str, str]:
    """(main number used for 'best', full text) of one table cell; pm is the ± separator."""
    if key == "asr":
        main = f"{100 * row['asr']:.1f}" if math.isfinite(row["asr"]) else "–"
        return main, main
    if key == "time_per_sample_s":
        main = f"{row[key]:.3f}"
        return main, main
    digits = 3 if key == "l2" else 4
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    if not math.isfinite(mean):
        return "–", "–"
    main = f"{mean:.{digits}f}"
    return main, main if std < 0.5 * 10 ** -digits else f"{main}{pm}{std:.{digits}f}"


def _table_cells(summary: pd.DataFrame, pm: str, bold: Callable[[str], str]) -> list[list[str]]:
    """Rows of formatted cells: Method, n, Steps, ε, then COLUMNS with the best per column in bold."""
    cells = [[_cell(r, key, pm) for _, key, _ in COLUMNS] for _, r in summary.iterrows()]
    for j, (_, _, direction) in enumerate(COLUMNS):
        mains = [c[j][0] for c in cells]
        values = [float(v) for v in mains if v != "–"]
        if len(values) > 1:
            best = max(values) if direction == "max" else min(values)
            cells = [[(m, bold(t)) if (k == j and m != "–" and float(m) == best) else (m, t)
                      for k, (m, t) in enumerate(c)] for c in cells]
    out = []
    for (_, r), c in zip(summary.iterrows(), cells):
        eps = eps_text(r["eps"]) + (f" (bg {eps_text(r['eps_weak'])})" if math.isfinite(r["eps_weak"]) else "")
        name = r["method"].upper() + ("" if r["complete"] else "*")
        out.append([name, str(r["n"]), str(r["steps"]), eps, *[t for _, t in c]])
    return out


def _caption(result: BenchmarkResult) -> list[str]:
    c = result.config
    lines = [f"Model {c['model']} on {c['data'] or 'the given images'}: {c['n_total']} images, "
             f"{c['n_clean_correct']} clean-correct (clean accuracy {100 * c['clean_accuracy']:.1f} %); "
             f"device {c['device']} ({c['device_name']}); batch {c['batch_size']}; seed {c['seed']}.",
             f"ASR criterion: {c['criterion_text']}. n = samples evaluated per method.",
             "Mean ± std over the evaluated samples; L2 and L∞ over all C·H·W values on the [0, 1] scale; "
             "SSIM (scikit-image, data_range 1); time = wall time per attacked sample. Best per column in bold "
             "(ASR, SSIM: highest; L2, L∞, time: lowest). ε of SD methods: ε_strong (bg ε_weak); – = unbounded."]
    if result.stopped:
        lines.append("Stopped early: partial results; methods marked * did not finish.")
    return lines


def results_markdown(result: BenchmarkResult) -> str:
    """The summary as a Markdown table in the paper's layout, with the criterion and caption."""
    head = ["Method", "n", "Steps", "ε", *[h for h, _, _ in COLUMNS]]
    rows = _table_cells(result.summary, " ± ", lambda t: f"**{t}**")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n\n" + "\n".join(_caption(result)) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("ε", r"$\epsilon$"), ("∞", r"$\infty$"), ("±", r"$\pm$"), ("·", r"$\cdot$"), ("–", "--")):
        text = text.replace(a, b)
    return text


def results_latex(result: BenchmarkResult) -> str:
    """The summary as a booktabs LaTeX table (best per column in bold, mean $\\pm$ std)."""
    head = ["Method", "$n$", "Steps", r"$\epsilon$", r"ASR (\%)", "$L_2$ Norm", r"$L_\infty$ Norm", "SSIM",
            "Time (s)"]
    rows = _table_cells(result.summary, " $\\pm$ ", lambda t: f"\\textbf{{{t}}}")
    body = [" & ".join([_tex_escape(r[0]), *[c.replace("–", "--") for c in r[1:]]]) + r" \\" for r in rows]
    caption = _tex_escape(" ".join(_caption(result)))
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", r"\begin{tabular}{lrrlrllll}",
                      r"\toprule", " & ".join(head) + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
                      r"\end{table}"]) + "\n"


def merge_results(parts: list[BenchmarkResult]) -> BenchmarkResult:
    """Join runs over the same data (e.g. one cached run per method) into one result.

    Rows are concatenated in order; config is the last part's with ``methods``,
    ``methods_completed`` and ``method_details`` merged over all parts, ``wall_time_s`` summed
    and ``stopped_early`` true if any part stopped.
    """
    if not parts:
        raise ValueError("Nothing to merge.")
    config = dict(parts[-1].config)
    config["methods"] = [m for p in parts for m in p.config["methods"]]
    config["methods_completed"] = [m for p in parts for m in p.config["methods_completed"]]
    config["method_details"] = {k: v for p in parts for k, v in p.config["method_details"].items()}
    config["wall_time_s"] = sum(p.config["wall_time_s"] for p in parts)
    config["stopped_early"] = any(p.stopped for p in parts)
    summary = pd.concat([p.summary for p in parts], ignore_index=True)
    per_sample = pd.concat([p.per_sample for p in parts], ignore_index=True)
    return BenchmarkResult(summary, per_sample, config, config["stopped_early"])


def write_benchmark(result: BenchmarkResult, out_dir: str | Path) -> list[Path]:
    """Write results.csv, per_sample.csv, results.md, results.tex and config.json into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.summary.to_csv(out / "results.csv", index=False)
    result.per_sample.to_csv(out / "per_sample.csv", index=False)
    (out / "results.md").write_text(result.markdown(), encoding="utf-8")
    (out / "results.tex").write_text(result.latex(), encoding="utf-8")
    (out / "config.json").write_text(json.dumps(result.config, indent=2, ensure_ascii=False, default=str),
                                     encoding="utf-8")
    return [out / f for f in OUTPUT_FILES]


__all__ = ["BenchmarkResult", "OUTPUT_FILES", "PRESETS", "Preset", "load_benchmark_data", "merge_results",
           "package_versions", "parse_methods", "preset_config", "results_latex", "results_markdown",
           "run_benchmark", "write_benchmark"]
