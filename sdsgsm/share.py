"""Shareable state: a run as a link's query parameters, and a ``result.json`` loaded back.

Query keys (stable; the Explorer, the Learn page and the CLI agree on them): every spec
parameter under its name in shown units (``eps_strong=8`` = 8/255, 0 = auto;
:mod:`sdsgsm.params`), plus ``image`` (gallery key), ``model``, ``method`` and ``label``
(a class index, or ``pred`` for the clean prediction). Pure functions, no streamlit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from sdsgsm.attacks import METHODS, AttackConfig, build_config, config_values
from sdsgsm.budget import BudgetConfig
from sdsgsm.occlusion import ScanConfig
from sdsgsm.params import PARAMS

RUN_KEYS = ("image", "model", "method", "label")


def param_query(values: Mapping[str, object]) -> dict[str, str]:
    """Native values of spec parameters -> {name: shown-unit text} (the link's parameter part)."""
    out = {}
    for name, p in PARAMS.items():
        if name in values:
            shown = p.shown(values[name])
            out[name] = f"{shown:g}" if isinstance(shown, float) else str(shown)
    return out


@dataclass(frozen=True)
class SavedRun:
    """What a result.json says about its run: image reference, method, config, label (None = clean prediction)."""

    image: str
    method: str
    cfg: AttackConfig
    label: int | None
    model: str


def _sub(cls, data: Mapping):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def config_from_parameters(params: Mapping) -> AttackConfig:
    """result.json's 'parameters' (``dataclasses.asdict`` of an AttackConfig) -> the AttackConfig.

    Unknown keys are ignored; the config's own checks run (ValueError, one line)."""
    top = {k: v for k, v in params.items() if k not in ("scan", "budget")}
    cfg = _sub(AttackConfig, top)
    scan = _sub(ScanConfig, params.get("scan") or {})
    budget = _sub(BudgetConfig, params.get("budget") or {})
    return replace(cfg, scan=scan, budget=budget)


def load_result(src: str | Path | bytes) -> SavedRun:
    """A result.json (path or bytes) -> :class:`SavedRun`. Raises ValueError with a one-line message."""
    try:
        raw = Path(src).read_bytes() if isinstance(src, (str, Path)) else bytes(src)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("This is not a readable result.json file.") from None
    if not isinstance(data, dict) or not {"method", "parameters", "image"} <= set(data):
        raise ValueError("This JSON is not a result.json of `python -m sdsgsm attack` (no method/parameters/image).")
    if data["method"] not in METHODS:
        raise ValueError(f"result.json names an unknown method {str(data['method'])[:40]!r}.")
    try:
        cfg = config_from_parameters(data["parameters"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"result.json holds invalid parameters: {str(exc).splitlines()[0]}") from None
    label = data.get("label") or {}
    idx = label.get("index") if str(label.get("source", "")).startswith("true label") else None
    return SavedRun(str(data["image"]), data["method"], cfg, idx if isinstance(idx, int) else None,
                    str(data.get("model", "efficientnet_lite0")))


def run_query(run: SavedRun) -> dict[str, str]:
    """The link (query parameters) that reproduces a saved run in the Explorer."""
    return {"image": run.image, "model": run.model, "method": run.method,
            "label": "pred" if run.label is None else str(run.label), **param_query(config_values(run.cfg))}


def override(cfg: AttackConfig, values: Mapping[str, object]) -> AttackConfig:
    """``cfg`` with spec parameters replaced by ``values`` (native); fields outside the spec
    (ti_sigma, the scan's chunk/engine/precision/refine) keep cfg's values."""
    new = build_config({**config_values(cfg), **dict(values)})
    keep = {f.name: getattr(cfg.scan, f.name) for f in fields(ScanConfig) if f.name not in ("patch", "stride", "score")}
    return replace(new, ti_sigma=cfg.ti_sigma, scan=replace(new.scan, **keep))


__all__ = ["RUN_KEYS", "SavedRun", "config_from_parameters", "load_result", "override", "param_query", "run_query"]
