"""Compare: several methods on one or a few images with shared ε / α / T / ω (paper Fig. 3–4)."""

import streamlit as st

from sdsgsm import ui
from sdsgsm.metrics import aggregate
from sdsgsm.params import format_budget
from sdsgsm.render import viz
from sdsgsm.render.tables import metric_notes, table_frame
from sdsgsm.ui import nav
from sdsgsm.ui import state as links

st.set_page_config(page_title="Compare · SD-SGSM", layout="wide")
nav.sidebar()
P = "cmp"
ABLATION = ["fgsm", "sgsm", "sd-fgsm", "sd-sgsm"]
link = links.open_page(P)  # a shared link's model, images and methods, once

st.title("Compare methods")
st.sidebar.header("Model")
model_key, ckpt, arch, facts = ui.chosen_model(P)

st.sidebar.header("Images and methods")
collections = ["cifar10"] if facts["input_size"] <= 64 else ["imagenet", "photo"]
items = {g["key"]: g for c in collections for g in ui.gallery_options(c)}
linked = [k for k in link.get("images", "").split(",") if k in items]
keys = st.sidebar.multiselect("Gallery images", list(items), default=linked or list(items)[:2],
                              key=f"{P}_images_{'_'.join(collections)}",  # its own state per image size
                              format_func=lambda k: items[k]["caption"].split(";")[0][:50])
methods = ui.method_options()
linked = [m for m in link.get("methods", "").split(",") if m in methods]
chosen = st.sidebar.multiselect("Methods", list(methods), default=linked or ABLATION, key=f"{P}_methods")
st.sidebar.header("Shared parameters")
try:
    cfg, _ = ui.attack_controls(P, chosen or None, facts["input_size"])
except ValueError as exc:
    st.error(str(exc))
    st.stop()
links.share_link(P, {"model": None if ckpt else model_key, "images": ",".join(keys), "methods": ",".join(chosen)})
st.caption(f"Model **{facts['name']}** ({facts['input_size']} px) · device **{ui.device_label()}** · "
           f"ε = {cfg.eps * 255:g}/255, ε_strong/ε_weak = {cfg.budget.eps_strong * 255:g}/"
           f"{cfg.budget.eps_weak * 255:g}/255, T = {cfg.steps}, ω = {cfg.omega:g}. "
           "Single-step methods always take one step of size ε.")
if not keys or not chosen:
    st.info("Choose at least one image and one method in the sidebar.")
    st.stop()

request = (model_key, tuple(keys), tuple(chosen), cfg)
if st.button("Run comparison", type="primary", key=f"{P}_run"):
    st.session_state[f"{P}_request"] = request
if st.session_state.get(f"{P}_request") != request:
    st.info("Press **Run comparison** to attack the chosen images with every chosen method "
            f"({len(keys) * len(chosen)} runs; results are cached, so changing back is instant).")
    st.stop()

results: dict[str, list[dict]] = {m: [] for m in chosen}
bar = st.progress(0.0, text="Starting …")
total = len(keys) * len(chosen)
for i, (method, k) in enumerate((m, k) for m in chosen for k in keys):
    bar.progress(i / total, text=f"{ui.method_flags(method)['label']} on {k} ({i + 1}/{total})")
    try:
        label = ui.true_label(f"gallery:{k}", facts["num_classes"])
        results[method].append(ui.attack(f"gallery:{k}", model_key, method, cfg, label, None, ckpt, arch))
    except (ValueError, RuntimeError) as exc:
        st.error(f"{method} failed on {k}: {str(exc).splitlines()[0]}")
        st.stop()
bar.empty()

rows = [aggregate(method, [r["summary"]["metrics"] for r in runs]) for method, runs in results.items()]
st.subheader("Metrics (mean ± std over the chosen images)")
st.dataframe(table_frame(rows), hide_index=True, key=f"{P}_table", width="stretch")
st.caption(results[chosen[0]][0]["summary"]["metrics"]["criterion"] + ". " + metric_notes("all") +
           " A cached scan counts at the time it took when first computed.")

left, right = st.columns([2, 3])
left.plotly_chart(viz.radar_figure(rows), key=f"{P}_radar")
left.caption("Radar: per metric the best method scores 1 (higher ASR/SSIM, lower L2/L∞/total time) — "
             "larger area is better (paper Fig. 3).")
right.plotly_chart(viz.bars_figure(rows), key=f"{P}_bars")

st.subheader("Images")
shown_key = st.selectbox("Image", keys, key=f"{P}_grid_image", format_func=lambda k: items[k]["caption"][:60])
idx = keys.index(shown_key)
for method in chosen:
    r = results[method][idx]
    s = r["summary"]
    c0, c1, c2 = st.columns([1, 2, 2])
    flags = ui.method_flags(method)
    tiles = r["tile_boxes"] if "tiles" in flags["views"] else ()
    outcome = ("already misclassified: not counted in ASR" if s.get("already_misclassified") else
               f"{s['clean']['name']} → **{s['adversarial']['name']}**")
    c0.markdown(f"<span style='color:{viz.method_colour(method)}'>■</span> **{flags['label']}**  \n{outcome}  \n"
                f"L2 {s['metrics']['l2']:.3f} · L∞ {format_budget(s['metrics']['linf'])} · SSIM "
                f"{s['metrics']['ssim']:.3f}", unsafe_allow_html=True)
    c1.image(viz.to_pil(r["adversarial"]), width=220, caption="adversarial")
    c2.image(viz.draw_boxes(viz.to_pil(r["perturbation_x5"]), tiles, viz.YELLOW), width=220,
             caption="perturbation × 5" + (" · yellow: largest-perturbation tiles" if len(tiles) else ""))
