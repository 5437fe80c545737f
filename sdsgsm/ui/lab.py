"""Streamlit helpers of the Robust-training page (pages/8_Robust_training.py); numpy/pandas/Plotly out.

The shipped models (sdsgsm/assets/lab) and their saved evaluation are read from disk; other settings
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

from sdsgsm.attacks import method_label
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
    fig = make_subplots(rows=1, cols=len(methods), shared_yaxes=True, subplot_titles=[method_label(m) for m in methods],
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


# ----------------------------------------------------------------------------- sentences built from the numbers
CLASSES = 10  # the digits
CHANCE_MARGIN = 0.05  # a model whose clean accuracy is within 5 points of 1/CLASSES is called untrained
MODEL_NAMES = {"standard": "standard", "distilled": "distilled", "fgsm_at": "FGSM-AT", "pgd_at": "PGD-AT",
               "alp": "ALP", "ens_at": "ensemble AT"}


def clean_accuracy(curve: pd.DataFrame) -> dict[str, float]:
    """Each model's clean accuracy (the curve at ε = 0, every attack gives the same)."""
    clean = curve[np.isclose(curve["eps"], 0.0)]
    return {m: float(rows["accuracy"].mean()) for m, rows in clean.groupby("model", sort=False)}


def at_chance(accuracy: float) -> bool:
    """Whether an accuracy is within :data:`CHANCE_MARGIN` of chance (1/10 on the digits): an untrained model."""
    return accuracy <= 1 / CLASSES + CHANCE_MARGIN


def untrained_text(curve: pd.DataFrame, epochs: int) -> str:
    """A warning naming every model at chance ('' when none is): its numbers say nothing about its defence."""
    low = {m: a for m, a in clean_accuracy(curve).items() if at_chance(a)}
    if not low:
        return ""
    names = ", ".join(f"**{MODEL_NAMES.get(m, m)}** ({a:.1%})" for m, a in low.items())
    one = len(low) == 1
    return (f"Untrained: {names} {'is' if one else 'are'} at chance on clean digits (1 in {CLASSES} = "
            f"{1 / CLASSES:.0%}) after {epochs} epoch{'s' if epochs != 1 else ''}; {'its' if one else 'their'} "
            "numbers below say nothing about the defence. Train for more epochs.")


def headline_text(h: dict, curve: pd.DataFrame) -> str:
    """The headline sentence from the numbers: where the standard model falls and what the others keep there."""
    clean = clean_accuracy(curve)
    if at_chance(clean.get("standard", 1.0)):
        return (f"The standard model is at chance already on clean digits ({clean['standard']:.1%}), so there is no "
                "ε at which it falls; retrain it for more epochs.")
    if clean.get("standard", 1.0) < h["threshold"]:
        return (f"The standard model is below {h['threshold']:.0%} already on clean digits "
                f"({clean['standard']:.1%}): too little training for the figure of arXiv:2312.16880, so there is "
                "no ε at which it falls; retrain it for more epochs.")
    if h.get("eps") is None:
        return f"The standard model stays above {h['threshold']:.0%} over this ε range."
    acc = h["accuracy"]
    best = max((m for m in acc if m != "standard"), key=acc.get, default=None)
    kept = ", ".join(("" if m == "distilled" else f"{MODEL_NAMES.get(m, m)} ") + f"**{acc[m]:.1%}**" +
                     (" (at chance: untrained)" if at_chance(clean.get(m, 1.0)) else "")
                     for m in sorted(acc, key=lambda m: m != "distilled") if m != "standard")
    verdict = (f" The most robust here is {MODEL_NAMES.get(best, best)}." if best and acc[best] > acc["standard"]
               + 0.1 and not at_chance(clean.get(best, 1.0)) else "")
    return (f"**The figure of arXiv:2312.16880.** The standard model *falls* (accuracy below {h['threshold']:.0%}) "
            f"under {method_label(h['method'])} at ε = {h['eps_255']:.0f}/255 ≈ {h['eps']:.3f} (dotted line): "
            f"{acc['standard']:.1%}. There the distilled model keeps {kept}.{verdict}")


def cw_text(cw: pd.DataFrame, curve: pd.DataFrame) -> str:
    """The CW-L2 sentence from the CW table, its wording chosen by the distilled model's success rate."""
    d = cw.set_index("model")
    if "distilled" not in d.index:
        return ""
    rate, n = float(d.loc["distilled", "success_rate"]), int(d.loc["distilled", "n_clean_correct"])
    std = float(d.loc["standard", "success_rate"]) if "standard" in d.index else float("nan")
    clean = clean_accuracy(curve).get("distilled", 1.0)
    numbers = (f"CW fools the distilled model on **{rate:.0%}** of its {n} clean-correct digits (standard {std:.0%})"
               f", mean L2 {float(d.loc['distilled', 'l2_mean']):.2f}")
    if n == 0:
        return "The distilled model gets none of these test digits right, so CW has nothing to fool."
    if at_chance(clean):
        return (numbers + f". The distilled model is at chance ({clean:.1%} clean), untrained: this says nothing about "
                "distillation.")
    if rate >= 0.9:
        return (numbers + ". CW works on the logits, not on the saturated softmax: distillation masks the gradient; "
                "it does not remove the vulnerability (Carlini & Wagner 2017).")
    if rate >= 0.5:
        return numbers + ": distillation slows CW down here but does not stop it (Carlini & Wagner 2017)."
    return (numbers + ": at these settings (CW iterations, model) CW fails on most digits, so this run does not show "
            "that distillation leaves the model vulnerable.")


def saturation_text(sat: pd.DataFrame, curve: pd.DataFrame) -> str:
    """The saturation sentence from the saturation table, its wording chosen by the shares shown."""
    s = sat.set_index("model")
    if "distilled" not in s.index:
        return ""
    share, zero = float(s.loc["distilled", "share_max_prob_gt_0999"]), float(s.loc["distilled", "share_zero_grad"])
    std_share = float(s.loc["standard", "share_max_prob_gt_0999"]) if "standard" in s.index else float("nan")
    std_zero = float(s.loc["standard", "share_zero_grad"]) if "standard" in s.index else float("nan")
    clean = clean_accuracy(curve).get("distilled", 1.0)
    numbers = (f"max p > 0.999 on {share:.0%} of the digits (standard {std_share:.0%}); the cross-entropy's input "
               f"gradient is exactly 0 in float32 on {zero:.0%} (standard {std_zero:.0%})")
    if at_chance(clean):
        return f"The distilled model is at chance ({clean:.1%} clean), untrained: {numbers}."
    if share >= 0.5:
        lead = "The distilled student's logits are about T times larger, so its softmax at T = 1 saturates: "
    else:
        lead = "The distilled student's softmax at T = 1 does not saturate at these settings: "
    tail = ("; there FGSM's sign step moves nothing." if zero >= 0.2 else
            "; the gradient survives on most digits, so FGSM's sign step still has a direction.")
    return lead + numbers + tail


# ----------------------------------------------------------------------------- the six models, masking, certificates
SMOOTHING_MODEL = "efficientnet_lite0"  # the embedded ImageNet model smoothed on one gallery photo
SMOOTHING_SIGMA, SMOOTHING_N = 0.25, 32  # noise σ on [0, 1] pixels and PREDICT's samples (a few seconds on a CPU)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def shipped_robust() -> dict:
    """The shipped six-model results (assets/lab, ``python -m sdsgsm lab table``): {'table': RobustTable (FGSM per
    model and ε, CW-L2, masking check), 'n_test', 'record'} read from lab_robust.csv, lab_robust_cw.csv,
    lab_masking.csv and lab_robust.json."""
    import json

    record = json.loads((LAB_DIR / "lab_robust.json").read_text(encoding="utf-8"))
    table = lab.RobustTable(pd.read_csv(LAB_DIR / "lab_robust.csv"), pd.read_csv(LAB_DIR / "lab_robust_cw.csv"),
                            pd.read_csv(LAB_DIR / "lab_masking.csv"), record.get("seconds", {}))
    return {"table": table, "n_test": int(record.get("n_test", 0)) or None, "record": record}


def robust_frame(table) -> pd.DataFrame:
    """One row per model (display names): clean and FGSM accuracy (%) at each ε, CW-L2 accuracy and success (%)."""
    wide = lab.robust_wide(table)
    wide["model"] = wide["model"].map(lambda m: MODEL_NAMES.get(m, m))
    wide.columns.name = None
    return wide.rename(columns={c: f"FGSM ε = {c.split()[1]}" for c in wide.columns if c.startswith("fgsm ")} |
                       {"cw accuracy": "CW-L2 accuracy", "cw success": "CW-L2 success"})


def masking_frame(masking: pd.DataFrame) -> pd.DataFrame:
    """The masking check (accuracy % over all test digits): model, ε, FGSM, PGD, PGD with restarts, transfer, worst."""
    out = masking[["model", "eps", "fgsm", "pgd", "pgd_restarts", "transfer", "worst"]].copy()
    out["model"] = out["model"].map(lambda m: MODEL_NAMES.get(m, m))
    for c in ("fgsm", "pgd", "pgd_restarts", "transfer", "worst"):
        out[c] = out[c] * 100
    r, src = int(masking["restarts"].iloc[0]), MODEL_NAMES.get(masking["source"].iloc[0], masking["source"].iloc[0])
    return out.rename(columns={"fgsm": "FGSM", "pgd": "PGD", "pgd_restarts": f"PGD, {r} restarts",
                               "transfer": f"transfer from {src}", "worst": "worst", "eps": "ε"})


def masking_lines(masking: pd.DataFrame) -> list[str]:
    """:func:`sdsgsm.experiments.lab.masking_text`, one line per row, each led by the model's display name."""
    lines = lab.masking_text(masking).splitlines()
    return [MODEL_NAMES.get(m, m) + line[len(m):] if line.startswith(m) else line
            for line, m in zip(lines, masking["model"])]


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def shipped_certify() -> dict:
    """The shipped certificates (``python -m sdsgsm lab certify``): {'curve', 'digits' DataFrames, 'info' (n,
    α), 'text' (:func:`sdsgsm.experiments.lab.certify_text`)}."""
    import json
    import re

    curve = pd.read_csv(LAB_DIR / "lab_certify_curve.csv")
    digits = pd.read_csv(LAB_DIR / "lab_certify_digits.csv")
    record = json.loads((LAB_DIR / "lab_certify.json").read_text(encoding="utf-8"))
    found = {k: re.search(rf"\b{k}=([0-9.e-]+)", record.get("certify", "")) for k in ("n", "alpha")}
    info = {"n": int(found["n"].group(1)) if found["n"] else None,
            "alpha": float(found["alpha"].group(1)) if found["alpha"] else None}
    res = lab.CertifyResult(digits, curve, {}, {}, info)
    return {"curve": curve, "digits": digits, "info": info, "text": lab.certify_text(res)}


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def certify_png(curve: pd.DataFrame, digits: pd.DataFrame | None = None) -> bytes:
    """The certificate figure as PNG bytes (:func:`sdsgsm.render.certify.certify_figure`): certified accuracy per σ
    (solid steps, exact from the per-digit radii) beside the smoothed classifier's accuracy under PGD-L2 (dashed)."""
    from sdsgsm.render import figures
    from sdsgsm.render.certify import certify_figure

    return figures.render(figures.build(certify_figure, curve, digits), "png")


def lower_bound_text(curve: pd.DataFrame, alpha: float | None = None) -> str:
    """The certificate is a lower bound, said with the curve's numbers: per σ the largest radius with a non-zero
    certified accuracy, its value and the empirical accuracy under PGD-L2 there; how many points lie above."""
    parts = []
    for sigma, rows in curve.groupby("sigma", sort=False):
        pos = rows[rows["certified"] > 0].sort_values("radius")
        if pos.empty:
            parts.append(f"at σ = {sigma:g} no digit is certified")
            continue
        r = pos.iloc[-1]
        parts.append(f"at σ = {sigma:g} and r = {r['radius']:g}, {r['certified'] * 100:.1f} % of the digits are "
                     f"certified and PGD-L2 leaves {r['empirical'] * 100:.1f} %")
    above = int((curve["certified"] > curve["empirical"] + 1e-12).sum())
    conf = f" (with probability 1 − α = {1 - alpha:g} per digit)" if alpha else ""
    tail = (f"; the certified accuracy lies at or below the empirical one at all {len(curve)} points." if not above
            else f"; {above} of {len(curve)} points lie above the empirical one, within the statistical error.")
    return ("A certificate is a **lower bound**: no L2 attack of radius r can push the smoothed classifier below the "
            f"certified accuracy{conf}, and PGD-L2 is only one such attack. Here " + "; ".join(parts) + tail)


def smoothing_photos() -> list[str]:
    """Keys of the gallery's ImageNet photos (the smoothed model's data set)."""
    from sdsgsm.ui.cache import gallery_options

    return [g["key"] for g in gallery_options("imagenet")]


def smoothing(key_: str, sigma: float = SMOOTHING_SIGMA, n: int = SMOOTHING_N) -> dict:
    """PREDICT of the embedded ImageNet model smoothed with Gaussian noise σ on one gallery photo
    (:func:`sdsgsm.experiments.lab.imagenet_smoothing`), with class names; kept in the run store."""
    from sdsgsm.ui.cache import get_model

    k = ("lab-smoothing", key_, float(sigma), int(n))
    hit = run_store().get(k)
    if hit is not None:
        return hit
    model = get_model(SMOOTHING_MODEL)
    with work_gate():
        out = lab.imagenet_smoothing([key_], sigma=float(sigma), n=int(n), model=model)
    name = lambda i: "abstain" if i < 0 else model.labels[i]  # noqa: E731
    for r in out["photos"]:
        r |= {"label_name": name(r["label"]) if r["label"] >= 0 else "unknown",
              "clean_name": name(r["clean_prediction"]), "smoothed_name": name(r["smoothed_prediction"])}
    run_store().put(k, out)
    return out


def smoothing_text(out: dict) -> str:
    """One sentence per photo built from the PREDICT numbers, then why a model not trained with noise certifies
    little (Cohen, Rosenfeld & Kolter 2019)."""
    lines = []
    for r in out["photos"]:
        verdict = ("the smoothed classifier **abstains**" if r["abstained"] else
                   f"the smoothed classifier says **{r['smoothed_name']}**")
        lines.append(f"{r['key']}: clean prediction **{r['clean_name']}**; under noise σ = {out['sigma']:g} the top "
                     f"class got {r['n_a']} of {r['n']} votes, spread over {r['classes_voted']} classes, so {verdict} "
                     f"(α = {out['alpha']:g}).")
    return "\n\n".join(lines + [out["note"]])
