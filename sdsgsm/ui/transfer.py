"""Cache adapters for the Transfer page: models at the shared size, one cached run per
(source, method), the matrix files, an example image. Hashable arguments in; numpy / pandas / bytes out.

Each (source, method) run is kept in the server's :func:`~sdsgsm.ui.cache.run_store` (Stop keeps the
finished ones, a re-run or an extra method is quick); members are loaded once through
:func:`~sdsgsm.ui.cache.get_model`, so Lite0 is shared with the other pages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from sdsgsm.attacks import AttackConfig
from sdsgsm.ensemble import ALIASES, ENSEMBLE_PREFIX, WORK_SIZE, ModelSpec, build, parse_spec, parse_specs, short
from sdsgsm.experiments.transfer import (  # noqa: F401
    CRITERION,
    DEFAULT_METHODS,
    RELATIONS,
    RESIZE_RULE,
    TransferResult,
    merge_transfer,
    run_transfer,
    source_cells,
    transfer_figure,
    transfer_files,
)
from sdsgsm.experiments.transfer import figure_files as matrix_files
from sdsgsm.models import ModelError, available_models
from sdsgsm.render import figures
from sdsgsm.ui.cache import CACHE_TTL, bench_data, get_model, run_store, work_gate
from sdsgsm.ui.figures import PREVIEW_DPI

BATCH = 8


def model_choices() -> dict[str, str]:
    """Short name -> registered name of every model available offline here (lite0, lite1, lite2, …)."""
    return {short(m.name): m.name for m in available_models() if m.available}


def unavailable() -> list[str]:
    """Names of the registered models that cannot load here (torchvision without cached weights)."""
    return [m.name for m in available_models() if not m.available]


def ensemble_label(members: list[str]) -> str | None:
    """'ens:a+b' for two or more members, else None."""
    return ENSEMBLE_PREFIX + "+".join(members) if len(members) >= 2 else None


def spec_models(label: str) -> str:
    """The registered names a source / target label holds, joined by '+'."""
    return parse_spec(label).models


def _model(label: str):
    """The model of a spec label at the shared size (members from the cached loader)."""
    return build(parse_spec(label), WORK_SIZE, load=lambda name: get_model(name))


def _data(limit: int):
    """The first ``limit`` gallery images at 224 px (x, y tensors, keys, info), read through Lite0's cache."""
    x, y, keys, info = bench_data("gallery", "efficientnet_lite0", limit)
    return torch.from_numpy(x), torch.from_numpy(y), keys, info


def piece(source: str, method: str, targets: tuple[str, ...], limit: int, cfg: AttackConfig, progress=None):
    """One (source, method) run against every target, kept in the run store: a TransferResult."""
    key = ("transfer", source, method, targets, limit, cfg, BATCH)
    hit = run_store().get(key)
    if hit is not None:
        return hit
    x, y, keys, info = _data(limit)
    src = [(parse_spec(source), _model(source))]
    tgt = [(parse_spec(t), _model(t)) for t in targets]
    with work_gate():
        res = run_transfer(src, tgt, x, y, [method], cfg, batch_size=BATCH, progress=progress, keys=keys,
                           data=info["name"])
    run_store().put(key, res)
    return res


def cached_piece(source: str, method: str, targets: tuple[str, ...], limit: int, cfg: AttackConfig):
    """A finished (source, method) run from the run store, or None."""
    return run_store().get(("transfer", source, method, targets, limit, cfg, BATCH))


def merge(parts: list) -> TransferResult:
    return merge_transfer(parts)


def check_specs(sources: list[str], targets: list[str]) -> None:
    """ModelError (one line) for an unknown model or an empty list."""
    parse_specs(sources, "sources")
    parse_specs(targets, "targets")


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def downloads(_result: TransferResult, request: tuple) -> dict[str, bytes]:
    """transfer.csv, transfer_per_sample.csv, transfer.md, transfer.json, transfer_matrix.pdf/.png/.svg/.json."""
    return {**transfer_files(_result), **matrix_files(_result)}


def matrix_chart(result: TransferResult):
    """Plotly heat maps, one panel per method: sources (rows) × targets (columns), ASR %."""
    from sdsgsm.render.viz import matrix_figure

    panels = result.panels()
    fig = matrix_figure(panels, "ASR (%)", digits=0, counts=[result.matrix(m, "n") for m, _ in panels])
    rows = max((len(df) for _, df in panels), default=1)
    fig.update_layout(height=190 + 46 * rows)  # room for the colour bar with a single source row
    return fig


def matrix_preview(result: TransferResult) -> bytes:
    """The print figure at screen resolution (PNG)."""
    return figures.render(transfer_figure(result), "png", dpi=PREVIEW_DPI)


def source_table(result: TransferResult) -> pd.DataFrame:
    return source_cells(result)


def example(result: TransferResult, method: str, source: str, key: str) -> dict | None:
    """One attacked image: original and adversarial (H, W, 3) float32, and per target its clean and
    adversarial prediction names, whether it counts and whether it was fooled; None if not attacked."""
    from sdsgsm.data import gallery_item, load_image
    from sdsgsm.models import imagenet_labels

    got = result.adversarial.get((method, source))
    rows = result.per_sample[(result.per_sample["method"] == method) & (result.per_sample["source"] == source)
                             & (result.per_sample["key"] == key)]
    if got is None or rows.empty:
        return None
    idx, x_adv = got
    j = int(np.flatnonzero(idx == int(rows["index"].iloc[0]))[0])
    names = imagenet_labels()
    table = pd.DataFrame({"target": rows["target"], "relation": rows["relation"],
                          "clean prediction": [names[i] for i in rows["target_clean_pred"]],
                          "prediction of x_adv": [names[i] for i in rows["target_adv_pred"]],
                          "counted": rows["evaluated"], "fooled": rows["success"] & rows["evaluated"]})
    original = load_image(gallery_item(key).path, WORK_SIZE).permute(1, 2, 0).numpy()
    return {"original": original, "adversarial": x_adv[j].transpose(1, 2, 0),
            "label": names[int(rows["label"].iloc[0])], "table": table.reset_index(drop=True)}


__all__ = ["ALIASES", "BATCH", "CRITERION", "DEFAULT_METHODS", "ModelError", "ModelSpec", "RELATIONS", "RESIZE_RULE",
           "cached_piece", "check_specs", "downloads", "ensemble_label", "example", "matrix_chart", "matrix_preview",
           "merge", "model_choices", "piece", "source_table", "spec_models", "unavailable"]
