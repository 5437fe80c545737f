"""The shipped patch results in the app: where a patch hurts (accuracy by placement and side, from
``sdsgsm patch-eval`` on the 20 ImageNet gallery images) and how the universal patch learned (its training
curve, from ``sdsgsm train-patch --curve-every``). Read from ``assets/patches``; the app never trains."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from sdsgsm.attacks.patch import PATCH_DIR
from sdsgsm.experiments.patch_eval import placement_sentence, shipped_curves
from sdsgsm.render import figures
from sdsgsm.render.patches import KIND_NAMES, PLACEMENT_NAMES, curve_figure, placement_figure
from sdsgsm.ui.figures import PREVIEW_DPI

RESULTS = PATCH_DIR / "patch_eval.csv"
RESULTS_INFO = PATCH_DIR / "patch_eval.json"


@st.cache_data(show_spinner=False)
def shipped_results() -> tuple[pd.DataFrame, dict] | None:
    """(summary table, its config) of the shipped patch evaluation, or None when it is not shipped."""
    if not RESULTS.is_file() or not RESULTS_INFO.is_file():
        return None
    return pd.read_csv(RESULTS), json.loads(RESULTS_INFO.read_text(encoding="utf-8"))


@st.cache_data(show_spinner=False)
def _placement_png(summary: pd.DataFrame, clean: float) -> bytes:
    return figures.render(figures.build(placement_figure, summary, clean), "png", dpi=PREVIEW_DPI)


@st.cache_data(show_spinner=False)
def _curve_png() -> bytes | None:
    curves = shipped_curves()
    if not curves:
        return None
    return figures.render(figures.build(curve_figure, curves), "png", dpi=PREVIEW_DPI)


def table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows: kind and side; columns: placements; cells 'accuracy % (patch's class %)'."""
    rows = []
    for (kind, size), part in summary.groupby(["kind", "size"], sort=False):
        row = {"patch": KIND_NAMES[kind], "side (px)": int(size)}
        for _, r in part.iterrows():
            row[PLACEMENT_NAMES[r["placement"]]] = f"{r['accuracy']:.0f} % ({r['target_hit']:.0f} %)"
        rows.append(row)
    return pd.DataFrame(rows)


def placement_section(size: int, kind: str) -> None:
    """Expander with the shipped placement results, a sentence computed from the row of ``kind`` at the side
    nearest ``size``, the figure and the universal patch's training curve."""
    shipped = shipped_results()
    if shipped is None:
        return
    summary, info = shipped
    with st.expander(f"Where a patch hurts: {info['n_images']} ImageNet gallery images, shipped results"):
        sizes = sorted(summary.loc[summary["kind"] == kind, "size"].unique())
        if sizes:
            near = min(sizes, key=lambda s: abs(s - size))
            st.markdown(placement_sentence(summary, kind, near))
        st.caption(f"Top-1 accuracy under the patch (clean: {info['clean_accuracy']:.0f} %); in brackets the share "
                   "predicted as the patch's class (the universal patch's target, toaster; a pasted crop's own "
                   f"class). Random placement: mean of {info['spec']['seeds']} seeds. `sdsgsm patch-eval` made it.")
        st.dataframe(table(summary), hide_index=True, width="stretch")
        st.image(_placement_png(summary, float(info["clean_accuracy"])), width="stretch")
        curve = _curve_png()
        if curve is not None:
            st.caption("The universal patch's training curve: target hits on the held-out ImageNet images as "
                       "training went on (it trained on other images).")
            st.image(curve, width=520)
