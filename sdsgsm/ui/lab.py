"""Streamlit helpers of the Robust-training page (pages/8_Robust_training.py); numpy/pandas/Plotly out.

The shipped models (assets/lab) and their saved evaluation are read from disk; other settings
(:data:`RETRAIN`: temperature T, training ε, epochs, widgets and link values from ``LAB_PARAMS``) retrain the
four models and evaluate them (a shorter ε grid and CW on fewer digits than the CLI's defaults, said on the
page) in a worker process of their own (:func:`sdsgsm.experiments.lab.run_isolated`), so the app's torch
thread count is never changed; results go to the server's run store (:func:`sdsgsm.ui.cache.run_store`,
keyed on the settings), with the page's progress bar. No module-level mutable state.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from sdsgsm.experiments import lab
from sdsgsm.experiments.lab import EPS_TOP, LAB_DIR, LAB_METHODS, MODEL_COLOURS, MODEL_TEXT, MODELS  # noqa: F401  (for the page)
from sdsgsm.params import LAB_PARAMS, LAB_VIEW_PARAMS, parse_query
from sdsgsm.ui.cache import CACHE_TTL, run_store, work_gate
from sdsgsm.ui.limits import APP_MAX_EPOCHS
from sdsgsm.ui.state import key

APP_EVAL = lab.EvalConfig(eps=tuple(np.linspace(0.0, EPS_TOP, 5).tolist()), cw_limit=20)
EXAMPLES = 6  # digits shown clean vs adversarial
RETRAIN = ("temperature", "train_eps", "epochs")  # the LAB_PARAMS the page's Retrain expander sets
PAGE_SPEC = {**{n: LAB_PARAMS[n] for n in RETRAIN}, **LAB_VIEW_PARAMS}  # the page's widgets and link keys


def init_page_state(prefix: str, query: dict[str, str]) -> list[str]:
    """Spec defaults of the page's parameters (shown units), then the link's valid values (``query``: the link
    on the page's first run, else {}); returns one warning line per ignored value."""
    for name, p in PAGE_SPEC.items():
        st.session_state.setdefault(key(prefix, name), p.shown(p.default))
    values, warnings = parse_query(query, PAGE_SPEC)
    for name, value in values.items():
        st.session_state[key(prefix, name)] = PAGE_SPEC[name].shown(value)
    return warnings


def page_values(prefix: str, names=tuple(PAGE_SPEC)) -> dict:
    """Native values of the page's parameters from its state."""
    return {n: PAGE_SPEC[n].native(st.session_state[key(prefix, n)]) for n in names}


def page_query(values: dict) -> dict[str, str]:
    """Native values -> the link's query parameters (shown units: training ε and ε as n/255)."""
    return {n: f"{PAGE_SPEC[n].shown(v):g}" if PAGE_SPEC[n].kind is not str else v for n, v in values.items()}


def shipped_settings() -> tuple[float, float, int]:
    """(temperature, training ε, epochs) of the shipped models (assets/lab/lab.json)."""
    t = lab.read_record(LAB_DIR)["training"]
    return float(t["temperature"]), float(t["train_eps"]), int(t["epochs"])


def settings_config(temperature: float, train_eps: float, epochs: int) -> lab.TrainConfig:
    """The shipped TrainConfig with the page's three settings; ValueError (one line) if invalid (the spec's
    ranges, and at most :data:`APP_MAX_EPOCHS` epochs in the app)."""
    if epochs > APP_MAX_EPOCHS:
        raise ValueError(f"The app trains at most {APP_MAX_EPOCHS} epochs per model (got {epochs}); use "
                         "`python -m sdsgsm lab train` for more.")
    base = lab.TrainConfig(**lab.read_record(LAB_DIR)["training"])
    return replace(base, temperature=float(temperature), train_eps=float(train_eps), epochs=int(epochs))


def _retrain(temperature: float, train_eps: float, epochs: int, progress=None, evaluate: bool = False):
    """Train the four models (and, with ``evaluate``, evaluate them with :data:`APP_EVAL`) in a worker process
    (:func:`sdsgsm.experiments.lab.train_isolated`): the app process's thread count stays as it is. Stores the
    models, and the evaluation if made, in the run store; returns (frozen models, LabEval or None)."""
    cfg = settings_config(temperature, train_eps, epochs)
    with work_gate():
        nets, _, ev = lab.train_isolated(cfg, ecfg=APP_EVAL if evaluate else None, progress=progress)
    nets = lab.frozen(nets)
    run_store().put(("lab-models", float(temperature), float(train_eps), int(epochs)), nets)
    return nets, ev


def models(temperature: float, train_eps: float, epochs: int, progress=None) -> dict:
    """{name: frozen Classifier}: the shipped ones for the shipped settings, else trained now in a worker
    process (seconds per model; ``progress(text, done, total)`` per epoch). Kept in the server's run store
    (an ``st.cache_resource``, keyed on the settings): a live progress bar cannot sit inside a cached function."""
    k = ("lab-models", float(temperature), float(train_eps), int(epochs))
    hit = run_store().get(k)
    if hit is not None:
        return hit
    if k[1:] != shipped_settings():
        return _retrain(temperature, train_eps, epochs, progress)[0]
    nets = lab.load_models(LAB_DIR).nets
    run_store().put(k, nets)
    return nets


def evaluation(temperature: float, train_eps: float, epochs: int, progress=None) -> dict:
    """{'curve', 'cw', 'saturation' DataFrames, 'headline', 'eval' settings text, 'seconds', 'shipped'}: the
    saved evaluation of the shipped models, else a fresh one (:data:`APP_EVAL`), kept in the run store."""
    k = ("lab-eval", float(temperature), float(train_eps), int(epochs))
    hit = run_store().get(k)
    if hit is not None:
        return hit
    shipped = k[1:] == shipped_settings()
    record = lab.read_record(LAB_DIR)
    saved = lab.read_eval(LAB_DIR, record) if shipped else None
    ecfg = _saved_eval_config() if saved is not None else APP_EVAL
    nets = run_store().get(("lab-models", *k[1:]))
    if saved is None and nets is None and not shipped:  # train and evaluate in one worker process
        nets, saved = _retrain(temperature, train_eps, epochs, progress, evaluate=True)
    if saved is None:
        nets = nets or models(temperature, train_eps, epochs, progress)
        split = lab.load_split(record["split"]["seed"], record["split"]["test_size"])
        with work_gate():
            saved = lab.evaluate_isolated(nets, split, APP_EVAL, progress)
    out = {"curve": saved.curve, "cw": saved.cw, "saturation": saved.saturation, "headline": saved.headline,
           "eval": f"{len(ecfg.eps)} ε values, {ecfg.steps} steps for PGD and SD-SGSM, SD-SGSM m = {ecfg.patch} px "
                   f"with ε_weak = {ecfg.weak_ratio:g}·ε; CW-L2 {ecfg.cw_steps} iterations on the first "
                   f"{ecfg.cw_limit} test digits",
           "seconds": saved.seconds, "shipped": shipped}
    run_store().put(k, out)
    return out


def _saved_eval_config() -> lab.EvalConfig:
    import json

    saved = json.loads((LAB_DIR / "lab_eval.json").read_text(encoding="utf-8"))["eval"]
    return lab.EvalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def accuracy_chart(curve: pd.DataFrame, headline: dict | None = None):
    """Plotly: accuracy (%) against ε (×1/255), one panel per attack, one line per model (the twin of
    :func:`sdsgsm.render.figures.lab_figure`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    methods = list(dict.fromkeys(curve["method"]))
    fig = make_subplots(rows=1, cols=len(methods), shared_yaxes=True, subplot_titles=methods,
                        horizontal_spacing=0.04)
    for j, method in enumerate(methods, start=1):
        for k, (model, rows) in enumerate(curve[curve["method"] == method].groupby("model", sort=False)):
            rows = rows.sort_values("eps")
            fig.add_trace(go.Scatter(x=rows["eps"] * 255, y=rows["accuracy"] * 100, name=model, legendgroup=model,
                                     showlegend=j == 1, mode="lines+markers",
                                     line=dict(color=MODEL_COLOURS.get(model, "grey")),
                                     marker=dict(symbol=("circle", "square", "diamond", "triangle-up")[k % 4]),
                                     hovertemplate=f"{model} · {method}<br>ε = %{{x:.1f}}/255<br>"
                                                   "accuracy %{y:.1f} %<extra></extra>"), row=1, col=j)
        fig.update_xaxes(title_text="ε (×1/255)", row=1, col=j)
        if headline and headline.get("eps") is not None:
            fig.add_vline(x=headline["eps"] * 255, line_dash="dot", line_color="grey", row=1, col=j)
    fig.update_yaxes(title_text="accuracy, all test digits (%)", range=[0, 101], row=1, col=1)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def accuracy_table(curve: pd.DataFrame) -> pd.DataFrame:
    """The wide table (%), ε shown as ×1/255."""
    t = lab.wide_table(curve)
    t.insert(1, "ε (×1/255)", (t.pop("eps") * 255).round(1))
    return t


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def example_digits(temperature: float, train_eps: float, epochs: int, method: str, eps: float) -> dict:
    """The first :data:`EXAMPLES` test digits clean and attacked on the standard and distilled models:
    {'clean' (k, 8, 8), 'label' (k,), model: {x_adv, clean_pred, adv_pred, adv_prob}} as numpy."""
    nets = models(temperature, train_eps, epochs)
    record = lab.read_record(LAB_DIR)
    split = lab.load_split(record["split"]["seed"], record["split"]["test_size"])
    x, y = split.x_test[:EXAMPLES], split.y_test[:EXAMPLES]
    ecfg = replace(APP_EVAL, eps=(float(eps),))
    out = lab.examples({k: nets[k] for k in ("standard", "distilled")}, x, y, float(eps), method, ecfg)
    return {"clean": x[:, 0].numpy(), "label": y.numpy(), **out}


def digit_png(img: np.ndarray, scale: int = 12) -> bytes:
    """An 8×8 grey digit in [0, 1] as an upscaled PNG (nearest neighbour, ink dark on white)."""
    from PIL import Image

    from sdsgsm.render.viz import png_bytes

    a = np.round(np.clip(1 - img, 0, 1) * 255).astype(np.uint8)
    return png_bytes(Image.fromarray(a, "L").resize((8 * scale, 8 * scale), Image.NEAREST))
