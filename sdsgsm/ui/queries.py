"""Streamlit helpers of the Benchmark page's Queries view: how many model queries a black-box attacker needs to
match one white-box gradient step (Square, Andriushchenko et al., ECCV 2020; HopSkipJump, Chen, Jordan & Wainwright,
IEEE S&P 2020; SimBA, Guo et al., ICML 2019; against FGSM, Goodfellow, Shlens & Szegedy, ICLR 2015, and PGD, Madry
et al., ICLR 2018).

:func:`run` calls :func:`sdsgsm.experiments.queries.run_queries` on the first N gallery images (bounded by
:mod:`sdsgsm.ui.limits`) and keeps a finished result in the server's run store; :func:`asr_chart`,
:func:`match_frame` and :func:`match_text` turn it into a Plotly figure, a table and sentences built from its
numbers. The page imports no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from sdsgsm.attacks import METHODS, build_config, method_label
from sdsgsm.attacks.blackbox import BLACK_BOX
from sdsgsm.experiments.queries import DEFAULT_WHITE, parse_budgets, run_queries
from sdsgsm.metrics import format_metric
from sdsgsm.params import PARAMS, format_budget
from sdsgsm.ui import state as links
from sdsgsm.ui.cache import bench_data, get_model, run_store, work_gate
from sdsgsm.ui.limits import APP_MAX_ARM_IMAGES, APP_MAX_ARM_STEPS, APP_MAX_QUERIES
from sdsgsm.ui.state import key

DEFAULT_BLACK = ("square",)
DEFAULT_BUDGETS = (25, 50, 100, 200)  # small: one click stays short on a CPU (the CLI's default goes to 1000)
BUDGET_STOPS = tuple(b for b in (10, 25, 50, 100, 200, 400, 500, 1000, *PARAMS["queries"].stops)
                     if b <= APP_MAX_QUERIES)


def black_box_options() -> list[str]:
    """The registry's black-box (query-only) methods."""
    return list(BLACK_BOX)


def white_box_options() -> list[str]:
    """Registry methods that are not black-box (their ASR is the target a black-box attacker must match)."""
    return [m for m in METHODS if m not in BLACK_BOX]


def budget_choices() -> list[int]:
    """The budgets offered in the app (sorted, distinct, at most :data:`APP_MAX_QUERIES`)."""
    return sorted(set(BUDGET_STOPS))


def check_request(black: list[str], white: list[str], limit: int, steps: int, budgets) -> tuple[int, ...]:
    """One-line ValueError for a request the app does not run; returns the parsed budgets."""
    if not black:
        raise ValueError(f"Choose at least one black-box method ({', '.join(map(method_label, BLACK_BOX))}).")
    if not white:
        raise ValueError("Choose at least one white-box method to match (e.g. FGSM).")
    if not 1 <= limit <= APP_MAX_ARM_IMAGES:
        raise ValueError(f"Choose 1 … {APP_MAX_ARM_IMAGES} images here (got {limit}); use the command line for more.")
    if not 1 <= steps <= APP_MAX_ARM_STEPS:
        raise ValueError(f"Steps T must be 1 … {APP_MAX_ARM_STEPS} here (got {steps}).")
    budgets = parse_budgets(list(budgets)) if budgets else ()
    if not budgets:
        raise ValueError("Choose at least one query budget.")
    if max(budgets) > APP_MAX_QUERIES:
        raise ValueError(f"A budget of {max(budgets)} queries is above this app's limit of {APP_MAX_QUERIES}; use "
                         "`python -m sdsgsm queries --budgets …`.")
    return budgets


def run(limit: int, model_key: str, black: tuple[str, ...], white: tuple[str, ...], eps: float, steps: int,
        budgets: tuple[int, ...], progress=None, should_stop=None, ckpt: bytes | None = None, arch: str = ""):
    """:func:`~sdsgsm.experiments.queries.run_queries` on the first ``limit`` gallery images (ε, T from the tab,
    the other parameters their spec defaults); a finished result is kept in the run store."""
    budgets = check_request(list(black), list(white), limit, steps, budgets)
    cfg = build_config({"eps": float(eps), "steps": int(steps)})
    request = ("queries", limit, model_key, black, white, cfg, budgets, arch)
    done = run_store().get(request)
    if done is not None:
        return done
    model = get_model(model_key, ckpt, arch)
    x, y, keys, info = bench_data("gallery", model_key, limit, ckpt, arch)
    with work_gate():
        res = run_queries(model, torch.from_numpy(x), torch.from_numpy(y), [*black, *white], cfg, budgets,
                          batch_size=4, progress=progress, should_stop=should_stop, keys=keys, data=info["name"])
    if not res.stopped:
        run_store().put(request, res)
    return res


def asr_chart(result):
    """ASR (%) against the query budget (log x) per black-box method; the white-box ASR as dashed lines."""
    import plotly.graph_objects as go

    s, budgets = result.summary, result.config["budgets"]
    fig = go.Figure()
    for m in result.config["black_box"]:
        part = s[s["method"] == m].sort_values("budget")
        fig.add_scatter(x=part["budget"], y=part["asr"] * 100, mode="lines+markers", name=method_label(m),
                        hovertemplate="%{x} queries: ASR %{y:.1f} %<extra>" + method_label(m) + "</extra>")
    for k, (_, r) in enumerate(s[s["kind"] == "white-box"].iterrows()):
        steps = int(r["gradient_steps"])
        fig.add_scatter(x=[min(budgets), max(budgets)], y=[r["asr"] * 100] * 2, mode="lines",
                        line=dict(dash=("dash", "dot", "dashdot", "longdash")[k % 4], width=2 + (k == 0)),
                        name=f"{r['label']} (white-box, {steps} gradient step{'s' * (steps != 1)})")
    fig.update_layout(xaxis_type="log", xaxis_title="query budget per image (log scale)", yaxis_title="ASR (%)",
                      yaxis_range=[-2, 104], height=440, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(tickvals=list(budgets), ticktext=[str(b) for b in budgets]),
                      legend=dict(orientation="h", y=-0.25, x=0))
    return fig


def asr_frame(result) -> pd.DataFrame:
    """One row per method: access, then the ASR within each budget (white-box: the same ASR in every column)."""
    s, budgets = result.summary, result.config["budgets"]
    rows = []
    for m in result.config["black_box"]:
        part = s[s["method"] == m].set_index("budget")
        rows.append({"method": method_label(m), "access": "black-box (queries)",
                     **{f"ASR @ {b} q": format_metric("asr", part.loc[b, "asr"]) for b in budgets},
                     "mean queries to success": format_metric("queries", part["queries_mean"].iloc[-1])})
    for _, r in s[s["kind"] == "white-box"].iterrows():
        steps = int(r["gradient_steps"])
        rows.append({"method": r["label"], "access": f"white-box ({steps} gradient step{'s' * (steps != 1)})",
                     **{f"ASR @ {b} q": format_metric("asr", r["asr"]) for b in budgets},
                     "mean queries to success": format_metric("queries", np.nan)})
    return pd.DataFrame(rows)


def match_frame(config: dict) -> pd.DataFrame:
    """One row per (black-box, white-box) pair: the white-box ASR and the queries per image the black-box method
    needs to reach it ('not within B' when it does not)."""
    top = max(config["budgets"])
    return pd.DataFrame([{"black-box": method_label(r["black_box"]), "to match": method_label(r["white_box"]),
                          "white-box ASR": format_metric("asr", r["white_asr"]),
                          "queries per image": str(r["queries_to_match"]) if r["queries_to_match"] is not None
                          else f"not within {top}"} for r in config["match"]])


def match_text(config: dict) -> str:
    """The finding in sentences built from the match records: per white-box method, which black-box attacks
    reach its ASR and with how many queries per image, which do not within the largest budget."""
    top, lines = max(config["budgets"]), []
    eps = format_budget(config["eps"])
    for w in config["white_box"]:
        recs = [r for r in config["match"] if r["white_box"] == w]
        if not recs:
            continue
        asr = format_metric("asr", recs[0]["white_asr"])
        hit = [f"{method_label(r['black_box'])} needs **{r['queries_to_match']}** queries per image"
               for r in recs if r["queries_to_match"] is not None]
        miss = [method_label(r["black_box"]) for r in recs if r["queries_to_match"] is None]
        steps = config["params"].get(w, {}).get("gradient_steps", 1)
        s = (f"To match {method_label(w)} ({steps} gradient step{'s' * (steps != 1)}, ASR {asr} at ε = {eps} on "
             f"{config['n_attacked']} clean-correct images): ")
        parts = []
        if hit:
            parts.append("; ".join(hit))
        if miss:
            parts.append(f"{' and '.join(miss)} {'does' if len(miss) == 1 else 'do'} not within {top} queries")
        lines.append(s + "; ".join(parts) + ".")
    return "\n\n".join(lines) or "No white-box method to match."


EPS_CHOICES = (1, 2, 4, 8, 16, 32)  # ε in /255 steps offered here


def section(prefix: str, model_key: str, ckpt, arch: str, facts: dict) -> None:
    """The Queries view: methods, images, ε, T and budgets; Run / Stop with progress; the ASR-against-queries
    figure, the ASR table and the match table with its sentences."""
    p = f"{prefix}_q"
    st.subheader("Queries: black-box against white-box")
    st.caption("A white-box attacker reads the gradient: FGSM takes one gradient step, PGD T of them. A black-box "
               "attacker sees only the model's outputs and pays in **queries** (forward passes of one image): Square "
               "(Andriushchenko et al., ECCV 2020) and SimBA (Guo et al., ICML 2019) read scores, HopSkipJump "
               "(Chen, Jordan & Wainwright, IEEE S&P 2020) only the top label. How many queries buy what one "
               "gradient step does? Each black-box attack runs once at the largest budget; ASR(b) counts the images "
               "it fooled within b queries.")
    for name, default in (("black", list(DEFAULT_BLACK)), ("white", list(DEFAULT_WHITE)), ("limit", 4), ("eps", 8),
                          ("steps", 5), ("budgets", list(DEFAULT_BUDGETS))):
        st.session_state.setdefault(key(p, name), default)
    c1, c2 = st.columns(2)
    black = c1.multiselect("Black-box methods", black_box_options(), key=key(p, "black"), format_func=method_label)
    white = c2.multiselect("White-box methods to match", white_box_options(), key=key(p, "white"),
                           format_func=method_label)
    c1, c2, c3, c4 = st.columns([1, 1, 1, 3])
    limit = int(c1.number_input("Images (first N of the gallery)", 1, APP_MAX_ARM_IMAGES, key=key(p, "limit"),
                                help=f"at most {APP_MAX_ARM_IMAGES} here; the command line takes any number"))
    eps = c2.select_slider("ε", EPS_CHOICES, key=key(p, "eps"), format_func=lambda v: format_budget(v / 255))
    steps = int(c3.number_input("Steps T (white-box)", 1, APP_MAX_ARM_STEPS, key=key(p, "steps")))
    budgets = c4.multiselect("Query budgets per image", budget_choices(), key=key(p, "budgets"),
                             help=f"the largest is the black-box run's budget (at most {APP_MAX_QUERIES} here)")
    try:
        budgets = check_request(black, white, limit, steps, budgets)
    except ValueError as exc:
        st.error(str(exc).splitlines()[0])
        return
    st.caption(f"{len(black)} black-box × {limit} image{'s' * (limit > 1)} at up to {max(budgets)} queries each, "
               f"{len(white)} white-box · model **{facts['name']}** · command line: `python -m sdsgsm queries "
               f"--methods {','.join([*black, *white])} --data gallery --limit {limit} --eps {eps:g}/255 "
               f"--steps {steps} --budgets {','.join(map(str, budgets))} --out DIR`")
    request = ("queries", model_key, arch, tuple(black), tuple(white), limit, eps, steps, budgets)
    res = links.run_guarded(p, request, "Press **Run**: each black-box method runs once at the largest budget. A "
                            "finished run is kept, so coming back to it is instant.", "queries",
                            lambda progress: run(limit, model_key, tuple(black), tuple(white), eps / 255, steps,
                                                 budgets, progress=progress, ckpt=ckpt, arch=arch))
    if res is None:
        return
    if res.summary.empty or not res.config["n_attacked"]:
        st.warning("No image to attack: the model misclassifies every chosen image when clean.")
        return
    st.markdown(match_text(res.config))
    left, right = st.columns([3, 2])
    left.plotly_chart(asr_chart(res), key=key(p, "chart"))
    with right:
        st.dataframe(match_frame(res.config), hide_index=True, key=key(p, "match"), width="stretch")
        st.caption(f"Queries per image a black-box method needs to reach the white-box ASR; {res.config['criterion']}.")
    st.dataframe(asr_frame(res), hide_index=True, key=key(p, "asr"), width="stretch")
    st.download_button("queries.csv", res.summary.to_csv(index=False).encode("utf-8"), "queries.csv",
                       key=key(p, "dl"), on_click="ignore")


__all__ = ["BUDGET_STOPS", "DEFAULT_BLACK", "DEFAULT_BUDGETS", "DEFAULT_WHITE", "asr_chart", "asr_frame",
           "black_box_options", "budget_choices", "check_request", "match_frame", "match_text", "run", "section",
           "white_box_options"]
