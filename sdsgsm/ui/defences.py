"""Streamlit helpers of the Defences page: defence widgets from ``DEFENCE_PARAMS``, the grid run
through the server's run store, and numpy / pandas / bytes out (the page imports no torch).

A grid request (data, images, model, attack config, batch) owns one *store* in the run store: the crafted
and adaptive attacks and the defended logits of the grid (:func:`sdsgsm.experiments.defence_grid.run_defence_grid`'s
``store``), so Stop keeps every finished cell, and adding a defence or a method, or moving a defence's
parameter, recomputes only what changed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from sdsgsm.defences import DEFENCES, DefenceConfig, transform
from sdsgsm.experiments.defence_grid import CRITERION, MODES, crafted, defence_files, run_defence_grid  # noqa: F401  (re-exported)
from sdsgsm.params import DEFENCE_PARAMS, parse_query
from sdsgsm.ui.cache import CACHE_TTL, bench_data, get_model, run_store, work_gate
from sdsgsm.ui.state import key
from sdsgsm.ui.widgets import param_widget

TVM_MAX_IMAGES = 4  # TVM takes seconds per image and call (bench/defences.py); more images: the command line
DEFAULT_DEFENCES = ["jpeg", "median", "gaussian", "bitdepth"]


def defence_options() -> dict[str, str]:
    """Defence name -> one-line description, registry order, without 'none' (always in the grid)."""
    return {n: d.description for n, d in DEFENCES.items() if n != "none"}


def init_defence_state(prefix: str, query: dict[str, str]) -> list[str]:
    """Spec defaults of every defence parameter, then the link's valid values (``query``: the link's
    parameters on the page's first run, else {}); returns one warning line per ignored value."""
    for name, p in DEFENCE_PARAMS.items():
        k = key(prefix, name)
        st.session_state[k] = st.session_state.get(k, p.shown(p.default))  # kept while its widget is hidden
    values, warnings = parse_query(query, DEFENCE_PARAMS)
    for name, value in values.items():
        st.session_state[key(prefix, name)] = DEFENCE_PARAMS[name].shown(value)
    return warnings


def defence_controls(prefix: str, chosen: list[str], box=None) -> DefenceConfig:
    """One expander with the parameters of the chosen defences (widgets from DEFENCE_PARAMS); returns the
    DefenceConfig of every defence parameter. Raises ValueError (one line) for an invalid value."""
    box = box or st.sidebar
    shown = [p for p in DEFENCE_PARAMS.values() if set(p.show_if[1]) & set(chosen)]
    if shown:
        with box.expander("Defence parameters", expanded=True):
            for p in shown:
                param_widget(prefix, p)
    return DefenceConfig(**defence_values(prefix))


def defence_values(prefix: str) -> dict:
    """Native values of every defence parameter from the page's state."""
    return {n: p.native(st.session_state[key(prefix, n)]) for n, p in DEFENCE_PARAMS.items()}


def defence_query(prefix: str) -> dict[str, str]:
    """The defence parameters as query parameters (shown units)."""
    return {n: f"{p.shown(p.native(st.session_state[key(prefix, n)]))}" for n, p in DEFENCE_PARAMS.items()}


def _store(request: tuple) -> dict:
    store = run_store().get(("defence-store", request))
    if store is None:
        store = {}
        run_store().put(("defence-store", request), store)
    return store


def run_grid(spec: str, limit: int, model_key: str, methods: tuple[str, ...], defences: tuple[str, ...], cfg,
             dcfg: DefenceConfig, batch: int, progress=None, should_stop=None, ckpt: bytes | None = None,
             arch: str = ""):
    """The grid of the request (finished cells come from its store; ``should_stop`` True shows only those)."""
    model = get_model(model_key, ckpt, arch)
    x, y, keys, info = bench_data(spec, model_key, limit, ckpt, arch)
    store = _store((spec, limit, model_key, cfg, batch, arch))
    with work_gate():
        return run_defence_grid(model, torch.from_numpy(x), torch.from_numpy(y), list(methods), list(defences), cfg,
                                dcfg, batch_size=batch, progress=progress, should_stop=should_stop, keys=keys,
                                data=info["name"], store=store)


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def grid_download(_grid, request: tuple) -> dict[str, bytes]:
    """defences.csv, defences_per_sample.csv, defences.json and the figure files of a grid (``request``
    names the grid for the cache)."""
    return defence_files(_grid)


def heatmaps(grid):
    """The interactive twin of the print figure: ASR (%) non-adaptive | adaptive (``viz.matrix_figure``)."""
    from sdsgsm.render.viz import matrix_figure

    fig = matrix_figure([(m, grid.matrix(m)) for m in MODES], "ASR (%)", digits=0,
                        counts=[grid.matrix(m, "n") for m in MODES])
    fig.update_layout(height=250 + 40 * len(grid.matrix(MODES[0])))  # room for the colour bar with few rows
    return fig


def table(grid) -> pd.DataFrame:
    """One row per (attack, defence): parameters, clean accuracy, n, ASR non-adaptive / adaptive, how much
    the defence lowered ASR and how much the adaptive attack won back, L2 and SSIM of both modes, time."""
    cells = grid.cells.set_index(["method", "defence", "mode"])
    lesson = grid.lesson().set_index(["attack", "defence"])
    rows = []
    for (method, d), _ in grid.cells.groupby(["method", "defence"], sort=False):
        na, ad = cells.loc[(method, d, "non-adaptive")], cells.loc[(method, d, "adaptive")]
        row = {"attack": method, "defence": d, "parameters": na["params"], "clean acc. (%)": 100 * na["clean_acc"],
               "n": int(na["n"]), "ASR non-adaptive (%)": 100 * na["asr"], "ASR adaptive (%)": 100 * ad["asr"]}
        if (method, d) in lesson.index:
            row |= {k: lesson.loc[(method, d), k] for k in ("lowered by (pp)", "won back (pp)")}
        row |= {"L2 non-adaptive": na["l2_mean"], "L2 adaptive": ad["l2_mean"], "SSIM non-adaptive": na["ssim_mean"],
                "SSIM adaptive": ad["ssim_mean"], "s/image non-adaptive": na["time_s_mean"],
                "s/image adaptive": ad["time_s_mean"], "note": ad["note"]}
        rows.append(row)
    df = pd.DataFrame(rows)
    digits = {c: 1 for c in df.columns if "(%)" in c or "(pp)" in c} | {c: 3 for c in df.columns if "L2" in c} | {
        c: 4 for c in df.columns if "SSIM" in c} | {c: 2 for c in df.columns if "s/image" in c}
    return df.round(digits)


def example(spec: str, limit: int, model_key: str, cfg, batch: int, method: str, defence: str, mode: str,
            dcfg: DefenceConfig, index: int, ckpt: bytes | None = None, arch: str = "") -> dict | None:
    """One image of a finished cell: clean x and T(x), adversarial x_adv and T(x_adv) as (H, W, 3) float32,
    with the predictions (class names) of f on the undefended and of f on the defended inputs, and the
    label. None when the cell has not run (stopped, or not run for a slow defence)."""
    model = get_model(model_key, ckpt, arch)
    x, y, keys, _ = bench_data(spec, model_key, limit, ckpt, arch)
    res = crafted(_store((spec, limit, model_key, cfg, batch, arch)), method, defence, mode, dcfg)
    if res is None:
        return None
    xs = torch.cat([torch.from_numpy(x[index:index + 1]).to(model.device), res.x_adv[index:index + 1]])  # (2, 3, H, W)
    ts = transform(xs, defence, dcfg)
    with torch.inference_mode():
        preds = model(torch.cat([xs, ts])).argmax(1).tolist()  # x, x_adv, T(x), T(x_adv)
    hwc = lambda t: t.permute(1, 2, 0).cpu().numpy().astype(np.float32)  # noqa: E731
    names = [model.labels[i] for i in preds]
    return {"x": hwc(xs[0]), "x_adv": hwc(xs[1]), "t_x": hwc(ts[0]), "t_adv": hwc(ts[1]), "key": keys[index],
            "label": model.labels[int(res.y[index])], "pred_x": names[0], "pred_adv": names[1], "pred_t_x": names[2],
            "pred_t_adv": names[3]}
