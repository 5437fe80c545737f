"""Parameter sweeps: one or two spec parameters over a list or range, every registry metric per point.

``run_sweep`` is pure (no streamlit, no files). For every point of the grid and every method it
attacks the selected samples (clean-correct by default, as ``run_benchmark``) in batches and
aggregates the registry metrics (accuracy under attack, ASR, L2, L∞, SSIM, time, …; paper §4.2)
with :func:`sdsgsm.metrics.summarise`, the one aggregator. The zero-out scan (eq. 1–2) depends
only on (image, model, m, stride, score), so it is computed once per batch and scan setting and
reused by every point and spatial method that shares it.

Value syntax (:func:`parse_values`, native units, fractions allowed): a list ``a,b,c`` or an
inclusive range ``start:stop:count`` (``0:26/255:14`` = 14 values 0, 2/255, …, 26/255).

Coupling rules (say what a point means):
* sweeping ``eps`` moves every method's top budget: uniform methods take ε, spatial methods
  take ε_strong = ε and ε_weak = ε·(ε_weak/ε_strong of the base setting);
* ε_max is lifted to the largest ε of a point when needed (``eps_max`` and ``lifted`` columns
  say so: above 8/255 the paper's fairness cap no longer holds);
* a point whose values do not form a valid configuration (ε_weak > ε_strong in a 2-D sweep, …)
  is kept as a row with ``valid`` False, its one-line reason in ``note`` and NaN metrics.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks import METHODS, AttackConfig, build_config
from sdsgsm.experiments.runner import (
    ExperimentResult,
    UnitStore,
    fingerprint_model,
    fingerprint_tensor,
    package_versions,
    parse_methods,
    select,
    warm_up,
)
from sdsgsm.metrics import ASR_CRITERION, evaluate, summarise, summary_keys
from sdsgsm.occlusion import occlusion_scan
from sdsgsm.params import FAIR_EPS_MAX, PARAMS, check, parse_number

MAX_POINTS = 400  # points per axis (and in total): a typo must not start a week-long run
SWEEPABLE = tuple(n for n, p in PARAMS.items() if p.kind is not str and n != "seed")
EPS_PARAMS = ("eps", "eps_strong", "eps_weak")
VALUE_HELP = "a list a,b,c or a range start:stop:count (e.g. 0:26/255:14), in native units (ε as 8/255)"


@dataclass(frozen=True)
class Axis:
    """One swept parameter: a spec name (sdsgsm/params.py) and its native values in order."""

    name: str
    values: tuple

    def __post_init__(self):
        if self.name not in SWEEPABLE:
            raise ValueError(f"Cannot sweep {self.name!r}; choose one of {', '.join(SWEEPABLE)}.")
        if not self.values:
            raise ValueError(f"No values given for {self.name}.")

    @property
    def shown(self) -> list:
        """The values in shown units (ε, α in 1/255; auto 0)."""
        return [PARAMS[self.name].shown(v) for v in self.values]

    @property
    def label(self) -> str:
        p = PARAMS[self.name]
        return p.label + (" (×1/255)" if p.unit else "")


def _as_kind(name: str, value: float):
    p = PARAMS[name]
    if p.kind is int:
        if abs(value - round(value)) > 1e-9:
            raise ValueError(f"{p.label} takes integers; {value:g} is not one.")
        return int(round(value))
    return float(value)


def parse_values(name: str, text: str) -> tuple:
    """'0:26/255:14' (inclusive range start:stop:count) or 'a,b,c' -> native values of ``name``.

    Every value is checked against the spec's range, except that ε values above ε_max's
    default are allowed (the sweep lifts ε_max). Raises ValueError with a one-line message.
    """
    if name not in SWEEPABLE:
        raise ValueError(f"Cannot sweep {name!r}; choose one of {', '.join(SWEEPABLE)}.")
    text = str(text).strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop = parse_number(parts[0]), parse_number(parts[1])
            count = int(parts[2]) if parts[2].strip().isdigit() else 0
            if not 1 <= count <= MAX_POINTS:
                raise ValueError(f"the count must be an integer in 1 … {MAX_POINTS} (got {parts[2].strip()!r})")
            raw = np.linspace(start, stop, count).tolist()
        else:
            raw = [parse_number(t) for t in text.split(",") if t.strip()]
            if not raw:
                raise ValueError
    except ValueError as exc:
        reason = f": {exc}" if str(exc) else ""
        raise ValueError(f"Bad values {text[:60]!r} for {name}{reason}; give {VALUE_HELP}.") from None
    except Exception:  # argparse.ArgumentTypeError from parse_number, int('x')
        raise ValueError(f"Bad values {text[:60]!r} for {name}; give {VALUE_HELP}.") from None
    if len(raw) > MAX_POINTS:
        raise ValueError(f"{len(raw)} values for {name}; at most {MAX_POINTS}.")
    values = tuple(_as_kind(name, v) for v in raw)
    for v in values:
        check(name, None if (PARAMS[name].auto and v == 0) else v)
    return tuple(None if (PARAMS[name].auto and v == 0) else v for v in values)


def point_values(base: Mapping[str, object], point: Mapping[str, object], spatial: bool) -> dict:
    """Native values of one (point, method): the base overridden by the point, with the coupling
    rules of the module docstring (ε of spatial methods, ε_max lifted to the point's largest ε)."""
    v = dict(base) | dict(point)
    if "eps" in point and spatial:
        strong = float(base["eps_strong"])
        ratio = float(base["eps_weak"]) / strong if strong > 0 else 0.0
        v["eps_strong"], v["eps_weak"] = point["eps"], point["eps"] * ratio
    top = max(float(v[n]) for n in EPS_PARAMS)
    if top > float(v["eps_max"]):
        v["eps_max"] = top
    return v


@dataclass
class SweepResult(ExperimentResult):
    """points: one row per (point, method): the swept values (native and shown), method,
    eps_max, lifted, valid, note, then :func:`summarise`'s keys. per_sample: one row per
    (point, method, sample) with every registry metric. config: JSON-ready description."""

    @property
    def points(self) -> pd.DataFrame:
        """The summary under this experiment's own name."""
        return self.summary

    @property
    def axes(self) -> list[Axis]:
        return [Axis(a["name"], tuple(a["values"])) for a in self.config["axes"]]


def grid(axes: Sequence[Axis]) -> list[dict]:
    points = [dict(zip([a.name for a in axes], combo)) for combo in itertools.product(*(a.values for a in axes))]
    if len(points) > MAX_POINTS:
        raise ValueError(f"{len(points)} points; at most {MAX_POINTS} per sweep.")
    return points


class ScanCache:
    """The zero-out scans of a sweep, keyed by (batch, resolved ScanConfig): each computed once.

    A caller that runs a sweep point by point (the Sweeps page) passes one ScanCache to every
    :func:`run_sweep` call over the same images, batch size and criterion, so the scan is still
    reused across points."""

    def __init__(self, model, side: int):
        self.model, self.side, self.cache, self.count = model, side, {}, 0

    def get(self, batch: int, xb: torch.Tensor, yb: torch.Tensor, cfg: AttackConfig):
        key = (batch, cfg.scan.for_size(self.side))
        if key not in self.cache:
            self.cache[key] = occlusion_scan(self.model, xb, cfg.scan, y=yb)
            self.count += 1
        return self.cache[key]


def _point_row(point: dict, method: str, values: dict | None, df: pd.DataFrame | None, note: str) -> dict:
    row = {**{f"{k}": v for k, v in point.items()},
           **{f"{k}_shown": PARAMS[k].shown(v) for k, v in point.items()}, "method": method}
    eps_max = values["eps_max"] if values else math.nan
    row.update(eps_max=eps_max, lifted=bool(values) and eps_max > FAIR_EPS_MAX + 1e-12, valid=df is not None,
               note=note)
    stats = summarise(df) if df is not None else dict.fromkeys(summary_keys(), math.nan)
    return {**row, **stats}


def run_sweep(model, x: torch.Tensor, y: torch.Tensor | None, methods: Sequence[str] | str, axes: Sequence[Axis],
              base: Mapping[str, object] | None = None, *, batch_size: int = 16, criterion: str = "clean_correct",
              progress: Callable[[str, int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None, keys: Sequence[str] | None = None,
              data: str = "", scans: ScanCache | None = None, units: UnitStore | None = None) -> SweepResult:
    """Attack x with every method at every point of the axes' grid; every registry metric per point.

    Args: model a Classifier ((B, 3, H, W) in [0, 1] -> (B, K)); x (N, 3, H, W); y (N,) labels or
    None (−1 = unknown: the clean prediction); methods registry names; axes one or two
    :class:`Axis`; base native values of every other parameter (default: the spec's defaults);
    batch_size images per attack call; criterion 'clean_correct' or 'all' (``ASR_CRITERION``);
    progress(text, done, total) after every batch; should_stop polled before every batch (True
    ends the sweep, keeping the finished points); keys N sample names; data the data-set name;
    scans a :class:`ScanCache` shared with other calls over the same x, batch_size and criterion; units a
    :class:`~sdsgsm.experiments.runner.UnitStore` recording every finished (point, method) (those an earlier run
    with the same configuration finished are read back, not run).
    Returns a :class:`SweepResult`. Raises ValueError (one line) for bad methods, axes or criteria.
    """
    methods = parse_methods(methods)
    if not 1 <= len(axes) <= 2 or len({a.name for a in axes}) != len(axes):
        raise ValueError("A sweep takes one parameter or two different ones.")
    if criterion not in ASR_CRITERION:
        raise ValueError(f"Unknown ASR criterion {criterion!r}; choose one of {', '.join(ASR_CRITERION)}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Batch size must be a positive integer (got {batch_size!r}).")
    base = {n: p.default for n, p in PARAMS.items()} | dict(base or {})
    points, t0 = grid(axes), time.perf_counter()
    x = x.detach().float().to(model.device)
    y_used, label_source, correct, idx = select(model, x, y, batch_size, criterion)
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    scans = scans if scans is not None else ScanCache(model, min(x.shape[2:]))
    count0, rows, parts, done, stopped = scans.count, [], [], 0, False
    total = len(points) * len(methods) * len(idx)
    if units is not None:
        units.begin({"experiment": "sweep", "axes": [[a.name, list(a.values)] for a in axes], "methods": methods,
                     "base": base, "criterion": criterion, "batch_size": batch_size,
                     "model": getattr(model, "name", type(model).__name__), "weights": fingerprint_model(model),
                     "data": data, "keys": keys, "images": fingerprint_tensor(x), "labels": fingerprint_tensor(y_used),
                     "device": str(x.device)},
                    len(points) * len(methods))
    for method in methods:
        warm_up(model, x[idx[:1]], method, method != methods[0])
    for p_i, point in enumerate(points):
        for method in methods:
            values = point_values(base, point, METHODS[method].spatial)
            try:
                cfg = build_config(values)
            except ValueError as exc:
                rows.append(_point_row(point, method, None, None, str(exc).splitlines()[0]))
                continue
            where, key = f"point {p_i + 1}/{len(points)}", UnitStore.key(p_i, method)
            if units is not None and key in units:  # finished by an earlier run
                df, stopped, done = units.get(key)[0][0], False, done + len(idx)
                if progress is not None:
                    progress(f"{method} · {where}", done, total)
            else:
                df, stopped, done = _attack_point(model, x, y_used, idx, keys, method, cfg, scans, batch_size,
                                                  criterion, progress, should_stop, done, total, where)
                if units is not None and not stopped:
                    units.add(key, [df])
            if df is not None:
                parts.append(df.assign(point=p_i, **point))
                rows.append(_point_row(point, method, values, df, "" if not stopped else "stopped: partial"))
            if stopped:
                break
        if stopped:
            break
    config = {"axes": [{"name": a.name, "values": list(a.values), "shown": a.shown, "label": a.label} for a in axes],
              "methods": methods, "base": base, "criterion": criterion, "criterion_text": ASR_CRITERION[criterion],
              "model": getattr(model, "name", type(model).__name__), "data": data, "n_total": len(x),
              "n_attacked": len(idx), "n_clean_correct": int(correct.sum()), "label_source": label_source,
              "batch_size": batch_size, "seed": base["seed"], "n_points": len(points), "n_scans": scans.count - count0,
              "lifted": any(r["lifted"] for r in rows), "fair_eps_max": FAIR_EPS_MAX, "keys": keys,
              "stopped_early": stopped, "wall_time_s": time.perf_counter() - t0, "device": str(x.device),
              "versions": package_versions()}
    per_sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return SweepResult(pd.DataFrame(rows), per_sample, config, stopped)


def _attack_point(model, x, y, idx, keys, method, cfg, scans, batch_size, criterion, progress, should_stop,
                  done, total, where):
    """One (point, method) over every batch: (per-sample rows or None, stopped, samples done)."""
    m, parts = METHODS[method], []
    for b, start in enumerate(range(0, len(idx), batch_size)):
        if should_stop is not None and should_stop():
            return (pd.concat(parts, ignore_index=True) if parts else None), True, done
        ib = idx[start:start + batch_size]
        xb, yb = x[ib], y[ib]
        scan = scans.get(b, xb, yb, cfg) if m.spatial else None
        result = m.fn(model, xb, yb, cfg, scan=scan)
        per = evaluate(xb, result, criterion).per_sample
        parts.append(per.assign(method=method, index=ib.cpu().numpy(), key=[keys[i] for i in ib.tolist()],
                                label=result.y.cpu().numpy(), clean_pred=result.clean_pred.cpu().numpy(),
                                adv_pred=result.adv_pred.cpu().numpy()))
        done += len(ib)
        if progress is not None:
            progress(f"{method} · {where}", done, total)
    return pd.concat(parts, ignore_index=True), False, done


def sweep_files(result: SweepResult) -> dict[str, bytes]:
    """sweep.csv (one row per point and method), sweep_per_sample.csv and sweep.json as {name: bytes}."""
    cfg = json.dumps(result.config, indent=2, ensure_ascii=False, default=str)
    return {"sweep.csv": result.points.to_csv(index=False).encode("utf-8"),
            "sweep_per_sample.csv": result.per_sample.to_csv(index=False).encode("utf-8"),
            "sweep.json": cfg.encode("utf-8")}


def load_points(path_or_bytes) -> pd.DataFrame:
    """A sweep.csv back as the points DataFrame (for ``figure sweep --from sweep.csv``)."""
    import io

    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    df = pd.read_csv(src)
    if "method" not in df or "valid" not in df:
        raise ValueError("This CSV is not a sweep.csv (no 'method' and 'valid' columns).")
    return df


__all__ = ["Axis", "ScanCache", "SWEEPABLE", "SweepResult", "parse_values", "point_values", "run_sweep", "sweep_files",
           "load_points"]
