"""Cache adapters for the Figures and Sweeps pages: print figures and sweeps, bytes out.

The grid reuses the Explorer's cached scans and attacks (:func:`sdsgsm.ui.cache.attack`), so an
image is scanned once per model and scan setting whatever the page. A sweep runs point by point;
each finished point is kept in the server's :func:`~sdsgsm.ui.cache.run_store` (Stop keeps the
finished points, a re-run is instant) and one :class:`sdsgsm.experiments.sweep.ScanCache` per (data, model,
batch, criterion) keeps the zero-out scan shared across points.
"""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st
import torch

from sdsgsm.attacks import AttackConfig
from sdsgsm.experiments.sweep import Axis, ScanCache, parse_values, run_sweep, sweep_files
from sdsgsm.render import figures
from sdsgsm.render.figures import COLUMNS, DEFAULT_COLUMNS, grid_layout  # noqa: F401  (re-exported for the Figures page)
from sdsgsm.ui.cache import CACHE_TTL, attack, bench_data, get_model, run_store, true_label

PREVIEW_DPI = 110


def grid_record(key: str, model_key: str, method: str, cfg: AttackConfig, num_classes: int,
                ckpt: bytes | None = None, arch: str = "") -> dict:
    """One cached image record of the grid (the Explorer's cache: same scan, same numbers)."""
    source = f"gallery:{key}"
    return attack(source, model_key, method, cfg, true_label(source, num_classes), None, ckpt, arch)


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def grid_files(keys: tuple[str, ...], model_key: str, methods: tuple[str, ...], columns: tuple[str, ...],
               cfg: AttackConfig, num_classes: int, _ckpt: bytes | None = None, arch: str = "") -> dict[str, bytes]:
    """grid.pdf/.png/.svg/.json plus 'preview.png' (screen resolution) of the Fig. 5/6 grid."""
    rows = [[grid_record(k, model_key, m, cfg, num_classes, _ckpt, arch) for m in methods] for k in keys]
    names = [k.rsplit("/", 1)[-1].rsplit(".", 1)[0] for k in keys]
    fig = figures.build(figures.grid_figure, rows, names, list(methods), columns)
    info = {"images": list(keys), "methods": list(methods), "columns": list(columns), "model": model_key,
            "parameters": _native(cfg), "seed": cfg.seed,
            "panels": figures.grid_layout(len(keys), len(methods), columns)[2]}
    files = figures.figure_files(fig, "grid", info, "grid")
    return {**files, "preview.png": figures.render(fig, "png", dpi=PREVIEW_DPI)}


def _native(cfg: AttackConfig) -> dict:
    from sdsgsm.attacks import config_values

    return config_values(cfg)


def read_results(data: bytes) -> list[dict]:
    """An uploaded benchmark results.csv -> summary rows; ValueError (one line) if it is not one."""
    try:
        df = pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        raise ValueError("This file is not a readable CSV.") from None
    if "method" not in df or "asr" not in df or not len(df):
        raise ValueError("This CSV is not a benchmark results.csv (no method/asr columns or no rows).")
    return df.to_dict("records")


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def chart_files(kind: str, data: bytes, name: str) -> dict[str, bytes]:
    """radar (Fig. 3) or bars (Fig. 4) of an uploaded results.csv: pdf/png/svg/json plus preview.png."""
    rows = read_results(data)
    builder = figures.radar_figure if kind == "radar" else figures.bars_figure
    fig = figures.build(builder, rows)
    files = figures.figure_files(fig, kind, {"results": name, "methods": [r["method"] for r in rows]}, kind)
    return {**files, "preview.png": figures.render(fig, "png", dpi=PREVIEW_DPI)}


# ----------------------------------------------------------------------------- sweeps
def axis(name: str, text: str) -> Axis:
    """An Axis from the page's parameter and value text (:func:`sdsgsm.experiments.sweep.parse_values` syntax)."""
    return Axis(name, parse_values(name, text))


def _scans(spec, limit, model_key, batch, criterion, model, arch) -> ScanCache:
    key = ("sweep-scans", spec, limit, model_key, batch, criterion, arch)
    cache = run_store().get(key)
    if cache is None:
        cache = ScanCache(model, model.input_size)
        run_store().put(key, cache)
    return cache


def sweep_point(spec: str, limit: int | None, model_key: str, methods: tuple[str, ...], point: tuple,
                base: tuple, batch: int, criterion: str, progress=None, ckpt: bytes | None = None, arch: str = ""):
    """One point of a sweep (point: ((name, value), …); base: sorted (name, value) pairs), kept in
    the run store; the scan comes from the shared :class:`ScanCache`."""
    key = ("sweep", spec, limit, model_key, methods, point, base, batch, criterion, arch)
    hit = run_store().get(key)
    if hit is not None:
        return hit
    model = get_model(model_key, ckpt, arch)
    x, y, keys, info = bench_data(spec, model_key, limit, ckpt, arch)
    axes = [Axis(n, (v,)) for n, v in point]
    res = run_sweep(model, torch.from_numpy(x), torch.from_numpy(y), list(methods), axes, dict(base),
                    batch_size=batch, criterion=criterion, progress=progress, keys=keys, data=info["name"],
                    scans=_scans(spec, limit, model_key, batch, criterion, model, arch))
    run_store().put(key, res)
    return res


def merge_points(parts: list, names: list[str]):
    """Join single-point SweepResults into one (points in order; n_scans summed)."""
    from sdsgsm.experiments.sweep import SweepResult

    config = dict(parts[0].config)
    config["axes"] = [{"name": n, "values": sorted({v for p in parts for v in p.config["axes"][i]["values"]},
                                                   key=lambda v: -1 if v is None else v)} for i, n in enumerate(names)]
    config["n_points"] = len(parts)
    config["n_scans"] = sum(p.config["n_scans"] for p in parts)
    config["lifted"] = any(p.config["lifted"] for p in parts)
    config["wall_time_s"] = sum(p.config["wall_time_s"] for p in parts)
    points = pd.concat([p.points for p in parts], ignore_index=True)
    per = pd.concat([p.per_sample.assign(point=i) for i, p in enumerate(parts)], ignore_index=True)
    return SweepResult(points, per, config, False)


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def sweep_download(_result, request: tuple, names: tuple[str, ...], metric: str) -> dict[str, bytes]:
    """sweep.csv, sweep_per_sample.csv, sweep.json and the figure files (+ preview.png) of a sweep."""
    fig = figures.build(figures.sweep_figure, _result.points, list(names), metric2d=metric)
    info = {k: v for k, v in _result.config.items() if k != "versions"}
    return {**sweep_files(_result), **figures.figure_files(fig, "sweep", info, "sweep"),
            "preview.png": figures.render(fig, "png", dpi=PREVIEW_DPI)}


def sweep_chart(points: pd.DataFrame, name: str, metric: str):
    """Interactive Plotly lines of one metric against the swept parameter, one colour per method."""
    import plotly.graph_objects as go

    from sdsgsm.metrics import METRICS
    from sdsgsm.params import PARAMS
    from sdsgsm.render.viz import method_colour

    m, p = METRICS[metric], PARAMS[name]
    fig = go.Figure()
    for k, (method, part) in enumerate(points[points["valid"].astype(bool)].groupby("method", sort=False)):
        xs = [p.shown(None if pd.isna(v) else v) for v in part[name]]
        dash = ("solid", "dash", "dashdot", "dot")[k % 4]
        fig.add_trace(go.Scatter(x=xs, y=part[m.mean_key] * m.scale, name=method, mode="lines+markers",
                                 line=dict(color=method_colour(method), dash=dash),
                                 marker=dict(symbol=("circle", "square", "diamond", "triangle-up")[k % 4])))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"),
                      xaxis_title=figures.axis_label(name), yaxis_title=m.header)
    if name in ("eps", "eps_strong", "eps_weak") and bool(points["lifted"].astype(bool).any()):
        fig.add_vline(x=8, line_dash="dash", line_color="grey", annotation_text="8/255 fair cap; ε_max lifted →")
    return fig


# ----------------------------------------------------------------------------- Sweeps page helpers
from sdsgsm.experiments.sweep import SWEEPABLE, VALUE_HELP, grid  # noqa: E402,F401
from sdsgsm.render.figures import SWEEP_METRICS, default_sweep_metric  # noqa: E402,F401  (for the Sweeps page)


def param_label(name: str) -> str:
    """'ε_strong (region R) [eps_strong]': a spec parameter's label and its query/CLI name."""
    from sdsgsm.params import PARAMS

    return f"{PARAMS[name].label} [{name}]"


def metric_header(key: str) -> str:
    from sdsgsm.metrics import METRICS

    return METRICS[key].header


def grid_points(axes: list[Axis]) -> list[tuple]:
    """Every point of the axes' grid as ((name, value), …) tuples (hashable run-store keys)."""
    return [tuple(p.items()) for p in grid(axes)]


def cached_point(spec, limit, model_key, methods, point, base, batch, criterion, arch=""):
    """A finished sweep point from the run store, or None."""
    return run_store().get(("sweep", spec, limit, model_key, methods, point, base, batch, criterion, arch))


def points_table(points: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The sweep's rows for display: swept values in shown units, method, metrics at display scale."""
    from sdsgsm.metrics import METRICS

    out = pd.DataFrame({f"{n} (shown)": points[f"{n}_shown"] for n in names})
    out["method"] = points["method"]
    for key in SWEEP_METRICS:
        m = METRICS[key]
        out[m.header] = (points[m.mean_key] * m.scale).round(m.digits + 1)
    out["ε_max lifted"] = points["lifted"].astype(bool)
    out["note"] = points["note"].fillna("")
    return out
