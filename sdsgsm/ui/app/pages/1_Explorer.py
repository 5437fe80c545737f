"""Explorer: one image, every panel live — saliency, region, budget, adversarial, perturbation, metrics.

The pickers (image, model, method, label) run with the page; the parameters, the attack and the
panels run in one fragment, so moving a slider reruns only what depends on it.
"""

import streamlit as st

from sdsgsm import ui
from sdsgsm.render import viz
from sdsgsm.ui import nav
from sdsgsm.ui import state as links

st.set_page_config(page_title="Explorer · SD-SGSM", layout="wide")
nav.sidebar()
P = "ex"
links.open_page(P, "method", ("model", "label"))  # parameters, method, image, model and label from a link

st.title("Explorer")
st.sidebar.header("Image")
with st.sidebar.expander("Load a result.json", icon=":material/upload_file:"):
    st.file_uploader("result.json from `python -m sdsgsm attack` or a download", type=["json"], key=f"{P}_saved",
                     on_change=links.load_saved_run, args=(P, f"{P}_saved"))
saved = st.session_state.pop(f"{P}_saved_message", None)
if saved:
    getattr(st, saved[0])(saved[1])
picked = ui.image_picker(P)
st.sidebar.header("Model and method")
model_key, ckpt, arch, facts = ui.chosen_model(P)
method = ui.method_picker(P)
if picked is None:
    st.info("Upload an image in the sidebar (PNG, JPEG, WebP, BMP, TIFF or GIF) or pick one from the gallery.")
    st.stop()
source, data, caption = picked
try:
    ui.load_input(source, facts["input_size"], data, caption if data is not None else None)
except ValueError as exc:  # a corrupt, empty, tiny or huge image
    st.error(str(exc).splitlines()[0])
    st.stop()

labels = facts["labels"]
known = ui.true_label(source, facts["num_classes"])
modes = (["true label (gallery)"] if known is not None else []) + ["clean prediction", "choose…"]
label_mode = st.sidebar.selectbox("Label to attack", modes, key=f"{P}_label_mode")
label = known if label_mode.startswith("true") else None
if label_mode == "choose…":
    label = st.sidebar.selectbox("Class", range(len(labels)), format_func=lambda i: f"{i}: {labels[i]}",
                                 key=f"{P}_label")
st.sidebar.header("Parameters")
st.caption(f"{caption} · model **{facts['name']}** ({facts['input_size']} px) · device **{ui.device_label()}**")


def reading(s: dict) -> str:
    """One plain-language sentence about the outcome."""
    m, before, after = s["metrics"], s["clean"], s["adversarial"]
    if m["success"]:
        return (f"The label changed from **{before['name']}** to **{after['name']}** while SSIM stayed "
                f"**{m['ssim']:.3f}** and no pixel moved more than {m['linf'] * 255:.1f}/255.")
    p_after = next((r["prob"] for r in after["top5"] if r["index"] == before["index"]), None)
    drop = f" (its confidence went from {before['prob']:.1%} to {p_after:.1%})" if p_after is not None else ""
    hint = HINTS.get(s["method"], "Try a larger ε_strong, more steps T, or a region with more windows.")
    return f"The label stayed **{before['name']}**{drop}. {hint}"


HINTS = {"smoothfool": "Try a smaller σ_g or a higher iteration cap.",
         "patch": "Try a larger adversarial patch or the omega-star placement."}


def panels(res: dict) -> None:
    """The six panels, the metrics and the downloads of one cached result."""
    s, m = res["summary"], res["summary"]["metrics"]
    before, after, after8 = s["clean"], s["adversarial"], s.get("adversarial_8bit", s["adversarial"])
    c1, c2, c3 = st.columns(3)
    c1.image(viz.draw_boxes(viz.to_pil(res["original"]), res["region_boxes"], viz.RED), width="stretch",
             caption=f"Original: {before['name']} ({before['prob']:.1%}). Red: sensitive region R")
    c2.plotly_chart(viz.saliency_figure(res["saliency_map"], res["region_boxes"]), key=f"{P}_sal", theme=None)
    c3.plotly_chart(viz.budget_figure(res["budget"]), key=f"{P}_budget", theme=None)
    c4, c5, c6 = st.columns(3)
    patch_box = viz.mask_box(res["budget"]) if s["method"] == "patch" else ()
    c4.image(viz.draw_boxes(viz.to_pil(res["adversarial"]), patch_box, viz.CYAN), width="stretch",
             caption=f"Adversarial ({s['method']}): {after8['name']} ({after8['prob']:.1%}), as the downloaded "
             "8-bit PNG" + (". Blue: the adversarial patch" if len(patch_box) else ""))
    c5.image(viz.draw_boxes(viz.to_pil(res["perturbation_x5"]), res["tile_boxes"], viz.YELLOW), width="stretch",
             caption="Perturbation × 5 (grey = 0). Yellow: largest-perturbation tiles")
    for title, rows in (("Clean top-5", before["top5"]), ("Adversarial top-5", after["top5"])):
        c6.dataframe({title: [r["name"] for r in rows], "p": [r["prob"] for r in rows]}, hide_index=True,
                     width="stretch", column_config={"p": st.column_config.ProgressColumn(
                         "probability", format="percent", min_value=0.0, max_value=1.0)})
    st.subheader("Metrics")
    cols = st.columns(6)
    cols[0].metric("Attack success", "yes" if m["success"] else "no")
    cols[1].metric("L2", f"{m['l2']:.3f}")
    cols[2].metric("L∞", f"{m['linf'] * 255:.2f}/255")
    cols[3].metric("SSIM", f"{m['ssim']:.4f}")
    cols[4].metric("Attack time", f"{m['attack_time_s']:.2f} s", help="the attack's steps, without the scan")
    cols[5].metric("Scan time", f"{res['scan_seconds']:.2f} s",
                   help="the zero-out scan, computed once per image, model and scan settings, then cached")
    if m["roughness_n"] == m["roughness_n"]:  # NaN when nothing moved
        st.caption(f"Roughness of r = x_adv − x (SmoothFool eq. 4, Gaussian h, σ_h = 1): Ω = "
                   f"{m['roughness']:.4g}, Ω_n = Ω/‖r‖₂² = {m['roughness_n']:.3f} "
                   "(lower is smoother).")
    st.markdown(reading(s))
    st.caption(f"Attacked label: {s['label']['name']} ({s['label']['source']}). {m['criterion']}.")


@st.fragment
def live() -> None:
    """Parameters (sidebar), the cached attack and its panels: reruns alone when a parameter moves."""
    ui.keep(P)
    try:
        with st.sidebar:
            cfg, notes = ui.attack_controls(P, method, facts["input_size"], box=st.container())
    except ValueError as exc:  # invalid parameters, e.g. ε_weak > ε_strong: said in the main area
        st.error(str(exc))
        return
    with st.sidebar:
        links.share_link(P, {"image": source.split(":", 1)[1] if source.startswith("gallery:") else None,
                          "model": None if ckpt else model_key, "method": method,
                          "label": {"clean prediction": "pred", "choose…": label}.get(label_mode)}, st.container())
    flags = ui.method_flags(method)
    steps = cfg.steps if flags["multi_step"] else 1
    try:
        with st.spinner(f"{method}: {steps} step(s) …"):
            res = ui.attack(source, model_key, method, cfg, label, data, ckpt, arch)
    except (ValueError, RuntimeError) as exc:
        st.error(f"The attack could not run: {str(exc).splitlines()[0]}")
        return
    if flags["spatial"]:
        grid, n = res["saliency_grid"], len(res["region_boxes"])
        notes["budget"].caption(f"Δ ranges {grid.min():.4g} … {grid.max():.4g}; R holds {n} of {grid.size} windows.")
    for warning in res["summary"]["warnings"]:
        st.warning(warning)
    panels(res)
    with st.expander("Downloads (the same files as `python -m sdsgsm attack --out DIR`)"):
        args = (source, model_key, method, cfg, label, data, ckpt, arch)
        cols = st.columns(4)
        for i, name in enumerate(("original.png", "adversarial.png", "perturbation_x5.png", "saliency.png",
                                  "result.json", "metrics.csv", "arrays.npz")):
            cols[i % 4].download_button(name, lambda name=name: ui.files(*args)[name], name, key=f"{P}_dl_{name}",
                                        on_click="ignore")


live()
