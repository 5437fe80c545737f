"""Explorer: one image, every panel live — saliency, region, budget, adversarial, perturbation, metrics.

The pickers (image, model, method, label) run with the page; the parameters, the attack and the
panels run in one fragment, so moving a slider reruns only what depends on it.
"""

import streamlit as st

from sdsgsm import ui
from sdsgsm.params import format_budget
from sdsgsm.render import viz
from sdsgsm.ui import nav
from sdsgsm.ui import patches as up
from sdsgsm.ui import state as links
from sdsgsm.ui import views as uv
from sdsgsm.ui.cache import heat_png, picture

st.set_page_config(page_title="Explorer · SD-SGSM", layout="wide",
                   initial_sidebar_state="collapsed" if ui.presenting() else "auto")
nav.sidebar()
P = "ex"
links.open_page(P, "method", ("model", "label"))  # parameters, method, image, model and label from a link
present = ui.present_toggle(P)

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
if not present:
    st.caption(f"{caption} · model **{facts['name']}** ({facts['input_size']} px) · device **{ui.device_label()}**")


def relabel() -> None:
    """'Attack the prediction instead': the clean prediction becomes the attacked label (whole page reruns)."""
    st.session_state[f"{P}_label_mode"] = "clean prediction"
    st.session_state[f"{P}_relabel"] = True


def panels(res: dict, flags: dict, shown: set[str]) -> None:
    """The result first (label change, images, top-5), then the method's analysis panels and metrics."""
    s, m = res["summary"], res["summary"]["metrics"]
    views, size = flags["views"], facts["input_size"]
    before, after, after8 = s["clean"], s["adversarial"], s.get("adversarial_8bit", s["adversarial"])
    region = res["region_boxes"] if "region" in views else ()
    st.html(uv.verdict_html(s))
    if s.get("already_misclassified"):
        st.warning(uv.reading(s, size, shown))
        st.button("Attack the prediction instead", key=f"{P}_attack_prediction", on_click=relabel, type="primary",
                  help=f"Use the model's prediction ({before['name']}) as the attacked label")
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1.4])
    c1.image(picture(res["original"], region, viz.RED), width="stretch", output_format="JPEG",
             caption=f"Original: {before['name']} ({before['prob']:.1%})" + (". Red: sensitive region R" if len(region)
                                                                             else ""))
    patch_box = viz.mask_box(res["budget"]) if "patch_box" in views else ()
    c2.image(picture(res["adversarial"], patch_box, viz.CYAN), width="stretch", output_format="JPEG",
             caption=f"Adversarial ({flags['label']}): {after8['name']} ({after8['prob']:.1%}), as the downloaded "
             "8-bit PNG" + (". Blue: the adversarial patch" if len(patch_box) else ""))
    tiles = res["tile_boxes"] if "tiles" in views else ()
    if present or "norms" in views:  # a projector, or a minimum-norm δ, leaves ×5 flat grey: full-range contrast
        c3.image(picture(uv.auto_contrast(res["delta"]), region, viz.RED), width="stretch", output_format="JPEG",
                 caption=f"Perturbation, auto-contrast (grey = 0, ±{format_budget(m['linf'])} = black/white)"
                 + (". Red: R" if len(region) else ""))
    else:
        c3.image(picture(res["perturbation_x5"], tiles, viz.YELLOW), width="stretch", output_format="JPEG",
                 caption="Perturbation × 5 (grey = 0)" + (". Yellow: largest-perturbation tiles" if len(tiles) else ""))
    c4.html(uv.top5_html(before["top5"], after["top5"]))
    if not s.get("already_misclassified"):
        st.markdown(uv.reading(s, size, shown))
    # the heat maps as pictures (title, colour scale and bar as the interactive charts had; no hover values):
    # drawn once per scan / budget, so an ω change sends a few bytes for them and the browser draws nothing new
    heat = ([heat_png("saliency", res["saliency_map"], region)] if "saliency" in views and "patch" in shown else [])
    if "budget_map" in views:
        heat.append(heat_png("budget", res["budget"]))
    for col, png in zip(st.columns(3), heat):
        col.image(png, width="stretch", output_format="PNG")
    st.subheader("Metrics")
    tiles_row = [("Attack success", "not counted" if s.get("already_misclassified") else
                  "yes" if m["success"] else "no", None), ("L2", f"{m['l2']:.3f}", None)]
    norm = uv.linf_tile(s, size)
    if norm:
        tiles_row.append((*norm, None))
    tiles_row += [("SSIM", f"{m['ssim']:.4f}", None),
                  ("Attack time", f"{m['attack_time_s']:.2f} s", "the attack's steps, without the scan")]
    if "saliency" in views and "patch" in shown:
        tiles_row.append(("Scan time", f"{res['scan_seconds']:.2f} s",
                          "the zero-out scan, computed once per image, model and scan settings, then cached"))
    for col, (name, value, help_) in zip(st.columns(len(tiles_row)), tiles_row):
        col.metric(name, value, help=help_)
    if m["roughness_n"] == m["roughness_n"]:  # NaN when nothing moved
        st.caption(f"Roughness of r = x_adv − x (SmoothFool eq. 4, Gaussian h, σ_h = 1): Ω = "
                   f"{ui.format_metric('roughness', m['roughness'])}, Ω_n = Ω/‖r‖₂², shown ×1e3 as in the tables: "
                   f"{ui.format_metric('roughness_n', m['roughness_n'])} (lower is smoother).")
    st.caption(f"Attacked label: {s['label']['name']} ({s['label']['source']}). {m['criterion']}.")


@st.fragment
def live() -> None:
    """Parameters (sidebar), the cached attack and its panels: reruns alone when a parameter moves."""
    if st.session_state.pop(f"{P}_relabel", False):
        st.rerun(scope="app")  # the label picker lives outside the fragment
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
    shown = ui.shown_params(P, method)
    try:
        with st.spinner(uv.run_text(method, cfg)):
            res = ui.attack(source, model_key, method, cfg, label, data, ckpt, arch)
    except (ValueError, RuntimeError) as exc:
        st.error(f"The attack could not run: {str(exc).splitlines()[0]}")
        return
    if "region" in flags["views"]:
        grid, n = res["saliency_grid"], len(res["region_boxes"])
        notes["budget"].caption(f"Δ ranges {grid.min():.4g} … {grid.max():.4g}; R holds {n} of {grid.size} windows.")
    for warning in res["summary"]["warnings"]:
        if not warning.startswith("Already misclassified"):  # said with its button beside the result
            st.warning(warning)
    panels(res, flags, shown)
    if method == "patch":
        up.placement_section(cfg.patch_size, cfg.patch_mode)
    with st.expander("Downloads (the same files as `python -m sdsgsm attack --out DIR`)"):
        args = (source, model_key, method, cfg, label, data, ckpt, arch)
        cols = st.columns(4)
        for i, name in enumerate(("original.png", "adversarial.png", "perturbation_x5.png", "saliency.png",
                                  "result.json", "metrics.csv", "arrays.npz")):
            cols[i % 4].download_button(name, lambda name=name: ui.files(*args)[name], name, key=f"{P}_dl_{name}",
                                        on_click="ignore")


live()
