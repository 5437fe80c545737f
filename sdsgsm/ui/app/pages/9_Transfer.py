"""Transfer: craft adversarial images on a source model (or an ensemble), classify them with target models.

Same code as `python -m sdsgsm transfer`; each (source, method) run is kept, so Stop, a re-run or an extra
method is quick. The matrix, the per-source L2 / SSIM table, an example image and the downloads. A second view
shows the shipped universal perturbations (DeepFool's UAP and smooth UAPs; nothing is trained here)."""

import streamlit as st

from sdsgsm import ui
from sdsgsm.ui import nav
from sdsgsm.ui import state as links
from sdsgsm.ui import transfer as ut
from sdsgsm.ui import universal as uu

st.set_page_config(page_title="Transfer · SD-SGSM", layout="wide")
nav.sidebar()
P = "tr"
query = links.open_page(P, link_keys=())
choices = ut.model_choices()
methods_all = ui.method_options()
if query:  # the link's transfer settings, once
    for name in ("sources", "ens", "targets"):
        if name in query:
            given = [m for m in query[name].split(",") if m]
            st.session_state[f"{P}_{name}"] = [m for m in given if m in choices]
            if any(m not in choices for m in given):
                st.warning(f"Ignored {name}={query[name][:40]!r} entries from the link that are not available here "
                           f"(choose from {', '.join(choices)}).")
    if "methods" in query:
        st.session_state[f"{P}_methods"] = [m for m in query["methods"].split(",") if m in methods_all]
    if query.get("limit", "").isdigit() and 1 <= int(query["limit"]) <= 20:
        st.session_state[f"{P}_limit"] = int(query["limit"])
st.title("Transferability")
st.caption("Craft x_adv on a **source** model, then ask **target** models to classify it. An attacker who cannot "
           "see a model's gradients (a black box) crafts on a surrogate it owns and hopes the example transfers "
           "(Papernot, McDaniel & Goodfellow 2016). An **ensemble** source (the mean of several models' logits; "
           "Liu et al. 2017) transfers better: keep the target out of it for an honest black-box number.")

VIEWS = ("Transfer matrix", "Universal perturbations")
view = st.radio("View", VIEWS, horizontal=True, key=f"{P}_view",
                help="Universal perturbations: one v for every image, shipped with the package (nothing is "
                     "trained here)")
if view == VIEWS[1]:
    st.subheader("Universal perturbations: one v for every image")
    st.caption("A universal perturbation v (‖v‖∞ ≤ ξ = 10/255) changes the prediction of most images it is added "
               "to (Moosavi-Dezfooli, Fawzi, Fawzi & Frossard, CVPR 2017, with DeepFool as the inner step). "
               "Dabouei et al. (WACV 2020) replace DeepFool by SmoothFool and the clipping by SmoothClip, which "
               "gives smooth universal perturbations (larger σ_g: smoother). These were trained on "
               f"{uu.recipe()['model']}, {uu.recipe()['train_split']}, with `{uu.recipe()['command']}`; "
               "loaded here (sha256 checked), never trained.")
    names = uu.shipped()
    cols = st.columns(len(names))
    for col, (name, label) in zip(cols, names.items()):
        col.image(uu.image(name), caption=f"{label} (auto-contrast, grey = 0)", clamp=True, width="stretch")
    u1, u2 = st.columns(2)
    u_name = u1.selectbox("Perturbation", list(names), key=f"{P}_uap_name", format_func=lambda n: names[n])
    captions = uu.gallery_keys()
    u_key = u2.selectbox("Gallery image", list(captions), key=f"{P}_uap_key", format_func=captions.get)
    got = uu.apply(u_name, u_key)
    a1, a2, a3 = st.columns([1, 1, 2])
    a1.image(got["original"], caption="Original", clamp=True, width="stretch")
    a2.image(got["perturbed"], caption=f"Original + v ({names[u_name]})", clamp=True, width="stretch")
    a3.dataframe(got["table"], hide_index=True, key=f"{P}_uap_pred")
    a3.caption("Fooled: the prediction changed." if got["fooled"] else "Not fooled: the prediction is unchanged.")
    st.subheader("Shipped results: trained on one fold, fooling measured on the other")
    st.dataframe(uu.results(), hide_index=True, key=f"{P}_uap_table", width="stretch")
    st.markdown(uu.headline())
    st.caption(f"Fooling: {uu.FOOLING}. Folds of the 20 ImageNet gallery images: A = even, B = odd indices; "
               "lite1 / lite2 columns: the same v on the held-out images for EfficientNet-Lite1 / Lite2 (transfer, "
               "the image resized inside their forward).")
    st.stop()

st.sidebar.header("Models")
defaults = {"sources": ["lite0"], "ens": ["lite0", "lite1"], "targets": ["lite0", "lite1", "lite2"]}
for name, value in defaults.items():
    st.session_state.setdefault(f"{P}_{name}", [m for m in value if m in choices])
names = list(choices)
sources = st.sidebar.multiselect("Sources (crafted on)", names, key=f"{P}_sources", format_func=lambda n: n)
members = st.sidebar.multiselect("Ensemble source (2+ members)", names, key=f"{P}_ens",
                                 help="Adds one source: the mean of these models' logits. Fewer than 2: no ensemble.")
targets = st.sidebar.multiselect("Targets (evaluated on)", names, key=f"{P}_targets")
missing = ut.unavailable()
if missing:
    st.sidebar.caption(f"Not available offline here: {', '.join(missing)} (weights not in the local torch cache; "
                       "nothing is downloaded).")
st.sidebar.header("Attack")
st.session_state.setdefault(f"{P}_methods", ["fgsm", "pgd", "sd-sgsm"])
methods = st.sidebar.multiselect("Methods", list(methods_all), key=f"{P}_methods",
                                 help="\n".join(f"- **{n}**: {d}" for n, d in methods_all.items()))
st.session_state.setdefault(f"{P}_limit", 4)
limit = int(st.sidebar.number_input("Images (first N of the gallery)", 1, 20, key=f"{P}_limit",
                                    help="20 = the whole ImageNet gallery; a source attacks its clean-correct ones"))
st.sidebar.header("Other parameters")
try:
    cfg, _ = ui.attack_controls(P, tuple(methods) or None, 224)
except ValueError as exc:
    st.error(str(exc).splitlines()[0])
    st.stop()
ens = ut.ensemble_label(members)
all_sources = sources + ([ens] if ens else [])
links.share_link(P, {"sources": ",".join(sources), "ens": ",".join(members), "targets": ",".join(targets),
                     "methods": ",".join(methods), "limit": limit})
if not all_sources or not targets or not methods:
    st.info("Choose at least one source (or an ensemble of two), one target and one method in the sidebar.")
    st.stop()

with st.expander("How it works: one image space, the criterion, the models"):
    st.markdown(f"- **Resizing**: {ut.RESIZE_RULE.format(size=224)}. EfficientNet-Lite1 takes 240 px and Lite2 "
                "260 px natively; the 224-px gallery image is resized inside their forward, so the ensemble can "
                "average logits of models of different sizes.\n"
                f"- **ASR criterion**: {ut.CRITERION}.\n"
                "- **Relation** of a cell: " + "; ".join(f"*{k}*: {v}" for k, v in ut.RELATIONS.items()) + ".\n"
                "- **Models**: " + "; ".join(f"{s} = {ut.spec_models(s)}" for s in all_sources) + ".")
st.caption(f"Sources: {len(all_sources)} · methods: {len(methods)} · images: {limit} · targets: {len(targets)} · "
           f"command line: `python -m sdsgsm transfer --sources {','.join(all_sources)} --targets {','.join(targets)} "
           f"--methods {','.join(methods)} --limit {limit} --out DIR` (other parameters as in the sidebar)")
request = (tuple(all_sources), tuple(targets), tuple(methods), limit, cfg)
stopped = links.run_stop(P, request, "Run transfer", "Start no more (source, method) runs; show the finished ones",
                         "Press **Run transfer**. Every (source, method) run is kept, so Stop, a re-run or an extra "
                         "method is quick. On this CPU a Lite2 or ensemble source takes several seconds per image "
                         "and method.")

parts, pairs = [], [(s, m) for s in all_sources for m in methods]
bar = st.progress(0.0, text="Starting …")
for i, (source, method) in enumerate(pairs):
    def progress(label, done, total, i=i):
        bar.progress(min(1.0, (i + done / max(total, 1)) / len(pairs)),
                     text=f"run {i + 1}/{len(pairs)} · {label}: {done}/{total} samples")

    hit = ut.cached_piece(source, method, tuple(targets), limit, cfg)
    if hit is None and stopped:
        continue
    try:
        parts.append(hit or ut.piece(source, method, tuple(targets), limit, cfg, progress))
    except (ValueError, RuntimeError) as exc:
        st.error(f"The transfer run could not finish: {str(exc).splitlines()[0]}")
        st.stop()
bar.empty()
if stopped:
    st.warning(f"Stopped: {len(parts)} of {len(pairs)} (source, method) runs finished" + (" and are shown."
                                                                                         if parts else "."))
if not parts:
    st.stop()
result = ut.merge(parts)
st.subheader("Transfer matrix: ASR (%), source rows × target columns")
st.plotly_chart(ut.matrix_chart(result), key=f"{P}_chart")
st.caption(f"{ut.CRITERION}. Diagonal (source = target) = the white-box ASR. Models: "
           + "; ".join(f"{s['label']} = {s['models']}" for s in result.config["sources"]) + ".")
st.subheader("Perturbation per source")
st.dataframe(ut.source_table(result), hide_index=True, key=f"{P}_sources_table", width="stretch")
st.caption("L2, L∞ and SSIM of x_adv − x on the 224-px image (metric registry) over every sample the source "
           "attacked (its clean-correct ones); white-box ASR = the source fooling itself.")

st.subheader("One example on every target")
c1, c2, c3 = st.columns(3)
ex_method = c1.selectbox("Method", [m for m in methods if any(k[0] == m for k in result.adversarial)],
                         key=f"{P}_ex_method")
ex_source = c2.selectbox("Source", [s for s in all_sources if (ex_method, s) in result.adversarial],
                         key=f"{P}_ex_source")
keys = list(dict.fromkeys(result.per_sample.loc[(result.per_sample["method"] == ex_method)
                                                & (result.per_sample["source"] == ex_source), "key"]))
ex_key = c3.selectbox("Image", keys, key=f"{P}_ex_key", format_func=lambda k: k.rsplit("/", 1)[-1])
ex = ut.example(result, ex_method, ex_source, ex_key) if ex_key else None
if ex is not None:
    i1, i2, i3 = st.columns([1, 1, 3])
    i1.image(ex["original"], caption=f"Original · label: {ex['label']}", clamp=True, width="stretch")
    i2.image(ex["adversarial"], caption=f"{ex_method} on {ex_source}", clamp=True, width="stretch")
    i3.dataframe(ex["table"], hide_index=True, key=f"{P}_ex_table")
    i3.caption("counted: the target gets the clean image right (the criterion); fooled: it does not on x_adv.")

files = ut.downloads(result, request + (len(parts),))
with st.expander("Print figure (PDF / PNG / SVG below)"):
    st.image(ut.matrix_preview(result), width="stretch")
cols = st.columns(4)
for j, (fname, data) in enumerate(files.items()):
    cols[j % 4].download_button(fname, data, fname, key=f"{P}_dl_{fname}", on_click="ignore", width="stretch")
