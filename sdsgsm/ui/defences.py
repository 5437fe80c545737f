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


# ----------------------------------------------------------------------------- Detection and Randomisation tabs
DETECT_METHODS = ["fgsm", "pgd"]  # the Detection tab's default non-adaptive attacks
EOT_METHODS = ["pgd"]  # the Randomisation tab's default attack (FGSM-family: EOT lives in their loop)


def arm_config(eps: float, steps: int):
    """The AttackConfig of a Detection / Randomisation run (spec defaults, the tab's ε and T); one-line
    ValueError above the app's limits (:mod:`sdsgsm.ui.limits`) or for an invalid value."""
    from sdsgsm.attacks import build_config
    from sdsgsm.ui.limits import APP_MAX_ARM_STEPS

    if steps > APP_MAX_ARM_STEPS:
        raise ValueError(f"Steps T = {steps} is above this tab's limit of {APP_MAX_ARM_STEPS}; use the command line "
                         "for longer runs.")
    return build_config({"eps": float(eps), "steps": int(steps)})


def _check_images(limit: int) -> None:
    from sdsgsm.ui.limits import APP_MAX_ARM_IMAGES

    if not 1 <= limit <= APP_MAX_ARM_IMAGES:
        raise ValueError(f"Choose 1 … {APP_MAX_ARM_IMAGES} images here (got {limit}); use the command line for more.")


def run_detect(limit: int, model_key: str, methods: tuple[str, ...], eps: float, steps: int, fpr: float,
               progress=None, should_stop=None, ckpt: bytes | None = None, arch: str = ""):
    """Feature-squeezing detection (Xu, Evans & Qi, NDSS 2018) of ``methods`` and of the adaptive attack
    (Carlini & Wagner, AISec 2017) on the first ``limit`` gallery images
    (:func:`sdsgsm.experiments.detection.run_detection`); a finished result is kept in the run store, so a
    re-run of the same request is instant. ValueError (one line) for bad input."""
    from sdsgsm.detection import DetectionConfig
    from sdsgsm.experiments.detection import run_detection

    _check_images(limit)
    if not methods:
        raise ValueError("Choose at least one attack.")
    cfg, det = arm_config(eps, steps), DetectionConfig(fpr=float(fpr))
    request = ("detection", limit, model_key, methods, cfg, det, arch)
    done = run_store().get(request)
    if done is not None:
        return done
    model = get_model(model_key, ckpt, arch)
    x, y, keys, info = bench_data("gallery", model_key, limit, ckpt, arch)
    with work_gate():
        res = run_detection(model, torch.from_numpy(x), torch.from_numpy(y), list(methods), cfg, det, batch_size=4,
                            progress=progress, should_stop=should_stop, keys=keys, data=info["name"])
    if not res.stopped:
        run_store().put(request, res)
    return res


def detection_table(res) -> pd.DataFrame:
    """One row per attack: mode, n, ASR, detection and evasion rates (%), ROC AUC (names from the registry)."""
    from sdsgsm.attacks import METHODS, method_label

    t = res.table()
    t["attack"] = [method_label(m) if m in METHODS else m for m in t["attack"]]
    return t.round({"ASR (%)": 1, "detection rate (%)": 1, "evasion rate (%)": 1, "ROC AUC": 3})


def _pct(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{100 * float(v):.1f} %"


def detection_text(summary: pd.DataFrame, fpr: float) -> str:
    """The lesson in one sentence built from ``summary`` (run_detection's rows): the adaptive attack's detection
    and evasion rates against the non-adaptive attacks' (their mean, and the best-detected one)."""
    from sdsgsm.attacks import METHODS, method_label
    from sdsgsm.detection import ADAPTIVE_NAME

    ad = summary[summary["method"] == ADAPTIVE_NAME]
    na = summary[(summary["mode"] == "non-adaptive") & summary["method"].isin(list(METHODS))]
    if ad.empty or na.empty:
        return "Run both a non-adaptive attack and the adaptive one to compare them."
    a = ad.iloc[0]
    rates = na.dropna(subset=["detection_rate"])
    if rates.empty:
        return (f"No non-adaptive attack succeeded on a clean-correct image, so there is nothing to detect; the "
                f"adaptive attack is detected on {_pct(a['detection_rate'])} of its successes.")
    best = rates.loc[rates["detection_rate"].idxmax()]
    mean = float(rates["detection_rate"].mean())
    verdict = ("the detector is evaded once the attacker knows it" if pd.notna(a["detection_rate"]) and
               a["detection_rate"] < mean - 0.1 else "here the adaptive attack does not evade it more often")
    return (f"At a false-positive rate of at most {fpr * 100:g} % on clean images, the adaptive attack is detected on "
            f"**{_pct(a['detection_rate'])}** of its successful images (non-adaptive: **{_pct(mean)}** on average, "
            f"{_pct(best['detection_rate'])} for {method_label(best['method'])}); it evades model and detector on "
            f"{_pct(a['evasion_rate'])} of the clean-correct images: {verdict}.")


def roc_chart(res):
    """The interactive ROC curves per attack with the operating point at the threshold (Plotly)."""
    import plotly.graph_objects as go

    from sdsgsm.attacks import METHODS, method_label
    from sdsgsm.experiments.detection import roc_curves

    fig = go.Figure()
    for c in roc_curves(res):
        method, _, mode = c["name"].rpartition(" (")
        name = f"{method_label(method) if method in METHODS else method} ({mode}"
        line = fig.add_scatter(x=c["fpr"], y=c["tpr"], mode="lines", line_shape="hv",
                               name=f"{name} · AUC {c['auc']:.3f}")
        colour = line.data[-1].line.color
        fig.add_scatter(x=[c["point"][0]], y=[c["point"][1]], mode="markers", marker=dict(size=9, color=colour),
                        showlegend=False, hovertemplate=f"{name} at the threshold: FPR %{{x:.2f}}, "
                                                         "TPR %{y:.2f}<extra></extra>")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance")
    fig.update_layout(xaxis_title="false-positive rate (clean images flagged)",
                      yaxis_title="true-positive rate (successful adversarial images flagged)",
                      xaxis_range=[-0.02, 1.02], yaxis_range=[-0.02, 1.02], height=480,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.2, x=0))
    return fig


def run_eot(limit: int, model_key: str, methods: tuple[str, ...], eps: float, steps: int, eot_samples: int,
            eval_draws: int, resize_min: float, progress=None, should_stop=None, ckpt: bytes | None = None,
            arch: str = ""):
    """Random resize-and-pad (Xie et al., ICLR 2018) against non-adaptive, adaptive one-draw and EOT attacks
    (Athalye, Carlini & Wagner, ICML 2018) on the first ``limit`` gallery images
    (:func:`sdsgsm.experiments.randomisation.run_randomisation`), kept in the run store when finished.
    ValueError (one line) for bad input."""
    from sdsgsm.experiments.randomisation import run_randomisation
    from sdsgsm.ui.limits import APP_MAX_EOT

    _check_images(limit)
    if not methods:
        raise ValueError("Choose at least one attack.")
    for name, v in (("EOT samples n", eot_samples), ("evaluation draws", eval_draws)):
        if not 1 <= v <= APP_MAX_EOT:
            raise ValueError(f"{name} must be 1 … {APP_MAX_EOT} here (got {v}).")
    cfg, dcfg = arm_config(eps, steps), DefenceConfig(resize_min=float(resize_min))
    request = ("randomisation", limit, model_key, methods, cfg, dcfg, eot_samples, eval_draws, arch)
    done = run_store().get(request)
    if done is not None:
        return done
    model = get_model(model_key, ckpt, arch)
    x, y, keys, info = bench_data("gallery", model_key, limit, ckpt, arch)
    with work_gate():
        res = run_randomisation(model, torch.from_numpy(x), torch.from_numpy(y), list(methods), cfg, dcfg,
                                eot_samples=int(eot_samples), eval_draws=int(eval_draws), batch_size=4,
                                progress=progress, should_stop=should_stop, keys=keys, data=info["name"])
    if not res.stopped:
        run_store().put(request, res)
    return res


def eot_table(res) -> pd.DataFrame:
    """Attacks × (no defence, non-adaptive, adaptive one draw, EOT): ASR (%), display names."""
    from sdsgsm.attacks import method_label

    t = res.table().round(1).reset_index()
    t["attack"] = t["attack"].map(method_label)
    return t


def eot_text(table: pd.DataFrame, config: dict) -> str:
    """One sentence per attack built from the table's numbers (ASR %): what the random defence takes off a
    non-adaptive attack and what one draw and EOT win back."""
    from sdsgsm.metrics import format_metric

    lines = []
    for _, r in table.iterrows():
        na, one, eot = (r.get(c) for c in ("non-adaptive", "adaptive, one draw", "EOT"))
        if pd.isna(na):
            continue
        pct = lambda v: format_metric("asr", v / 100)  # noqa: E731
        s = (f"**{r['attack']}**: {pct(r['no defence'])} on the bare model, {pct(na)} once the random resize-and-pad "
             f"is in front of it (non-adaptive)")
        if pd.notna(one):
            s += f", {pct(one)} when crafted through one random draw per step"
        if pd.notna(eot):
            won = eot - na
            s += (f", and **{pct(eot)} with EOT** (n = {config['eot_samples']} draws per step): EOT wins back "
                  f"{won:.1f} points" if won > 0 else f", and {pct(eot)} with EOT (n = {config['eot_samples']}): "
                  "no gain here")
        lines.append(s + ".")
    if not lines:
        return "No attack has finished yet."
    return "\n\n".join(lines) + (f"\n\nClean accuracy with the defence: {config['clean_acc_defended'] * 100:.1f} % "
                                 f"(without: {config['clean_acc'] * 100:.1f} %).")


def detect_method_options() -> list[str]:
    """Registry methods a Detection run may use non-adaptively (white-box ones: black-box attacks take minutes)."""
    from sdsgsm.attacks import METHODS
    from sdsgsm.attacks.blackbox import BLACK_BOX

    return [m for m in METHODS if m not in BLACK_BOX]


def eot_method_options() -> list[str]:
    """Registry methods of the FGSM family (EOT is an option of their loop), registry order."""
    from sdsgsm.attacks import FAMILY_SPECS, METHODS

    return [m for m in METHODS if m in FAMILY_SPECS]
