"""Explorer: one image, every panel live — saliency, region, budget, adversarial, perturbation, metrics."""

import io
import json

import numpy as np
import streamlit as st
from PIL import Image

from sdsgsm import ui, viz
from sdsgsm.report import metrics_csv

st.set_page_config(page_title="Explorer · SD-SGSM", layout="wide")
P = "ex"
for warning in ui.init_state(P):
    st.warning(warning)

st.sidebar.header("Image")
picked = ui.image_picker(P)
st.sidebar.header("Model and method")
model = ui.model_picker(P)
methods = ui.method_options()
method = st.sidebar.selectbox("Method", list(methods), index=list(methods).index("sd-sgsm"), key=f"{P}_method",
                              help="\n".join(f"- **{k}**: {v}" for k, v in methods.items()))
st.sidebar.header("Parameters")

st.title("Explorer")
if picked is None:
    st.info("Upload an image in the sidebar (PNG, JPEG, WebP, BMP, TIFF or GIF) or pick one from the gallery.")
    st.stop()
if model is None:
    st.info("Upload a checkpoint in the sidebar, or choose the embedded model.")
    st.stop()
source, data, caption = picked
model_key, ckpt, arch = model
try:
    cfg = ui.attack_controls(P, spatial=method in ui.spatial_methods())
    facts = ui.model_facts(model_key, ckpt, arch)
    x = ui.load_input(source, facts["input_size"], data)
except ValueError as exc:  # invalid parameters, bad image, bad checkpoint
    st.error(str(exc))
    st.stop()

labels = facts["labels"]
gallery_label = ui.true_label(source) if facts["num_classes"] == 1000 or source.startswith("gallery:cifar") else None
label_mode = st.sidebar.selectbox(
    "Label to attack", ["true label (gallery)", "clean prediction", "choose…"] if gallery_label is not None
    else ["clean prediction", "choose…"], key=f"{P}_label_mode")
label = gallery_label if label_mode.startswith("true") else None
if label_mode == "choose…":
    label = st.sidebar.selectbox("Class", range(len(labels)), format_func=lambda i: f"{i}: {labels[i]}",
                                 key=f"{P}_label")

st.caption(f"{caption} · model **{facts['name']}** ({facts['input_size']} px) · device **{ui.device_label()}**")
steps = cfg.steps if ui.METHODS[method].multi_step else 1
try:
    with st.spinner(f"Zero-out scan (m = {cfg.scan.patch}) and {steps} step(s) of {method} …"):
        res = ui.attack(source, model_key, method, cfg, label, data, ckpt, arch)
except (ValueError, RuntimeError) as exc:
    st.error(f"The attack could not run: {str(exc).splitlines()[0]}")
    st.stop()

s, m = res["summary"], res["summary"]["metrics"]
before, after = s["clean"], s["adversarial"]
orig_img = viz.draw_boxes(viz.to_pil(res["original"]), res["region_boxes"], viz.RED)
pert_img = viz.draw_boxes(viz.to_pil(res["perturbation_x5"]), res["tile_boxes"], viz.YELLOW)
adv_img = viz.to_pil(res["adversarial"])

c1, c2, c3 = st.columns(3)
c1.image(orig_img, width="stretch",
         caption=f"Original: {before['name']} ({before['prob']:.1%}). Red: sensitive region R")
c2.plotly_chart(viz.saliency_figure(res["saliency_map"], res["region_boxes"]), key=f"{P}_sal", theme=None)
c3.plotly_chart(viz.budget_figure(res["budget"]), key=f"{P}_budget", theme=None)
c4, c5, c6 = st.columns(3)
c4.image(adv_img, width="stretch", caption=f"Adversarial ({method}): {after['name']} ({after['prob']:.1%})")
c5.image(pert_img, width="stretch", caption="Perturbation × 5 (grey = 0). Yellow: largest-perturbation tiles")
c6.plotly_chart(viz.top5_figure(before["top5"], after["top5"]), key=f"{P}_top5")

st.subheader("Metrics")
cols = st.columns(5)
cols[0].metric("Attack success", "yes" if m["success"] else "no")
cols[1].metric("L2", f"{m['l2']:.3f}")
cols[2].metric("L∞", f"{m['linf'] * 255:.2f}/255")
cols[3].metric("SSIM", f"{m['ssim']:.4f}")
cols[4].metric("Attack time", f"{m['time_s']:.2f} s", help=f"zero-out scan (cached): {res['scan_seconds']:.2f} s")
if m["success"]:
    reading = (f"The label changed from **{before['name']}** to **{after['name']}** while SSIM stayed "
               f"**{m['ssim']:.3f}** and no pixel moved more than {m['linf'] * 255:.1f}/255.")
else:
    p_after = next((r["prob"] for r in after["top5"] if r["index"] == before["index"]), None)
    drop = f" (its confidence went from {before['prob']:.1%} to {p_after:.1%})" if p_after is not None else ""
    reading = (f"The label stayed **{before['name']}**{drop}. Try a larger ε_strong, more steps T, "
               f"or a region with more windows.")
st.markdown(reading)
st.caption(f"Attacked label: {s['label']['name']} ({s['label']['source']}). {m['criterion']}.")


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: v.astype(np.float32) for k, v in arrays.items()})
    return buf.getvalue()


with st.expander("Downloads"):
    d = st.columns(4)
    d[0].download_button("original.png", png(viz.to_pil(res["original"])), "original.png", "image/png")
    d[1].download_button("adversarial.png", png(adv_img), "adversarial.png", "image/png")
    d[2].download_button("perturbation_x5.png", png(pert_img), "perturbation_x5.png", "image/png")
    d[3].download_button("saliency.png", png(viz.saliency_image(res["saliency_map"], res["region_boxes"])),
                         "saliency.png", "image/png")
    d = st.columns(4)
    d[0].download_button("result.json", json.dumps(s, indent=2, ensure_ascii=False), "result.json",
                         "application/json")
    d[1].download_button("arrays.npz", npz(res["arrays"]), "arrays.npz", "application/octet-stream")
    d[2].download_button("metrics.csv", metrics_csv([s]), "metrics.csv", "text/csv")
