"""Compare: several methods on one or a few images with shared ε / α / T / ω (paper Fig. 3–4)."""

import pandas as pd
import streamlit as st

from sdsgsm import ui, viz

st.set_page_config(page_title="Compare · SD-SGSM", layout="wide")
P = "cmp"
for warning in ui.init_state(P):
    st.warning(warning)
ABLATION = ["fgsm", "sgsm", "sd-fgsm", "sd-sgsm"]

st.title("Compare methods")
st.sidebar.header("Images and methods")
items = {g["key"]: g for g in ui.gallery_options("imagenet") + ui.gallery_options("photo")}
keys = st.sidebar.multiselect("Gallery images", list(items), default=list(items)[:2], key=f"{P}_images",
                              format_func=lambda k: items[k]["caption"].split(";")[0][:50])
methods = ui.method_options()
chosen = st.sidebar.multiselect("Methods", list(methods), default=ABLATION, key=f"{P}_methods")
st.sidebar.header("Shared parameters")
try:
    cfg = ui.attack_controls(P, spatial=True)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
model_key = "efficientnet_lite0"
st.caption(f"Model **{model_key}** · device **{ui.device_label()}** · ε = {cfg.eps * 255:.1f}/255, "
           f"ε_strong/ε_weak = {cfg.budget.eps_strong * 255:.1f}/{cfg.budget.eps_weak * 255:.1f}, "
           f"T = {cfg.steps}, ω = {cfg.omega:g}. Single-step methods always take one step of size ε.")
if not keys or not chosen:
    st.info("Choose at least one image and one method in the sidebar.")
    st.stop()

request = (tuple(keys), tuple(chosen), cfg)
if st.button("Run comparison", type="primary", key=f"{P}_run"):
    st.session_state[f"{P}_request"] = request
if st.session_state.get(f"{P}_request") != request:
    st.info("Press **Run comparison** to attack the chosen images with every chosen method "
            f"({len(keys) * len(chosen)} runs; results are cached, so changing back is instant).")
    st.stop()

results: dict[str, list[dict]] = {m: [] for m in chosen}
bar = st.progress(0.0, text="Starting …")
total = len(keys) * len(chosen)
for i, (method, key) in enumerate((m, k) for m in chosen for k in keys):
    bar.progress(i / total, text=f"{method} on {key} ({i + 1}/{total})")
    try:
        results[method].append(ui.attack(f"gallery:{key}", model_key, method, cfg, items[key]["label"]))
    except (ValueError, RuntimeError) as exc:
        st.error(f"{method} failed on {key}: {str(exc).splitlines()[0]}")
        st.stop()
bar.empty()

rows = [ui.aggregate(method, [r["summary"]["metrics"] for r in runs]) for method, runs in results.items()]
table = pd.DataFrame(rows)
shown = pd.DataFrame({
    "method": table["method"], "n": table["n"], "ASR": table["asr"].map("{:.0%}".format),
    "L2": [f"{a:.3f} ± {b:.3f}" for a, b in zip(table["l2_mean"], table["l2_std"])],
    "L∞ (/255)": [f"{a * 255:.2f} ± {b * 255:.2f}" for a, b in zip(table["linf_mean"], table["linf_std"])],
    "SSIM": [f"{a:.4f} ± {b:.4f}" for a, b in zip(table["ssim_mean"], table["ssim_std"])],
    "time / sample (s)": table["time_per_sample_s"].map("{:.3f}".format),
})
st.subheader("Metrics (mean ± std over the chosen images)")
st.dataframe(shown, hide_index=True, key=f"{P}_table")
st.caption(results[chosen[0]][0]["summary"]["metrics"]["criterion"] + ". Time per sample is measured when a "
           "result is first computed (the scan is cached and shared between methods).")
st.download_button("metrics.csv", table.to_csv(index=False), "compare_metrics.csv", "text/csv", key=f"{P}_csv")

left, right = st.columns([2, 3])
left.plotly_chart(viz.radar_figure(rows), key=f"{P}_radar")
left.caption("Radar: per metric the best method scores 1 (higher ASR/SSIM, lower L2/L∞/time) — larger area is better.")
right.plotly_chart(viz.bars_figure(rows), key=f"{P}_bars")

st.subheader("Images")
shown_key = st.selectbox("Image", keys, key=f"{P}_grid_image", format_func=lambda k: items[k]["caption"][:60])
idx = keys.index(shown_key)
for method in chosen:
    r = results[method][idx]
    s = r["summary"]
    c0, c1, c2 = st.columns([1, 2, 2])
    c0.markdown(f"**{method}**  \n{s['clean']['name']} → **{s['adversarial']['name']}**  \n"
                f"L2 {s['metrics']['l2']:.3f} · SSIM {s['metrics']['ssim']:.3f}")
    c1.image(viz.to_pil(r["adversarial"]), width=220, caption="adversarial")
    c2.image(viz.draw_boxes(viz.to_pil(r["perturbation_x5"]), r["tile_boxes"], viz.YELLOW), width=220,
             caption="perturbation × 5")
