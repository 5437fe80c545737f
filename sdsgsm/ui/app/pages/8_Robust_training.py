"""Robust training: defensive distillation and adversarial training on sklearn's 8×8 digits
(Papernot et al. 2016; Goodfellow et al. 2015; Madry et al. 2018).

Same code as `python -m sdsgsm lab train|eval`. The shipped models and their evaluation load from
assets/lab; other settings retrain the four models (seconds each) with a progress bar."""

import streamlit as st

from sdsgsm.ui import lab as ul
from sdsgsm.ui import nav
from sdsgsm.ui import state as links
from sdsgsm.ui.widgets import param_widget

st.set_page_config(page_title="Robust training · SD-SGSM", layout="wide")
nav.sidebar()
P = "lab"
query = links.open_page(P, link_keys=())
for warning in ul.init_page_state(P, query):  # widgets and link values from the lab's parameter spec
    st.warning(warning)
SHIPPED = ul.shipped_settings()
if query:
    st.session_state[f"{P}_settings"] = tuple(ul.page_values(P, ul.RETRAIN).values())
settings = st.session_state.setdefault(f"{P}_settings", SHIPPED)
T0, E0, N0 = SHIPPED

st.title("Robust training: distillation and adversarial training")
st.caption("Four small CNNs on scikit-learn's 1,797 handwritten digits (8×8, pixels scaled to [0, 1]; stratified "
           "75/25 split, 450 test digits), attacked through the same registry as the rest of the app. Accuracy is "
           "over **all** test digits, so ε = 0 is the clean accuracy.")
st.markdown("\n".join(f"- **{name}** — {text}" for name, text in ul.MODEL_TEXT.items()) +
            "\n\nSources: Papernot et al. 2016 (distillation); Carlini & Wagner 2017 (distillation is not robust); "
            "Madry et al. 2018 (PGD training); Goodfellow et al. 2015 (FGSM training).")

with st.expander("Retrain with other settings", icon=":material/model_training:", expanded=settings != SHIPPED):
    for col, name in zip(st.columns(3), ul.RETRAIN):
        with col:
            param_widget(P, ul.PAGE_SPEC[name])
    chosen = tuple(ul.page_values(P, ul.RETRAIN).values())
    b1, b2 = st.columns([1, 4])
    if b1.button("Retrain", type="primary", key=f"{P}_retrain"):
        st.session_state[f"{P}_settings"] = settings = chosen
    if b2.button("Shipped models", key=f"{P}_reset", help=f"T = {T0:g}, ε = {E0 * 255:g}/255, {N0} epochs"):
        st.session_state[f"{P}_settings"] = settings = SHIPPED
    st.caption(f"Shipped: T = {T0:g}, training ε = {E0 * 255:g}/255, {N0} epochs, seed 0. Other settings train "
               f"the four models here, in a worker process of their own (3–15 s each on this 2-core CPU, "
               f"bench/lab.py, plus a few seconds to start it; at most {ul.APP_MAX_EPOCHS} epochs), and evaluate "
               "them on 5 ε values.")

T, teps, epochs = settings
try:
    ul.settings_config(T, teps, epochs)
except ValueError as exc:
    st.error(str(exc).splitlines()[0])
    st.stop()
bar = st.progress(0.0, text="Loading …")


def progress(text, done, total):
    bar.progress(min(1.0, done / max(total, 1)), text=f"{text} ({done}/{total})")


try:
    ev = ul.evaluation(T, teps, epochs, progress)
except (ValueError, RuntimeError) as exc:
    st.error(f"The lab could not run: {str(exc).splitlines()[0]}")
    st.stop()
bar.empty()
st.info(("Shipped models (assets/lab)" if ev["shipped"] else "Retrained here") +
        f": T = {T:g}, training ε = {teps * 255:g}/255, {epochs} epochs. Evaluation: {ev['eval']}.")

untrained = ul.untrained_text(ev["curve"], epochs)
if untrained:
    st.warning(untrained, icon=":material/warning:")
st.subheader("Accuracy against ε")
st.plotly_chart(ul.accuracy_chart(ev["curve"], ev["headline"]), key=f"{P}_chart")
st.markdown(ul.headline_text(ev["headline"], ev["curve"]))
st.caption("SD-SGSM spends ε only on its most sensitive 2×2 window (ε_strong = ε) and ε/4 elsewhere, so at the same "
           "ε it perturbs far less than FGSM and PGD.")
st.dataframe(ul.accuracy_table(ev["curve"]), hide_index=True, key=f"{P}_table",
             column_config={m: st.column_config.NumberColumn(m, format="%.1f %%") for m in ul.MODELS})

left, right = st.columns(2)
with left:
    st.subheader("CW-L2 on the distilled model")
    cw = ev["cw"]
    if len(cw):
        st.dataframe(cw[["model", "n_clean_correct", "success_rate", "l2_mean", "linf_mean", "seconds"]],
                     hide_index=True, key=f"{P}_cw", column_config={
                         "n_clean_correct": "clean-correct", "success_rate": st.column_config.NumberColumn(
                             "success", format="percent"), "l2_mean": st.column_config.NumberColumn(
                             "mean L2", format="%.3f"), "linf_mean": st.column_config.NumberColumn(
                             "mean L∞", format="%.3f"), "seconds": st.column_config.NumberColumn("s", format="%.1f")})
        st.markdown(ul.cw_text(cw, ev["curve"]))
with right:
    st.subheader("Saturation at T = 1")
    sat = ev["saturation"]
    st.dataframe(sat[["model", "mean_max_prob", "share_max_prob_gt_0999", "median_grad_l2", "share_zero_grad"]],
                 hide_index=True, key=f"{P}_sat", column_config={
                     "mean_max_prob": st.column_config.NumberColumn("mean max p", format="%.4f"),
                     "share_max_prob_gt_0999": st.column_config.NumberColumn("max p > 0.999", format="percent"),
                     "median_grad_l2": st.column_config.NumberColumn("median ‖∇ₓJ‖₂", format="%.2e"),
                     "share_zero_grad": st.column_config.NumberColumn("∇ₓJ = 0", format="percent")})
    st.caption(ul.saturation_text(sat, ev["curve"]))

st.subheader("Examples: clean and adversarial digits")
c1, c2 = st.columns(2)
with c1:
    param_widget(P, ul.PAGE_SPEC["xmethod"])
with c2:
    param_widget(P, ul.PAGE_SPEC["xeps"])
view = ul.page_values(P, ("xmethod", "xeps"))
method, xeps = view["xmethod"], view["xeps"] * 255
ex = ul.example_digits(T, teps, epochs, method, view["xeps"])
for row_name in ("clean", "standard", "distilled"):
    cols = st.columns([1.2] + [1] * ul.EXAMPLES)
    cols[0].markdown(f"**{row_name}**" + ("" if row_name == "clean" else f"<br>{method}, ε = {xeps:g}/255"),
                     unsafe_allow_html=True)
    for i in range(ul.EXAMPLES):
        if row_name == "clean":
            cols[i + 1].image(ul.digit_png(ex["clean"][i]), caption=f"label {ex['label'][i]}")
        else:
            r = ex[row_name]
            ok = r["adv_pred"][i] == ex["label"][i]
            cols[i + 1].image(ul.digit_png(r["x_adv"][i]),
                              caption=f"{r['adv_pred'][i]} ({r['adv_prob'][i]:.0%})" + ("" if ok else " · fooled"))
link = ul.page_query({"temperature": T, "train_eps": teps, "epochs": epochs, **view})
if st.query_params.to_dict() != link:
    st.query_params.from_dict(link)
st.caption(f"Command line: `python -m sdsgsm lab train --temperature {T:g} --train-eps {teps * 255:g}/255 "
           f"--epochs {epochs} --out DIR` then `python -m sdsgsm lab eval --weights DIR --out DIR2`.")
