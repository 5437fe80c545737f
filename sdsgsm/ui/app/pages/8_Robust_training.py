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
st.caption("Small CNNs on scikit-learn's 1,797 handwritten digits (8×8, pixels scaled to [0, 1]; stratified "
           "75/25 split, 450 test digits), attacked through the same registry as the rest of the app: the four "
           "below can be retrained here; ALP and ensemble adversarial training join them in the tables further down. "
           "Accuracy is over **all** test digits, so ε = 0 is the clean accuracy.")
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
st.info(("Shipped models (sdsgsm/assets/lab)" if ev["shipped"] else "Retrained here") +
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
    attack = "" if row_name == "clean" else f"<br>{ul.method_label(method)}, ε = {xeps:g}/255"
    cols[0].markdown(f"**{row_name}**" + attack,
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

st.divider()
st.header("Six models up to ε = 0.3, CW-L2 and the masking check")
robust = ul.shipped_robust()
st.caption("Shipped results (`python -m sdsgsm lab table --eps 0.1,0.2,0.3`): the four models above plus ALP "
           "(adversarial logit pairing, Kannan, Kurakin & Goodfellow, arXiv 2018) and ensemble adversarial training "
           "(Tramèr et al., ICLR 2018), trained with the shipped settings. FGSM here goes up to ε = 0.3, the lab's own "
           f"range; accuracy over all {robust['n_test']} test digits (%); CW-L2 on the first "
           f"{robust['record'].get('cw_limit', '')} digits.")
wide = ul.robust_frame(robust["table"])
st.dataframe(wide, hide_index=True, key=f"{P}_robust", width="stretch",
             column_config={c: st.column_config.NumberColumn(c, format="%.1f %%") for c in wide.columns
                            if c != "model"})
st.markdown(ul.lab.claim_text(robust["table"], robust["n_test"]))
masking = robust["table"].masking
if len(masking):
    st.subheader("Gradient masking check")
    st.caption("Engstrom, Ilyas & Athalye (2018): a model whose accuracy drops when PGD restarts from many points, or "
               "when the attack is crafted on another model and transferred, was masking its gradient rather than "
               "being robust. Accuracy (%) over all test digits; 'worst' is the lowest over the attacks.")
    mf = ul.masking_frame(masking)
    st.dataframe(mf, hide_index=True, key=f"{P}_masking", width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.1f %%") for c in mf.columns
                                if c not in ("model", "ε")})
    st.markdown("\n".join(f"- {line}" for line in ul.masking_lines(masking)))

st.subheader("Certified robustness")
cert = ul.shipped_certify()
st.caption("Randomised smoothing (Cohen, Rosenfeld & Kolter, ICML 2019): one model per noise σ, trained with "
           "Gaussian noise; the smoothed classifier predicts the class the noisy copies vote for most, and CERTIFY "
           f"gives each digit an L2 radius within which that prediction cannot change (n = {cert['info']['n']} "
           f"samples, α = {cert['info']['alpha']:g}). Beside it, the smoothed classifier's accuracy under a PGD-L2 "
           "attack of the same radius (Salman et al., NeurIPS 2019). Shipped: `python -m sdsgsm lab certify`.")
left, right = st.columns([3, 2])
left.image(ul.certify_png(cert["curve"], cert["digits"]), width="stretch")
with right:
    st.markdown(ul.lower_bound_text(cert["curve"], cert["info"]["alpha"]))
    with st.expander("Every radius"):
        st.markdown("\n".join(f"- {line}" for line in cert["text"].splitlines()))

st.markdown("**An ImageNet photo, smoothed.** The same smoothing on the app's ImageNet model, which was never "
            "trained with noise:")
photos = ul.smoothing_photos()
c1, c2 = st.columns([2, 3])
photo = c1.selectbox("Gallery photo", photos, key=f"{P}_smooth_photo")
if c1.button(f"Smooth it (σ = {ul.SMOOTHING_SIGMA:g}, n = {ul.SMOOTHING_N})", key=f"{P}_smooth"):
    st.session_state[f"{P}_smoothed"] = photo
if st.session_state.get(f"{P}_smoothed") == photo and photo:
    with c2:
        with st.spinner("Predicting under noise …"):
            try:
                out = ul.smoothing(photo)
            except (ValueError, RuntimeError) as exc:
                st.error(f"Smoothing could not run: {str(exc).splitlines()[0]}")
                out = None
        if out is not None:
            st.markdown(ul.smoothing_text(out))
