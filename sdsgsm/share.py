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


def param_query(values: Mapping[str, object], base: Mapping[str, object] | None = None) -> dict[str, str]:
    """Native values of spec parameters -> {name: shown-unit text} (the link's parameter part).

    ``base``: the native values a link is opened over (the spec defaults, or a preset's numbers); a
    parameter whose shown value equals its base value is left out, so a shared link holds only what
    differs (``compact_query``)."""
    out = {}
    for name, p in PARAMS.items():
        if name in values:
            shown = p.shown(values[name])
            if base is not None and name in base and p.shown(base[name]) == shown:
                continue
            out[name] = f"{shown:g}" if isinstance(shown, float) else str(shown)
    return out


def link_base(preset: str | None = None) -> dict[str, object]:
    """The native values a page starts from before a link's own: the spec defaults, with a named
    preset's numbers over them (the Benchmark's ``preset=``)."""
    from sdsgsm.params import PRESETS

    defaults = {n: p.default for n, p in PARAMS.items()}
    return PRESETS[preset].apply() if preset in PRESETS else defaults


def absolute_link(root: str, page: str, query: Mapping[str, str]) -> str:
    """``root`` (scheme, host, port, base path: 'http://localhost:8501') + '/' + ``page`` ('' for Home,
    'Explorer', …) + '?' + the URL-encoded query (left out when empty)."""
    from urllib.parse import urlencode

    url = root.rstrip("/") + ("/" + page if page else "")
    return f"{url}?{urlencode(dict(query))}" if query else url


def qr_png(text: str, scale: int = 4) -> bytes | None:
    """A QR code of ``text`` as PNG bytes (for a classroom projector), or None when the ``segno``
    package is not installed."""
    try:
        import segno
    except ImportError:
        return None
    import io

    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()


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


__all__ = ["RUN_KEYS", "SavedRun", "absolute_link", "config_from_parameters", "link_base", "load_result", "override",
           "param_query", "qr_png", "run_query"]
