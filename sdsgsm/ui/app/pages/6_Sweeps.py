"""Sweeps: one parameter over a list or range (or two as a heat map), every registry metric per point.

Same code as `python -m sdsgsm sweep`; the zero-out scan is shared across points, each finished point
is kept (Stop keeps them), and the CSV and print figure are offered as downloads."""

import streamlit as st

from sdsgsm import ui
from sdsgsm.ui import figures as uf
from sdsgsm.ui import nav
from sdsgsm.ui import state as links
from sdsgsm.ui.figures import SWEEP_METRICS, SWEEPABLE, VALUE_HELP, param_label

st.set_page_config(page_title="Sweeps · SD-SGSM", layout="wide")
nav.sidebar()
P = "sw"
query = links.open_page(P)
if query:  # the link's sweep settings, once
    for name, k in (("param", "param"), ("values", "values"), ("param2", "param2"), ("values2", "values2"),
                    ("criterion", "criterion")):
        if name in query:
            st.session_state[f"{P}_{k}"] = query[name]
    if "methods" in query:
        st.session_state[f"{P}_methods"] = [m for m in query["methods"].split(",") if m in ui.method_options()]
    if query.get("limit", "").isdigit():
        st.session_state[f"{P}_limit"] = int(query["limit"])
st.title("Parameter sweeps")
st.caption("How a metric moves with ε, ω, the patch size m, the steps T, α … Each point attacks the chosen "
           "images with every chosen method; the zero-out scan is computed once per image and scan setting.")

st.sidebar.header("Model and data")
model_key, ckpt, arch, facts = ui.chosen_model(P)
spec = "gallery"
st.session_state.setdefault(f"{P}_limit", 4)
limit = st.sidebar.number_input("Images (first N of the gallery)", 1, 20, key=f"{P}_limit",
                                help="20 = the whole ImageNet gallery; fewer keeps a CPU sweep short")
criterion = st.sidebar.selectbox("Samples", ["clean_correct", "all"], key=f"{P}_criterion",
                                 format_func={"clean_correct": "clean-correct only (ASR criterion)",
                                              "all": "all (accuracy under attack over every image)"}.get)
batch = 8
st.sidebar.header("Sweep")
methods = ui.method_options()
st.session_state.setdefault(f"{P}_methods", ["fgsm", "sd-sgsm"])
chosen = st.sidebar.multiselect("Methods", list(methods), key=f"{P}_methods")
if st.session_state.get(f"{P}_param") not in SWEEPABLE:
    st.session_state[f"{P}_param"] = "eps"
name = st.sidebar.selectbox("Parameter", SWEEPABLE, key=f"{P}_param", format_func=param_label)
st.session_state.setdefault(f"{P}_values", "0:26/255:14")
text = st.sidebar.text_input("Values", key=f"{P}_values", help=VALUE_HELP)
options2 = ["none", *(n for n in SWEEPABLE if n != name)]
if st.session_state.get(f"{P}_param2") not in options2:
    st.session_state[f"{P}_param2"] = "none"
name2 = st.sidebar.selectbox("Second parameter (heat map)", options2, key=f"{P}_param2",
                             format_func=lambda n: "none" if n == "none" else param_label(n))
text2 = st.sidebar.text_input("Values of the second parameter", key=f"{P}_values2",
                              disabled=name2 == "none", placeholder="e.g. 0:8/255:5")
st.sidebar.header("Other parameters")
try:
    cfg, _ = ui.attack_controls(P, chosen, facts["input_size"], hide=(name, name2))  # the swept ones: no widget
    axes = [uf.axis(name, text)] + ([uf.axis(name2, text2)] if name2 != "none" else [])
except ValueError as exc:
    st.error(str(exc).splitlines()[0])
    st.stop()
links.share_link(P, {"model": None if ckpt else model_key, "methods": ",".join(chosen), "param": name,
                     "values": text, "param2": None if name2 == "none" else name2,
                     "values2": text2 if name2 != "none" else None, "limit": int(limit), "criterion": criterion})
if not chosen:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

points = uf.grid_points(axes)
names = [a.name for a in axes]
flags = " ".join(f"--param {a.name} --values {t}" for a, t in zip(axes, [text, text2]))
st.caption(f"{len(points)} points × {len(chosen)} methods on {int(limit)} images · model **{facts['name']}** · "
           f"command line: `python -m sdsgsm sweep {flags} --methods {','.join(chosen)} --data gallery "
           f"--limit {int(limit)} --criterion {criterion} --out DIR` (other parameters as in the sidebar)")
base = tuple(sorted(ui.values(P).items()))
request = (model_key, int(limit), criterion, tuple(chosen), tuple(names), tuple(points), base)
stopped = links.run_stop(P, request, "Run sweep", "Finish no more points; show the finished ones",
                         "Press **Run sweep**. Finished points are kept, so Stop, a re-run or an extra point is quick.")

parts = []
bar = st.progress(0.0, text="Starting …")
for i, point in enumerate(points):
    def progress(label, done, total, i=i):
        bar.progress(min(1.0, (i + done / max(total, 1)) / len(points)),
                     text=f"point {i + 1}/{len(points)} · {label.split(' · ')[0]}: {done}/{total} samples")

    hit = uf.cached_point(spec, int(limit), model_key, tuple(chosen), point, base, batch, criterion, arch)
    if hit is None and stopped:
        continue
    try:
        parts.append(hit or uf.sweep_point(spec, int(limit), model_key, tuple(chosen), point, base, batch, criterion,
                                           progress, ckpt, arch))
    except (ValueError, RuntimeError) as exc:
        st.error(f"The sweep could not run: {str(exc).splitlines()[0]}")
        st.stop()
bar.empty()
if stopped:
    st.warning(f"Stopped: {len(parts)} of {len(points)} points finished" + (" and are shown." if parts else "."))
if not parts:
    st.stop()
result = uf.merge_points(parts, names)
if result.config["lifted"]:
    st.caption("Some points lift ε_max above the paper's 8/255 fairness cap (column `lifted`).")
metric = st.columns(3)[0].selectbox("Metric", SWEEP_METRICS, key=f"{P}_metric", format_func=uf.metric_header,
                                    index=SWEEP_METRICS.index(uf.default_sweep_metric(result.points)))
if len(names) == 1:
    st.plotly_chart(uf.sweep_chart(result.points, names[0], metric), key=f"{P}_chart")
files = uf.sweep_download(result, request + (len(parts),), tuple(names), metric)
st.image(files["preview.png"], caption="The print figure (PDF/PNG/SVG below)" +
         ("" if len(names) == 1 else f": {uf.metric_header(metric)} per method"))
st.dataframe(uf.points_table(result.points, names), hide_index=True, key=f"{P}_table")
st.caption(f"{result.config['criterion_text']}. Zero-out scans computed for this sweep: "
           f"{result.config['n_scans']} (cached scans are reused across points).")
cols = st.columns(4)
for j, (fname, data) in enumerate((n, d) for n, d in files.items() if n != "preview.png"):
    cols[j % 4].download_button(fname, data, fname, key=f"{P}_dl_{fname}", on_click="ignore", width="stretch")
