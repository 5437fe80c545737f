"""SmoothFool's smoothing-factor curves: fooling rate, L2 and Ω_n against σ_g for its three kernels.

Dabouei, Soleymani, Taherkhani, Dawson & Nasrabadi, "SmoothFool: An Efficient Framework for Computing Smooth Adversarial
Perturbations", WACV 2020, Fig. 6 (fooling rate, L2 and roughness against the smoothing factor) and Table 4
(Gaussian σ = 5 paired with uniform / linear kernels of side k = 25).

One x axis for the three kernels: the Gaussian g is swept by σ_g (its width is 5σ_g rounded up to an odd
number of pixels, :func:`sdsgsm.smoothing.gaussian_width`); the uniform and linear g are swept by their side
k = 5σ_g, rounded the same way (:func:`kernel_side`: σ_g = 1, 2, 5, 10 -> k = 5, 11, 25, 51), so a linear or
uniform point covers the same pixels as the Gaussian point above it.

:func:`run_sigma_curves` reuses :func:`sdsgsm.experiments.sweep.run_sweep`: one sweep per kernel, the kernel
set in the base configuration, every other parameter from the base (the spec's defaults unless given). It is
pure (no files, no streamlit) and returns one tidy table, one row per (kernel, σ_g).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from sdsgsm.experiments.runner import UnitStore
from sdsgsm.experiments.sweep import Axis, SweepResult, run_sweep
from sdsgsm.params import PARAMS, SF_KERNELS, check, parse_number
from sdsgsm.smoothing import gaussian_width

METHOD = "smoothfool"
DEFAULT_SIGMAS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
K_PER_SIGMA = 5  # the paper's Gaussian width 5σ; Table 4 pairs σ = 5 with k = 25
AXIS_LABEL = "σ_g (linear and uniform: k = 5σ_g)"
COLUMNS = ("kernel", "sigma_g", "k", "fooling_rate", "l2", "roughness_n", "n", "seconds")
#: the tidy table's columns as shown (Markdown, CSV header help)
HEADERS = {"kernel": "kernel", "sigma_g": "σ_g", "k": "k (px)", "fooling_rate": "fooling rate (%)",
           "l2": "mean L2", "roughness_n": "Ω_n ×1e3", "n": "n", "seconds": "seconds"}


def kernel_side(sigma_g: float) -> int:
    """k = 5σ_g rounded up to an odd side: the linear / uniform kernel paired with the Gaussian of σ_g
    (the Gaussian's own width, so σ_g = 5 gives the paper's k = 25)."""
    return gaussian_width(sigma_g)


def parse_kernels(kernels: str | Sequence[str] | None) -> tuple[str, ...]:
    """'gaussian,linear' or a sequence -> kernel names in order (default: all three). One-line ValueError
    naming the valid kernels for an unknown or empty list."""
    if kernels is None:
        return SF_KERNELS
    names = [k.strip() for k in (kernels.split(",") if isinstance(kernels, str) else kernels) if str(k).strip()]
    bad = [k for k in names if k not in SF_KERNELS]
    if bad or not names:
        what = f"Unknown kernel {bad[0]!r}" if bad else "No kernel given"
        raise ValueError(f"{what}; choose from {', '.join(SF_KERNELS)}.")
    return tuple(dict.fromkeys(names))


def parse_sigmas(values: str | Sequence[float] | None) -> tuple[float, ...]:
    """'1,2,5' or a sequence -> σ_g values (default :data:`DEFAULT_SIGMAS`), each checked against the σ_g
    spec and its paired side k against the k spec. One-line ValueError otherwise."""
    if values is None:
        return DEFAULT_SIGMAS
    try:
        raw = [parse_number(t) for t in values.split(",") if t.strip()] if isinstance(values, str) else list(values)
        sig = tuple(float(v) for v in raw)
    except Exception:  # argparse.ArgumentTypeError, ValueError, TypeError
        raise ValueError(f"Bad σ_g values {str(values)[:60]!r}; give a list such as 1,2,5,10.") from None
    if not sig:
        raise ValueError("No σ_g values given; give a list such as 1,2,5,10.")
    for s in sig:
        check("sigma_g", s)
        try:
            check("sf_size", kernel_side(s))
        except ValueError:
            raise ValueError(f"σ_g = {s:g} pairs with k = {kernel_side(s)}, outside the kernel side's range "
                             f"{PARAMS['sf_size'].lo}–{PARAMS['sf_size'].hi}.") from None
    return tuple(dict.fromkeys(sig))


def kernel_axis(kernel: str, sigmas: Sequence[float]) -> Axis:
    """The sweep axis of one kernel: σ_g for the Gaussian, k = :func:`kernel_side` (σ_g) otherwise."""
    if kernel == "gaussian":
        return Axis("sigma_g", tuple(float(s) for s in sigmas))
    return Axis("sf_size", tuple(kernel_side(s) for s in sigmas))


@dataclass
class SigmaCurves:
    """table: one row per (kernel, σ_g), :data:`COLUMNS` (fooling rate in %, L2 on the [0, 1] scale, Ω_n
    ×1e3 over the fooled samples, n evaluated samples, seconds of attack time at the point); sweeps: the
    :class:`SweepResult` of each kernel (per-sample rows); config: JSON-ready description; stopped: a
    ``should_stop`` ended the run (the table holds the finished points)."""

    table: pd.DataFrame
    sweeps: dict[str, SweepResult]
    config: dict
    stopped: bool = False


def _row(kernel: str, sigma: float, point: Mapping) -> dict:
    n_att = point.get("n_attacked", 0)
    secs = point.get("time_s_mean", math.nan) * n_att if n_att else math.nan
    return {"kernel": kernel, "sigma_g": float(sigma),
            "k": gaussian_width(sigma) if kernel == "gaussian" else kernel_side(sigma),
            "fooling_rate": 100.0 * point.get("asr", math.nan), "l2": point.get("l2_mean", math.nan),
            "roughness_n": 1e3 * point.get("roughness_n_mean", math.nan), "n": int(point.get("n", 0)),
            "seconds": secs}


def run_sigma_curves(model, x: torch.Tensor, y: torch.Tensor | None, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                     kernels: Sequence[str] = SF_KERNELS, base: Mapping[str, object] | None = None, *,
                     batch_size: int = 16, criterion: str = "clean_correct",
                     progress: Callable[[str, int, int], None] | None = None,
                     should_stop: Callable[[], bool] | None = None, keys: Sequence[str] | None = None,
                     data: str = "", units: Callable[[str], UnitStore | None] | None = None) -> SigmaCurves:
    """SmoothFool on x at every σ_g for every kernel (one :func:`run_sweep` per kernel).

    Args: model a Classifier; x (N, 3, H, W) in [0, 1]; y (N,) labels or None; sigmas σ_g values (the
    uniform and linear kernels take k = :func:`kernel_side` (σ_g)); kernels from ``gaussian, uniform,
    linear``; base native values of every other parameter (spec defaults unless given; its sigma_g,
    sf_size and sf_kernel are overridden per point); batch_size, criterion, progress, should_stop, keys,
    data as :func:`run_sweep`; units(kernel) -> a UnitStore for that kernel's sweep (resume) or None.
    Returns :class:`SigmaCurves`. Raises ValueError (one line) for bad kernels or σ_g values.
    """
    kernels, sigmas = parse_kernels(kernels), parse_sigmas(sigmas)
    base = {n: p.default for n, p in PARAMS.items()} | dict(base or {})
    n_total = len(kernels) * len(sigmas)
    rows, sweeps, stopped, t0 = [], {}, False, time.perf_counter()
    for i, kernel in enumerate(kernels):
        def step(text, done, total, _i=i, _k=kernel):  # one progress count over every kernel's sweep
            if progress is not None:
                progress(f"{_k} · {text.split(' · ', 1)[-1]}", _i * total + done, total * len(kernels))

        res = run_sweep(model, x, y, [METHOD], [kernel_axis(kernel, sigmas)], base | {"sf_kernel": kernel},
                        batch_size=batch_size, criterion=criterion, progress=step, should_stop=should_stop,
                        keys=keys, data=data, units=units(kernel) if units is not None else None)
        sweeps[kernel] = res
        for sigma, point in zip(sigmas, res.points.to_dict("records")):
            if point.get("valid", False):
                rows.append(_row(kernel, sigma, point))
        if res.stopped:
            stopped = True
            break
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    config = {"experiment": "sigma_curves", "method": METHOD, "kernels": list(kernels), "sigmas": list(sigmas),
              "k": {s: kernel_side(s) for s in sigmas}, "k_rule": "k = 5σ_g rounded up to odd (the Gaussian width)",
              "x_axis": AXIS_LABEL, "base": {k: v for k, v in base.items() if k not in ("sigma_g", "sf_size",
                                                                                           "sf_kernel")},
              "criterion": criterion, "batch_size": batch_size, "data": data, "n_total": len(x),
              "n_points": n_total, "n_done": len(rows), "stopped_early": stopped,
              "wall_time_s": time.perf_counter() - t0,
              "model": getattr(model, "name", type(model).__name__),
              "source": "Dabouei, Soleymani, Taherkhani, Dawson & Nasrabadi, SmoothFool, WACV 2020 (Fig. 6, Table 4)"}
    if sweeps:
        first = next(iter(sweeps.values())).config
        config.update({k: first[k] for k in ("n_attacked", "n_clean_correct", "label_source", "device", "versions")
                       if k in first})
    return SigmaCurves(table, sweeps, config, stopped)


def markdown(table: pd.DataFrame) -> str:
    """The tidy table as Markdown (one row per kernel and σ_g; numbers at the registry's digits)."""
    lines = ["| " + " | ".join(HEADERS[c] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    fmt = {"sigma_g": "{:g}", "k": "{:d}", "fooling_rate": "{:.1f}", "l2": "{:.3f}", "roughness_n": "{:.1f}",
           "n": "{:d}", "seconds": "{:.1f}"}
    for r in table.to_dict("records"):
        cells = []
        for c in COLUMNS:
            v = r[c]
            if c in fmt and isinstance(v, float) and not math.isfinite(v):
                cells.append("–")
            else:
                cells.append(fmt[c].format(int(v) if fmt.get(c) == "{:d}" else v) if c in fmt else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def join_tables(sources) -> pd.DataFrame:
    """sigma_curves.csv tables (paths or DataFrames) joined into one, ordered by kernel (gaussian, uniform,
    linear) and σ_g; a later table's (kernel, σ_g) row replaces an earlier one's. One-line ValueError for a
    file that cannot be read or is not a sigma_curves.csv."""
    frames = []
    for src in sources:
        if isinstance(src, pd.DataFrame):
            df = src
        else:
            try:
                df = pd.read_csv(src)
            except (OSError, ValueError, pd.errors.ParserError):
                raise ValueError(f"Cannot read {str(src)[-60:]!r} as a sigma_curves.csv.") from None
        if set(COLUMNS) - set(df.columns):
            raise ValueError(f"{str(src)[-60:]!r} is not a sigma_curves.csv (columns {', '.join(COLUMNS)}).")
        frames.append(df[list(COLUMNS)])
    if not frames:
        raise ValueError("No sigma_curves.csv given.")
    df = pd.concat(frames, ignore_index=True).drop_duplicates(["kernel", "sigma_g"], keep="last")
    order = {k: i for i, k in enumerate(SF_KERNELS)}
    df = df.assign(_o=df["kernel"].map(order).fillna(len(order))).sort_values(["_o", "sigma_g"], kind="stable")
    return df.drop(columns="_o").reset_index(drop=True)


def sigma_files(result: SigmaCurves) -> dict[str, bytes]:
    """sigma_curves.csv (the tidy table), sigma_curves_per_sample.csv, sigma_curves.md and sigma_curves.json."""
    import json

    parts = [r.per_sample.assign(kernel=k) for k, r in result.sweeps.items() if len(r.per_sample)]
    per = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    cfg = json.dumps(result.config, indent=2, ensure_ascii=False, default=str)
    return {"sigma_curves.csv": result.table.to_csv(index=False).encode("utf-8"),
            "sigma_curves_per_sample.csv": per.to_csv(index=False).encode("utf-8"),
            "sigma_curves.md": markdown(result.table).encode("utf-8"),
            "sigma_curves.json": cfg.encode("utf-8")}


__all__ = ["AXIS_LABEL", "COLUMNS", "DEFAULT_SIGMAS", "SigmaCurves", "join_tables", "kernel_axis", "kernel_side",
           "markdown",
           "parse_kernels", "parse_sigmas", "run_sigma_curves", "sigma_files"]
