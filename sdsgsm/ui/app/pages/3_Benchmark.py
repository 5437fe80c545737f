"""Benchmark: paper Table 1 / Table 2 style comparisons on a data set, with progress, Stop and exports."""

import streamlit as st

from sdsgsm import ui
from sdsgsm.params import PRESETS
from sdsgsm.render import viz
from sdsgsm.ui import nav
from sdsgsm.ui import queries as uq
from sdsgsm.ui import state as links

st.set_page_config(page_title="Benchmark · SD-SGSM", layout="wide")
nav.sidebar()
P = "bench"
LINK_DATA = ("gallery", "gallery:photo")  # a link may name these; a server path never travels in a link
query = links.open_page(P)  # the link's parameters and model, once
for warning in links.bench_query(P, query, PRESETS, LINK_DATA, ui.method_options()):
    st.warning(warning)
st.title("Benchmark")
st.caption("Paper-style tables (mean ± std, best in bold) on the gallery or on data you already have. "
           "The same code runs from the command line: `python -m sdsgsm benchmark --preset table1 …`.")
VIEWS = ("Table", "Queries")
view = st.radio("View", VIEWS, horizontal=True, key=f"{P}_view", label_visibility="collapsed",
                help="Table: paper-style tables of the chosen methods. Queries: how many model queries a black-box "
                     "attacker needs to match a white-box gradient step.")
if view == VIEWS[1]:
    st.sidebar.header("Model")
    q_model, q_ckpt, q_arch, q_facts = ui.chosen_model(P)
    uq.section(P, q_model, q_ckpt, q_arch, q_facts)
    st.stop()

st.sidebar.header("Model and data")
model_key, ckpt, arch, facts = ui.chosen_model(P)
spec = st.sidebar.selectbox("Data set", ["gallery", "gallery:photo", "folder on disk", "cifar10 on disk"],
                            key=f"{P}_data", help="gallery: the 20 ImageNet samples, or the 20 CIFAR-10 ones for a "
                            "model of ≤ 64 px")
if spec in ("folder on disk", "cifar10 on disk"):
    path = st.sidebar.text_input("Path", key=f"{P}_path", placeholder="/data/my_images")
    spec = ("cifar10:" + path) if spec.startswith("cifar10") and path else path
st.session_state.setdefault(f"{P}_limit", 0)
st.session_state.setdefault(f"{P}_batch", 8)
limit = st.sidebar.number_input("Limit (0 = all)", 0, 100000, key=f"{P}_limit") or None
batch = st.sidebar.number_input("Batch size", 1, 256, key=f"{P}_batch")
st.sidebar.header("Methods")


def preset_changed() -> None:
    name = st.session_state[f"{P}_preset"]
    if name in PRESETS:
        ui.apply_preset(P, name)


preset = st.sidebar.selectbox("Preset", [*PRESETS, "custom"], key=f"{P}_preset", on_change=preset_changed,
                              format_func=lambda n: PRESETS[n].label if n in PRESETS else "custom",
                              help="Choosing a preset sets its numbers in the sidebar below; you may change them.")
methods = ui.method_options()
st.session_state.setdefault(f"{P}_methods_{preset}",
                            list(PRESETS[preset].methods) if preset in PRESETS else ["fgsm", "sd-sgsm"])
chosen = st.sidebar.multiselect("Methods", list(methods), key=f"{P}_methods_{preset}")
if preset in PRESETS:
    st.info(f"**{PRESETS[preset].label}** — {PRESETS[preset].description}.")
if not st.session_state.get(f"{P}_preset_applied"):  # the first preset's numbers on a fresh page
    preset_changed()
    st.session_state[f"{P}_preset_applied"] = True
st.sidebar.header("Parameters")
try:
    cfg, _ = ui.attack_controls(P, chosen or None, facts["input_size"])
except ValueError as exc:
    st.error(str(exc).splitlines()[0])
    st.stop()
links.share_link(P, {"model": None if ckpt else model_key, "data": spec if spec in LINK_DATA else None,
                     "preset": preset, "methods": ",".join(chosen), "limit": limit or 0, "batch": int(batch)})
if not spec or not chosen:
    st.info("Choose a data set and at least one method.")
    st.stop()
try:
    x, y, keys, info = ui.bench_data(spec, model_key, limit, ckpt, arch)
except ValueError as exc:  # missing folder, empty folder, CIFAR-10 not on disk, …
    st.error(str(exc).splitlines()[0])
    st.stop()
st.caption(f"{len(keys)} images from {info['name']} (labels: {info['label_source']}) · model **{facts['name']}** · "
           f"device **{ui.device_label()}** · T = {cfg.steps}, ε = {cfg.eps * 255:g}/255, "
           f"ε_strong/ε_weak = {cfg.budget.eps_strong * 255:g}/{cfg.budget.eps_weak * 255:g}/255")

request = (model_key, spec, limit, int(batch), tuple(chosen), cfg)
run_col, stop_col = st.columns([1, 6])
if run_col.button("Run benchmark", type="primary", key=f"{P}_run"):
    st.session_state.update({f"{P}_request": request, f"{P}_stopped": False, f"{P}_finished": []})
if stop_col.button("Stop", key=f"{P}_stop"):
    st.session_state[f"{P}_stopped"] = True
if st.session_state.get(f"{P}_request") != request:
    st.info("Press **Run benchmark**. Results are cached per method, so a re-run or an extra method is quick.")
    st.stop()

stopped, finished = st.session_state.get(f"{P}_stopped"), st.session_state.setdefault(f"{P}_finished", [])
parts = []
bar = st.progress(0.0, text="Starting …")
for i, method in enumerate(chosen):
    if stopped and method not in finished:  # finished methods are cache hits: shown, not recomputed
        continue

    def progress(name, done, total, i=i):
        bar.progress(min(1.0, (i + done / max(total, 1)) / len(chosen)),
                     text=f"{name}: {done}/{total} samples · method {i + 1}/{len(chosen)}")

    try:
        parts.append(ui.bench_method(spec, limit, model_key, method, cfg, int(batch), progress, ckpt, arch))
        if method not in finished:
            finished.append(method)
    except (ValueError, RuntimeError) as exc:
        st.error(f"{method}: {str(exc).splitlines()[0]}")
bar.empty()
if stopped:
    st.warning(f"Stopped: {len(parts)} of {len(chosen)} methods finished" + (" and are shown below." if parts else "."))
if not parts:
    st.stop()
result = ui.merge_bench(parts)
for note in dict.fromkeys(m for part in parts for m in part.config.get("memory_retries", [])):
    st.warning(note)  # out of device memory: a batch or chunk was halved and retried
st.markdown(result.markdown())
rows = result.summary.to_dict("records")
left, right = st.columns([2, 3])
left.plotly_chart(viz.radar_figure(rows), key=f"{P}_radar")
right.plotly_chart(viz.bars_figure(rows), key=f"{P}_bars")
files = ui.bench_files(result)
cols = st.columns(len(files))
for col, (name, data) in zip(cols, files.items()):
    col.download_button(name, data, name, key=f"{P}_dl_{name}", on_click="ignore")
