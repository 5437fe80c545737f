"""Benchmark many methods on many images and write paper-style tables (paper §4.2, Tables 1–2).

``run_benchmark`` is a pure function (no streamlit, no files): it attacks the clean-correct
samples (default criterion) with every requested registry method in batches and returns
a :class:`BenchmarkResult` with one summary row per method (``sdsgsm.metrics.summarise``,
the one aggregator), one row per (method, sample) with every registry metric, and a
JSON-ready config. ``benchmark_files`` renders results.csv, per_sample.csv, results.md,
results.tex (``sdsgsm.render.tables``, the one formatter) and config.json as bytes;
``write_benchmark`` writes them. Presets reproduce the settings of the paper's
Table 1 (single step, ε = 8/255) and Table 2 (T = 10, α = 4/255, ε_max = 8/255); see
:data:`PRESETS` for how the SD methods' dual budget is mapped under the ε_max cap.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

from sdsgsm import occlusion
from sdsgsm.attacks import METHODS, AttackConfig, Method, build_config, config_values, method_label
from sdsgsm.experiments.runner import (
    ExperimentResult,
    UnitStore,
    cfg_map,
    fingerprint_model,
    fingerprint_tensor,
    load_benchmark_data,
    model_device,
    package_versions,
    parse_methods,
    select,
    warm_up,
)
from sdsgsm.memory import recording
from sdsgsm.metrics import ASR_CRITERION, evaluate, metric_list, summarise, summary_keys
from sdsgsm.occlusion import ScanConfig, ScanResult, occlusion_scan
from sdsgsm.outputs import write_files
from sdsgsm.params import PRESETS, format_budget, get_preset
from sdsgsm.render.tables import Table, metric_notes, metric_table

OUTPUT_FILES = ("results.csv", "per_sample.csv", "results.md", "results.tex", "config.json")
# summary: method, n, the registry's statistics (asr, <key>_mean, <key>_std, linf_max), then the run's context
SUMMARY_COLUMNS = ["method", *(k for k in summary_keys() if k != "n_attacked"), "device", "model", "data",
                   "n_attacked", "n_total", "steps", "eps", "eps_weak", "bounded", "complete", "criterion"]
# per sample: ids and predictions, 'evaluated', one column per registry metric (success, l2, …, time_s, …)
SAMPLE_COLUMNS = ["method", "index", "key", "label", "clean_pred", "adv_pred", "evaluated",
                  *(m.source for m in metric_list()), "batch"]


def preset_config(name: str, base: AttackConfig | None = None) -> tuple[list[str], AttackConfig]:
    """(methods, AttackConfig) of preset ``name`` (sdsgsm/params.py PRESETS); parameters the preset
    does not set (ω, the scan, the region, the random seed, …) come from ``base`` (default: the spec's)."""
    p = get_preset(name)
    return list(p.methods), build_config(p.apply(config_values(base) if base is not None else None))


# ----------------------------------------------------------------------------- data
# ----------------------------------------------------------------------------- running
@dataclass
class BenchmarkResult(ExperimentResult):
    """summary: one row per method (SUMMARY_COLUMNS); per_sample: one row per (method, sample);
    config: every parameter, counts and package versions; stopped: ended early by should_stop."""

    @property
    def criterion_text(self) -> str:
        return self.config["criterion_text"]

    def markdown(self) -> str:
        return results_markdown(self)

    def latex(self) -> str:
        return results_latex(self)


def _scan_for(cache: dict, model, xb, yb, batch: int, cfg: ScanConfig) -> ScanResult:
    """The zero-out scan of one batch, computed once and shared by the spatial methods; its
    synchronised time is ``scan.seconds``, which each spatial result reports as scan_time_s."""
    if (batch, cfg) not in cache:
        cache[(batch, cfg)] = occlusion_scan(model, xb, cfg, y=yb)
    return cache[(batch, cfg)]


def _sample_rows(method: str, idx: torch.Tensor, keys: list[str], result, metrics, batch: int) -> pd.DataFrame:
    """per_sample.csv rows of one batch: ids, labels, predictions and every registry metric
    (times are the batch's scan/attack/total seconds divided by its size)."""
    per = metrics.per_sample
    return pd.DataFrame({
        "method": method, "index": idx.tolist(), "key": [keys[i] for i in idx.tolist()],
        "label": result.y.tolist(), "clean_pred": result.clean_pred.tolist(), "adv_pred": result.adv_pred.tolist(),
        **{c: per[c].to_numpy() for c in per.columns}, "batch": batch})[SAMPLE_COLUMNS]


def _steps(m: Method, cfg: AttackConfig) -> int:
    return cfg.steps if m.multi_step else 1


def _summary_row(method: str, df: pd.DataFrame, cfg: AttackConfig, complete: bool, info: dict) -> dict:
    """One method's results.csv row: :func:`~sdsgsm.metrics.summarise` of its per-sample rows
    (the one aggregator, §4.2) plus the run's context (device, ε, steps, completeness, …)."""
    m = METHODS[method]
    eps = cfg.budget.eps_strong if m.spatial else cfg.eps
    return {"method": method, **summarise(df), "device": info["device"], "model": info["model"],
            "data": info["data"], "n_total": info["n_total"], "steps": _steps(m, cfg),
            "eps": eps if m.bounded else math.nan, "eps_weak": cfg.budget.eps_weak if m.spatial else math.nan,
            "bounded": m.bounded, "complete": complete, "criterion": info["criterion"]}


def run_benchmark(model, x: torch.Tensor, y: torch.Tensor | None, methods: list[str],
                  cfgs: dict[str, AttackConfig] | AttackConfig, batch_size: int = 16,
                  criterion: str = "clean_correct", progress: Callable[[str, int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, *, keys: list[str] | None = None,
                  data: str = "", meta: dict | None = None, shard: tuple[int, int] = (0, 1),
                  gather: Callable[[dict, bool], tuple[dict, bool]] | None = None,
                  units: UnitStore | None = None) -> BenchmarkResult:
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
        shard: (rank, world size): this process attacks batches b with b mod world = rank of the
            one-process run's batches (same batches, same seeds, so the same numbers for any world
            size); gather(per-method rows of this rank, stopped) -> (every rank's rows, any stopped)
            joins the shards before the tables are built (:mod:`sdsgsm.distributed`).
        units: a :class:`~sdsgsm.experiments.runner.UnitStore`: every finished (method, batch) is recorded
            there, and those an earlier run with the same configuration finished are read back, not run.
    Returns a BenchmarkResult (config ``memory_retries``: the out-of-memory retry messages, when
    there were any). Raises ValueError for unknown methods/criteria or when no sample is left
    to attack.
    """
    methods = parse_methods(methods)
    cfg_of = cfg_map(methods, cfgs)
    if criterion not in ASR_CRITERION:
        raise ValueError(f"Unknown ASR criterion {criterion!r}; choose one of {', '.join(ASR_CRITERION)}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Batch size must be a positive integer (got {batch_size!r}).")
    with recording() as retries:
        result = _run_benchmark(model, x, y, methods, cfg_of, batch_size, criterion, progress, should_stop, keys,
                                data, meta, shard, gather, units)
    if retries:  # out of device memory: batches or chunks were halved (sdsgsm.memory)
        result.config["memory_retries"] = retries
    return result


def _run_benchmark(model, x, y, methods, cfg_of, batch_size, criterion, progress, should_stop, keys, data, meta,
                   shard, gather, units) -> BenchmarkResult:
    """:func:`run_benchmark` after its checks."""
    t_start, device = time.perf_counter(), model_device(model)
    x = x.detach().float().to(device)
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    y_used, label_source, correct, idx_all = select(model, x, y, batch_size, criterion)
    info = {"device": str(device), "model": getattr(model, "name", type(model).__name__), "data": data,
            "n_total": len(x), "criterion": criterion}
    rank, world = shard
    mine = sum(len(idx_all[s:s + batch_size]) for s in range(rank * batch_size, len(idx_all), world * batch_size))
    run = _Run(model, x, y_used, idx_all, keys, batch_size, criterion, progress, should_stop,
               total=len(methods) * mine, rank=rank, world=world, units=units)
    if units is not None:
        mine_batches = len(range(rank * batch_size, len(idx_all), world * batch_size))
        units.begin({"experiment": "benchmark", "methods": methods, "attack_configs": cfg_of,
                     "batch_size": batch_size, "criterion": criterion, "model": info["model"],
                     "weights": fingerprint_model(model), "data": data, "keys": keys, "images": fingerprint_tensor(x),
                     "labels": fingerprint_tensor(y_used), "shard": [rank, world],
                     "device": str(device)}, len(methods) * mine_batches)
    done, stopped = {}, False
    for method in methods:
        df, stopped = run.method(method, cfg_of[method])
        if df is not None:
            done[method] = df
        if stopped:
            break
    if gather is not None:
        done, stopped = gather(done, stopped)
    rows, parts = [], []
    for method in (m for m in methods if m in done):
        parts.append(done[method])
        rows.append(_summary_row(method, done[method], cfg_of[method], complete=len(done[method]) == len(idx_all),
                                 info=info))
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    per_sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SAMPLE_COLUMNS)
    config = _config(model, methods, cfg_of, summary, {
        **info, "criterion_text": ASR_CRITERION[criterion], "batch_size": batch_size, "stopped_early": stopped,
        "n_clean_correct": int(correct.sum()), "n_attacked": len(idx_all), "label_source": label_source,
        "keys": keys, "wall_time_s": time.perf_counter() - t_start, **(meta or {})}, x[:1])
    return BenchmarkResult(summary, per_sample, config, stopped)


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
    rank: int = 0
    world: int = 1
    units: UnitStore | None = None

    def _tick(self, method: str, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(method, self.done, self.total)

    def method(self, name: str, cfg: AttackConfig) -> tuple[pd.DataFrame | None, bool]:
        """Attack every batch with one method: (its per-sample rows or None, stopped early)."""
        m, parts = METHODS[name], []
        warm_up(self.model, self.x[self.idx[:1]], name, self.warm)
        self.warm = True
        self._tick(name, 0)
        for b, start in enumerate(range(0, len(self.idx), self.batch_size)):
            if b % self.world != self.rank:  # another rank's batch (sharded run)
                continue
            idx = self.idx[start:start + self.batch_size]
            key = UnitStore.key(name, b)
            if self.units is not None and key in self.units:  # finished by an earlier run
                parts += self.units.get(key)[0]
                self._tick(name, len(idx))
                continue
            if self.should_stop is not None and self.should_stop():
                return (pd.concat(parts, ignore_index=True) if parts else None), True
            xb, yb = self.x[idx], self.y[idx]
            scan = _scan_for(self.scans, self.model, xb, yb, b, cfg.scan) if m.spatial else None
            result = m.fn(self.model, xb, yb, cfg, scan=scan)
            parts.append(_sample_rows(name, idx.cpu(), self.keys, result, evaluate(xb, result, self.criterion), b))
            if self.units is not None:
                self.units.add(key, [parts[-1]])
            self._tick(name, len(idx))
        return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SAMPLE_COLUMNS)), False


# ----------------------------------------------------------------------------- config
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
LEAD_TEX = ("Method", "$n$", "Steps", r"$\epsilon$")


def eps_text(value: float) -> str:
    """A budget in 1/255 units (:func:`sdsgsm.params.format_budget`, e.g. '8/255'); '–' for NaN."""
    if value is None or not math.isfinite(value):
        return "–"
    return format_budget(value)


def _lead(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper tables' leading columns: Method (* = did not finish), n, Steps and ε
    (SD methods: ε_strong (bg ε_weak); '–' = unbounded)."""
    rows = summary.to_dict("records")
    return pd.DataFrame({
        "Method": [method_label(r["method"]) + ("" if r["complete"] else "*") for r in rows],
        "n": [str(r["n"]) for r in rows], "Steps": [str(r["steps"]) for r in rows],
        "ε": [eps_text(r["eps"]) + (f" (bg {eps_text(r['eps_weak'])})" if math.isfinite(r["eps_weak"]) else "")
              for r in rows]})


def paper_table(result: BenchmarkResult) -> Table:
    """The summary in the paper's layout (Tables 1–2): lead columns, then the registry's paper
    metrics (ASR, L2, L∞, SSIM, total time) with the best per column marked."""
    return metric_table(result.summary, "paper", _lead(result.summary), LEAD_TEX)


def _caption(result: BenchmarkResult) -> list[str]:
    c = result.config
    lines = [f"Model {c['model']} on {c['data'] or 'the given images'}: {c['n_total']} images, "
             f"{c['n_clean_correct']} clean-correct (clean accuracy {100 * c['clean_accuracy']:.1f} %); "
             f"device {c['device']} ({c['device_name']}); batch {c['batch_size']}; seed {c['seed']}.",
             f"ASR criterion: {c['criterion_text']}. n = samples evaluated per method.",
             "Mean ± std over the evaluated samples (times: mean over all attacked samples). "
             f"{metric_notes('paper')} ε of SD methods: ε_strong (bg ε_weak); – = unbounded."]
    if result.stopped:
        lines.append("Stopped early: partial results; methods marked * did not finish.")
    return lines


def results_markdown(result: BenchmarkResult) -> str:
    """The summary as a Markdown table in the paper's layout, with the criterion and caption."""
    return paper_table(result).markdown() + "\n\n" + "\n".join(_caption(result)) + "\n"


def results_latex(result: BenchmarkResult) -> str:
    """The summary as a booktabs LaTeX table (best per column in bold, mean $\\pm$ std)."""
    return paper_table(result).latex(" ".join(_caption(result)), "lrrl" + "r" * len(metric_list("paper")))


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


def benchmark_files(result: BenchmarkResult) -> dict[str, bytes]:
    """results.csv, per_sample.csv, results.md, results.tex and config.json as {name: bytes}
    (the same bytes for the same result: the CLI writes them, the app offers them as downloads)."""
    config = json.dumps(result.config, indent=2, ensure_ascii=False, default=str)
    return {"results.csv": result.summary.to_csv(index=False).encode("utf-8"),
            "per_sample.csv": result.per_sample.to_csv(index=False).encode("utf-8"),
            "results.md": result.markdown().encode("utf-8"), "results.tex": result.latex().encode("utf-8"),
            "config.json": config.encode("utf-8")}


def write_benchmark(result: BenchmarkResult, out_dir: str | Path) -> list[Path]:
    """Write :func:`benchmark_files` into out_dir (created if needed); returns the paths."""
    return write_files(benchmark_files(result), out_dir)


__all__ = ["BenchmarkResult", "OUTPUT_FILES", "PRESETS", "benchmark_files", "load_benchmark_data",
           "merge_results", "package_versions", "paper_table", "parse_methods", "preset_config", "results_latex",
           "results_markdown", "run_benchmark", "write_benchmark"]
