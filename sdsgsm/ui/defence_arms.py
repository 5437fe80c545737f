"""The Defences page's Detection and Randomisation-and-EOT views (pages/7_Defences.py): controls in the main
area, Run / Stop, progress, the table, the figure and a sentence built from the numbers. The work lives in
:mod:`sdsgsm.ui.defences` (run_detect, run_eot); the page imports no torch.

Each run is bounded for a laptop (:mod:`sdsgsm.ui.limits`: at most APP_MAX_ARM_IMAGES gallery images, T ≤
APP_MAX_ARM_STEPS, EOT n ≤ APP_MAX_EOT); the command line has no such limits.
"""

from __future__ import annotations

import streamlit as st

from sdsgsm.attacks import method_label
from sdsgsm.params import DEFENCE_PARAMS, DETECTION_PARAMS, format_budget
from sdsgsm.ui import defences as ud
from sdsgsm.ui import state as links
from sdsgsm.ui.limits import APP_MAX_ARM_IMAGES, APP_MAX_ARM_STEPS, APP_MAX_EOT
from sdsgsm.ui.state import key

EPS_CHOICES = (1, 2, 4, 8, 16, 32)  # ε in /255 steps offered here
DEFAULT_IMAGES, DEFAULT_STEPS, DEFAULT_EOT = 4, 5, 5  # small defaults: one click stays short on a CPU


def _common(prefix: str, methods: list[str], default: list[str]) -> tuple[list[str], int, float, int]:
    """Attacks, images, ε and T in one row (main area); returns native values."""
    st.session_state.setdefault(key(prefix, "methods"), default)
    st.session_state.setdefault(key(prefix, "limit"), DEFAULT_IMAGES)
    st.session_state.setdefault(key(prefix, "eps"), 8)
    st.session_state.setdefault(key(prefix, "steps"), DEFAULT_STEPS)
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    chosen = c1.multiselect("Attacks", methods, key=key(prefix, "methods"), format_func=method_label)
    limit = int(c2.number_input("Images (first N of the gallery)", 1, APP_MAX_ARM_IMAGES, key=key(prefix, "limit"),
                                help=f"at most {APP_MAX_ARM_IMAGES} here; the command line takes any number"))
    eps = c3.select_slider("ε", EPS_CHOICES, key=key(prefix, "eps"), format_func=lambda v: format_budget(v / 255))
    steps = int(c4.number_input("Steps T", 1, APP_MAX_ARM_STEPS, key=key(prefix, "steps"),
                                help=f"iterations of the multi-step attacks (at most {APP_MAX_ARM_STEPS} here)"))
    return chosen, limit, eps / 255, steps


def detection(prefix: str, model_key: str, ckpt, arch: str, facts: dict) -> None:
    """Feature squeezing (Xu, Evans & Qi, NDSS 2018) against non-adaptive attacks and the adaptive attack."""
    p = f"{prefix}_det"
    st.subheader("Detection by feature squeezing")
    st.caption("The detector compares the model's softmax on an image and on squeezed copies of it (fewer bits per "
               "colour, a median filter); a large L1 distance flags the image as adversarial (Xu, Evans & Qi, NDSS "
               "2018). Its threshold is set on the clean images at the chosen false-positive rate. The **adaptive** "
               "attack knows the detector: it lowers the score while it fools the model (Carlini & Wagner, AISec "
               "2017), through the squeezers by BPDA.")
    chosen, limit, eps, steps = _common(p, ud.detect_method_options(), ud.DETECT_METHODS)
    fpr_spec = DETECTION_PARAMS["fpr"]
    st.session_state.setdefault(key(p, "fpr"), fpr_spec.default)
    fpr = float(st.number_input(fpr_spec.label, float(fpr_spec.lo), float(fpr_spec.hi), step=0.01,
                                key=key(p, "fpr"), help=fpr_spec.help, width=220))
    if not chosen:
        st.info("Choose at least one attack.")
        return
    st.caption(f"{len(chosen)} non-adaptive attack{'s' * (len(chosen) > 1)} + the adaptive one and its λ = 0 "
               f"baseline on {limit} image{'s' * (limit > 1)} · model **{facts['name']}** · command line: "
               f"`python -m sdsgsm detect --methods {','.join(chosen)} --data gallery --limit {limit} "
               f"--eps {eps * 255:g}/255 --steps {steps} --fpr {fpr:g} --out DIR`")
    request = ("detection", model_key, arch, tuple(chosen), limit, eps, steps, fpr)
    res = links.run_guarded(p, request, "Press **Run**: each attack is crafted, scored by the detector and compared "
                            "with the threshold. A finished run is kept, so coming back to it is instant.", "detection",
                            lambda progress: ud.run_detect(limit, model_key, tuple(chosen), eps, steps, fpr,
                                                           progress=progress, ckpt=ckpt, arch=arch))
    if res is None:
        return
    if res.summary.empty:
        st.warning("No attack finished.")
        return
    c = res.config
    st.markdown(ud.detection_text(res.summary, c["fpr"]))
    st.dataframe(ud.detection_table(res), hide_index=True, key=key(p, "table"), width="stretch")
    left, right = st.columns([3, 2])
    left.plotly_chart(ud.roc_chart(res), key=key(p, "roc"))
    with right:
        st.caption("ROC curves: each clean image is a negative, each successful adversarial image a positive; the dot "
                   "is the detector's operating point at its threshold. ")
        st.caption(f"Squeezers {', '.join(c['squeezer_text'])}; threshold {c['threshold']:.4f} at FPR ≤ "
                   f"{c['fpr'] * 100:g} % (realised {c['clean_fpr'] * 100:.1f} % on {c['n_total']} clean images, "
                   f"in-sample); adaptive λ = {c['detect_lambda']:g}. {c['criterion_text'][0].upper()}"
                   f"{c['criterion_text'][1:]}. Labels: {c['label_source']}.")
    st.download_button("detection.csv", res.summary.to_csv(index=False).encode("utf-8"), "detection.csv",
                       key=key(p, "dl"), on_click="ignore")


def randomisation(prefix: str, model_key: str, ckpt, arch: str, facts: dict) -> None:
    """Random resize-and-pad (Xie et al., ICLR 2018) against non-adaptive, one-draw and EOT attacks."""
    p = f"{prefix}_eot"
    st.subheader("Randomisation and EOT")
    st.caption("The defence resizes every image to a random size and pads it back at a random offset, afresh on "
               "each call (Xie et al., ICLR 2018). A **non-adaptive** attack is crafted on the bare model; an "
               "**adaptive, one draw** attack through one random draw per step; **EOT** averages each step's gradient "
               "over n draws, the expectation over the defence's randomness (Athalye, Carlini & Wagner, ICML 2018). "
               "ASR is the mean over evaluation draws of the defence.")
    chosen, limit, eps, steps = _common(p, ud.eot_method_options(), ud.EOT_METHODS)
    rmin = DEFENCE_PARAMS["resize_min"]
    for name, default in (("eot", DEFAULT_EOT), ("draws", DEFAULT_EOT), ("resize_min", rmin.default)):
        st.session_state.setdefault(key(p, name), default)
    c1, c2, c3, _ = st.columns([1, 1, 1, 3])
    eot = int(c1.number_input("EOT samples n", 1, APP_MAX_EOT, key=key(p, "eot"),
                              help="gradients (random draws) averaged per step of the EOT attack"))
    draws = int(c2.number_input("Evaluation draws", 1, APP_MAX_EOT, key=key(p, "draws"),
                                help="random draws of the defence each adversarial image is classified under"))
    resize_min = float(c3.number_input(rmin.label, float(rmin.lo), float(rmin.hi), step=float(rmin.step or 0.05),
                                       key=key(p, "resize_min"), help=rmin.help))
    if not chosen:
        st.info("Choose at least one attack.")
        return
    st.caption(f"{len(chosen)} attack{'s' * (len(chosen) > 1)} × 3 attackers on {limit} image{'s' * (limit > 1)} · "
               f"model **{facts['name']}** · command line: `python -m sdsgsm defend --eot-table --methods "
               f"{','.join(chosen)} --data gallery --limit {limit} --eps {eps * 255:g}/255 --steps {steps} "
               f"--eot-samples {eot} --resize-min {resize_min:g} --out DIR`")
    request = ("randomisation", model_key, arch, tuple(chosen), limit, eps, steps, eot, draws, resize_min)
    res = links.run_guarded(p, request, "Press **Run**: each attack runs three times (non-adaptive, one draw, EOT). A "
                            "finished run is kept, so coming back to it is instant.", "randomisation",
                            lambda progress: ud.run_eot(limit, model_key, tuple(chosen), eps, steps, eot, draws,
                                                        resize_min, progress=progress, ckpt=ckpt, arch=arch))
    if res is None:
        return
    if res.summary.empty:
        st.warning("No attack finished.")
        return
    table = ud.eot_table(res)
    st.markdown(ud.eot_text(table, res.config))
    st.dataframe(table, hide_index=True, key=key(p, "table"),
                 column_config={c: st.column_config.NumberColumn(c, format="%.1f %%") for c in table.columns
                                if c != "attack"})
    c = res.config
    st.caption(f"ASR (%). Defence {c['defence']} ({c['defence_text']}); EOT n = {c['eot_samples']}; "
               f"{c['eval_draws']} evaluation draws; ε = {format_budget(eps)}, T = {steps}. {c['criterion_text']}. "
               f"Labels: {c['label_source']}.")
    st.download_button("randomisation.csv", res.summary.to_csv(index=False).encode("utf-8"), "randomisation.csv",
                       key=key(p, "dl"), on_click="ignore")
