"""Benchmark: paper Table 1 / Table 2 style comparisons on a data set, with progress and exports."""

import streamlit as st

from sdsgsm import ui, viz

st.set_page_config(page_title="Benchmark · SD-SGSM", layout="wide")
P = "bench"
for warning in ui.init_state(P):
    st.warning(warning)
st.title("Benchmark")
st.caption("Paper-style tables (mean [± std], best in bold) on the gallery or on data you already have. "
           "The same code runs from the command line: `python -m sdsgsm benchmark --preset table1 …`.")

presets = ui.bench_presets()
st.sidebar.header("Data")
spec = st.sidebar.selectbox("Data set", ["gallery:imagenet", "gallery:photo", "folder on disk", "cifar10 on disk"],
                            key=f"{P}_data")
if spec in ("folder on disk", "cifar10 on disk"):
    path = st.sidebar.text_input("Path", key=f"{P}_path", placeholder="/data/my_images")
    spec = ("cifar10:" + path) if spec.startswith("cifar10") else path
limit = st.sidebar.number_input("Limit (0 = all)", 0, 100000, value=0, key=f"{P}_limit") or None
batch = st.sidebar.number_input("Batch size", 1, 256, value=8, key=f"{P}_batch")
st.sidebar.header("Methods")
preset = st.sidebar.selectbox("Preset", [*presets, "custom"], key=f"{P}_preset")
methods = ui.method_options()
default = presets[preset][0] if preset in presets else ["fgsm", "sd-sgsm"]
chosen = st.sidebar.multiselect("Methods", list(methods), default=default, key=f"{P}_methods_{preset}")
st.sidebar.header("Parameters")
try:
    base = ui.attack_controls(P, spatial=True)
    cfg = ui.preset_cfg(preset, base) if preset in presets else base
except ValueError as exc:
    st.error(str(exc))
    st.stop()
if preset in presets:
    st.info(f"**{preset}** — {presets[preset][1]}. The preset sets ε, ε_strong, ε_weak, T and α; ω, the scan "
            "and the region come from the sidebar.")
if not spec or not chosen:
    st.info("Choose a data set and at least one method.")
    st.stop()

model_key = "efficientnet_lite0"
try:
    x, y, keys, info = ui.bench_data(spec, model_key, limit)
except ValueError as exc:  # missing folder, empty folder, CIFAR-10 not on disk, …
    st.error(str(exc))
    st.stop()
st.caption(f"{len(keys)} images from {info['name']} (labels: {info['label_source']}) · model **{model_key}** · "
           f"device **{ui.device_label()}** · T = {cfg.steps}, ε = {cfg.eps * 255:.0f}/255, "
           f"ε_strong/ε_weak = {cfg.budget.eps_strong * 255:.0f}/{cfg.budget.eps_weak * 255:.0f}/255")

request = (spec, limit, int(batch), tuple(chosen), cfg)
run_col, stop_col = st.columns([1, 6])
if run_col.button("Run benchmark", type="primary", key=f"{P}_run"):
    st.session_state[f"{P}_request"] = request
    st.session_state[f"{P}_stopped"] = False
if stop_col.button("Stop", key=f"{P}_stop"):
    st.session_state[f"{P}_stopped"] = True
if st.session_state.get(f"{P}_request") != request:
    st.info("Press **Run benchmark**. Results are cached per method, so a re-run or an extra method is quick.")
    st.stop()

parts = []
bar = st.progress(0.0, text="Starting …")
for i, method in enumerate(chosen):
    if st.session_state.get(f"{P}_stopped"):
        st.warning(f"Stopped: {len(parts)} of {len(chosen)} methods finished.")
        break

    def progress(name, done, total, i=i):
        bar.progress(min(1.0, (i + done / max(total, 1)) / len(chosen)),
                     text=f"{name}: {done}/{total} samples · method {i + 1}/{len(chosen)}")

    try:
        parts.append(ui.bench_method(spec, limit, model_key, method, cfg, int(batch), progress))
    except (ValueError, RuntimeError) as exc:
        st.error(f"{method}: {str(exc).splitlines()[0]}")
bar.empty()
if not parts:
    st.stop()
result = ui.merge_bench(parts)
st.markdown(result.markdown())
rows = result.summary.to_dict("records")
left, right = st.columns([2, 3])
left.plotly_chart(viz.radar_figure(rows), key=f"{P}_radar")
right.plotly_chart(viz.bars_figure(rows), key=f"{P}_bars")
files = ui.bench_files(result)
cols = st.columns(len(files))
for col, (name, data) in zip(cols, files.items()):
    col.download_button(name, data, name, key=f"{P}_dl_{name}")
