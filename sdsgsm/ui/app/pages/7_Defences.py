"""Defences: input transforms (JPEG, median, Gaussian, bit depth, TVM) in front of the model, attacked
non-adaptively (crafted on the bare model) and adaptively (through the defence, BPDA), side by side.

Same code as `python -m sdsgsm defend`; finished cells are kept (Stop keeps them), CSV and figure downloads."""

import streamlit as st

from sdsgsm import ui
from sdsgsm.ui import defence_arms as arms
from sdsgsm.ui import defences as ud
from sdsgsm.ui import nav
from sdsgsm.ui import state as links

st.set_page_config(page_title="Defences · SD-SGSM", layout="wide")
nav.sidebar()
P = "def"
query = links.open_page(P)
for warning in ud.init_defence_state(P, query):
    st.warning(warning)
options = ud.defence_options()
if query:  # the link's grid settings, once; what cannot be used is said in one line each
    for name, known in (("methods", ui.method_options()), ("defences", options)):
        if name in query:
            given = [v for v in query[name].split(",") if v]
            st.session_state[f"{P}_{name}"] = [v for v in given if v in known]
            if [v for v in given if v not in known]:
                st.warning(f"Ignored {name} {', '.join(repr(v[:20]) for v in given if v not in known)} from the link: "
                           f"not registered {name}.")
    if query.get("limit", "").isdigit() and 1 <= int(query["limit"]) <= 20:
        st.session_state[f"{P}_limit"] = int(query["limit"])
    elif "limit" in query:
        st.warning(f"Ignored limit={query['limit'][:20]!r} from the link: expected 1 … 20 images.")
st.title("Defences")
st.caption("Does an attack survive JPEG, smoothing or bit-depth reduction in front of the model? **Non-adaptive**: "
           "crafted on the bare model, then the defended model classifies it. **Adaptive**: crafted through the "
           "defence (BPDA where it is not differentiable). The lesson of Athalye et al. (ICML 2018): most of what a "
           "transform takes off a non-adaptive attack, an adaptive one wins back.")
VIEWS = ("Grid", "Detection", "Randomisation and EOT")
view = st.radio("View", VIEWS, horizontal=True, key=f"{P}_view", label_visibility="collapsed",
                help="Grid: input transforms against non-adaptive and adaptive attacks. Detection: feature squeezing "
                     "(Xu, Evans & Qi, NDSS 2018) against the adaptive attack of Carlini & Wagner (AISec 2017). "
                     "Randomisation and EOT: random resize-and-pad (Xie et al., ICLR 2018) against Expectation over "
                     "Transformation (Athalye, Carlini & Wagner, ICML 2018).")
if view != VIEWS[0]:
    st.sidebar.header("Model")
    model_key, ckpt, arch, facts = ui.chosen_model(P)
    (arms.detection if view == VIEWS[1] else arms.randomisation)(P, model_key, ckpt, arch, facts)
    st.stop()

st.sidebar.header("Model and data")
model_key, ckpt, arch, facts = ui.chosen_model(P)
spec, batch = "gallery", 4
st.session_state.setdefault(f"{P}_limit", 4)
limit = int(st.sidebar.number_input("Images (first N of the gallery)", 1, 20, key=f"{P}_limit",
                                    help="20 = the whole ImageNet gallery; adaptive attacks through a defence cost "
                                         "more than plain ones, so a few images keep a CPU run short"))
st.sidebar.header("Attacks and defences")
st.session_state.setdefault(f"{P}_methods", ["fgsm", "pgd", "sd-sgsm"])
chosen = st.sidebar.multiselect("Methods", list(ui.method_options()), key=f"{P}_methods")
st.session_state.setdefault(f"{P}_defences", ud.DEFAULT_DEFENCES)
defences = st.sidebar.multiselect("Defences", list(options), key=f"{P}_defences",
                                  help="\n".join(f"- **{n}**: {d}" for n, d in options.items()) +
                                       "\n\n'none' (the undefended model) is always the first column.")
try:
    dcfg = ud.defence_controls(P, defences)
    st.sidebar.header("Attack parameters")
    cfg, _ = ui.attack_controls(P, chosen or None, facts["input_size"])
except ValueError as exc:
    st.error(str(exc).splitlines()[0])
    st.stop()
links.share_link(P, {"model": None if ckpt else model_key, "methods": ",".join(chosen),
                     "defences": ",".join(defences), "limit": limit, **ud.defence_query(P)})
if not chosen or not defences:
    st.info("Choose at least one method and one defence in the sidebar.")
    st.stop()
if "tvm" in defences and limit > ud.TVM_MAX_IMAGES:
    st.error(f"TVM takes seconds per image and call; with tvm choose at most {ud.TVM_MAX_IMAGES} images here, or "
             "use the command line (python -m sdsgsm defend --defences tvm …).")
    st.stop()

st.caption(f"{len(chosen)} method{'s' * (len(chosen) > 1)} × {len(defences) + 1} defences (with none) × 2 modes on "
           f"{limit} image{'s' * (limit > 1)} · model "
           f"**{facts['name']}** · command line: `python -m sdsgsm defend --methods {','.join(chosen)} --defences "
           f"{','.join(defences)} --data gallery --limit {limit} --out DIR` (other parameters as in the sidebar)")
used = tuple((k, v) for d in defences for k, v in dcfg.params_of(d).items())  # a hidden defence's value: no re-run
request = (model_key, limit, tuple(chosen), tuple(defences), used, cfg, arch)
with st.expander("Why adaptive attacks? BPDA and the lesson of Athalye et al. 2018", icon=":material/school:"):
    st.markdown(
        "A defence that transforms the input (JPEG, median or Gaussian smoothing, bit-depth reduction, TVM) often "
        "**stops attacks crafted without it**: the attacker optimised against *f*, the defender classifies "
        "*f(T(x))*. Most of these transforms are not differentiable, which also seems to block gradient attacks "
        "through them — *gradient masking*. Athalye, Carlini & Wagner (ICML 2018) showed that this protection is "
        "an illusion: with **BPDA** (backward pass differentiable approximation) the attacker runs the real T "
        "forward and treats it as the identity backward (T(x) ≈ x), and the attack works again. Their "
        "lesson: judge a defence only against an "
        "**adaptive** attacker who knows it. Here the Gaussian "
        "blur is differentiable and is attacked with its exact gradient; the others through BPDA.")
stopped = links.run_stop(P, request, "Run", "Run no more attacks; show the finished cells",
                         "Press **Run**. Finished cells are kept, so Stop, a re-run or an extra defence is quick.")

bar = st.progress(0.0, text="Starting …")
try:
    grid = ud.run_grid(spec, limit, model_key, tuple(chosen), tuple(defences), cfg, dcfg, batch,
                       progress=lambda text, done, total: bar.progress(done / total, text=f"{text} ({done}/{total})"),
                       should_stop=(lambda: True) if stopped else None, ckpt=ckpt, arch=arch)
except (ValueError, RuntimeError) as exc:
    st.error(f"The grid could not run: {str(exc).splitlines()[0]}")
    st.stop()
bar.empty()
if grid.stopped:
    st.warning("Stopped: the finished cells are shown" + ("." if len(grid.cells) else " (none yet)."))
if not len(grid.cells):
    st.stop()

clean = grid.config["clean_accuracy"]
cols = st.columns(len(clean))
for col, (d, acc) in zip(cols, clean.items()):
    col.metric(f"Clean accuracy · {d}", f"{100 * acc:.0f} %", help=grid.config["defence_text"].get(d) or None)
st.plotly_chart(ud.heatmaps(grid), key=f"{P}_heat")
st.caption(f"ASR (%). {grid.config['criterion_text']}. Labels: {grid.config['label_source']}.")
st.dataframe(ud.table(grid), hide_index=True, key=f"{P}_table", width="stretch")

st.subheader("One image through a defence")
c1, c2, c3, c4 = st.columns(4)
index = c1.selectbox("Image", range(limit), key=f"{P}_ex_image", format_func=lambda i: grid.config["keys"][i])
ex_method = c2.selectbox("Attack", list(grid.config["methods"]), key=f"{P}_ex_method")
ex_def = c3.selectbox("Defence", list(defences), key=f"{P}_ex_defence")
mode = c4.radio("Mode", list(ud.MODES), horizontal=True, key=f"{P}_ex_mode")
ex = ud.example(spec, limit, model_key, cfg, batch, ex_method, ex_def, mode, dcfg, index, ckpt, arch)
if ex is None:
    st.info("This cell has not run (stopped, or not run for this defence).")
else:
    st.caption(f"{ex['key']} · label **{ex['label']}** · left: the model sees the image as is; right: it sees "
               f"the {ex_def} output ({grid.config['defence_text'][ex_def]}).")
    a, b, c, d = st.columns(4)
    a.image(ex["x"], caption=f"clean → {ex['pred_x']}", width="stretch", clamp=True)
    b.image(ex["t_x"], caption=f"clean, defended → {ex['pred_t_x']}", width="stretch", clamp=True)
    c.image(ex["x_adv"], caption=f"{ex_method} ({mode}) → {ex['pred_adv']}", width="stretch", clamp=True)
    d.image(ex["t_adv"], caption=f"{ex_method} ({mode}), defended → {ex['pred_t_adv']}", width="stretch",
            clamp=True)

files = ud.grid_download(grid, request + (len(grid.cells), grid.stopped))
cols = st.columns(4)
for j, (fname, data) in enumerate(files.items()):
    cols[j % 4].download_button(fname, data, fname, key=f"{P}_dl_{fname}", on_click="ignore", width="stretch")
