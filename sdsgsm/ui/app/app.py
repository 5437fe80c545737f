"""SD-SGSM Explorer: `streamlit run app.py`. The landing page (Home, `/`); the other pages are in pages/.

Streamlit serves each file in pages/ at its name without the number prefix (`/Explorer`, `/Compare`,
`/Benchmark`); `nav.sidebar()` draws the one navigation menu on every page (see sdsgsm/ui/nav.py).
"""

import streamlit as st

from sdsgsm import ui
from sdsgsm.params import format_budget
from sdsgsm.render import viz
from sdsgsm.ui import learn as learn_ui
from sdsgsm.ui import nav

st.set_page_config(page_title="SD-SGSM Explorer", layout="wide")
nav.sidebar()

st.title("SD-SGSM Explorer")
st.markdown(
    "SD-SGSM finds **where** an image classifier looks by zeroing out one square window at a time and "
    "measuring how far the logits move. It then spends a large perturbation budget ε_strong on that "
    "sensitive region and a small ε_weak everywhere else, and steps along a **tanh-smoothed** gradient "
    "instead of its sign. This app lets you watch every stage on real images, compare it with FGSM, PGD, "
    "MI-FGSM and the rest, and export paper-style figures and tables."
)
st.caption("Method: Xu, Li, Chang & Dong, *A Spatially Distributed Perturbation Strategy with Smoothed Gradient "
           "Sign Method for Adversarial Analysis of Image Classification Systems*, Entropy 2026, 28(2), 193, "
           "doi:10.3390/e28020193.")

models = ui.model_options()
default = next(m for m in models if m["available"])
with st.spinner("Computing a first example (once; cached for every visitor) …"):
    hero = learn_ui.hero(default["name"])
if hero is not None:  # a real SD-SGSM run on a gallery photo at the defaults (sdsgsm/ui/learn.py)
    s = hero["summary"]
    cols = st.columns(4)
    cols[0].image(viz.draw_boxes(viz.to_pil(hero["original"]), hero["region_boxes"], viz.RED), width="stretch",
                  caption=f"Original: {s['clean']['name']} ({s['clean']['prob']:.0%}). Red: where it looks (R)")
    cols[1].image(viz.saliency_image(hero["saliency_map"], hero["region_boxes"], hero["original"]), width="stretch",
                  caption="Occlusion saliency: bright = zeroing this window moves the logits most")
    cols[2].image(viz.to_pil(hero["adversarial"]), width="stretch",
                  caption=f"Adversarial: {s['adversarial']['name']} ({s['adversarial']['prob']:.0%})")
    cols[3].image(viz.draw_boxes(viz.to_pil(hero["perturbation_x5"]), hero["tile_boxes"], viz.YELLOW),
                  width="stretch", caption=f"The change × 5 (at most {format_budget(s['metrics']['linf'])} per pixel)")
    st.markdown("**Learn** walks a class through these steps one at a time; the **Explorer** lets you change every "
                "parameter on any image.")

for col, page in zip([c for _ in range(0, len(nav.PAGES) - 1, 2) for c in st.columns(2)], nav.PAGES[1:]):
    col.page_link(page.path, label=f"**{page.label}**: {page.blurb}", icon=page.icon)

st.subheader("The pipeline")
STAGES = [("image x", "pixels in [0, 1]"),
          ("1 · zero-out scan", "Δ_Ω = ‖f(x) − f(Z_Ω x)‖₂ for every window Ω (eq. 1–2)"),
          ("2 · sensitive region R", "argmax Ω* (eq. 11), top-k, Δ > τ or neighbours"),
          ("3 · budget map E", "ε_strong on R, ε_weak elsewhere (eq. 5)"),
          ("4 · T tanh steps", "x ← clip(x + clip(α·tanh(ω·ĝ), ±E), 0, 1) (eq. 6–7, 12–15)"),
          ("adversarial x′", "a new label?")]
for col, (title, text) in zip(st.columns(len(STAGES)), STAGES):  # real text: readable at any width, wraps
    col.container(border=True, height="stretch").markdown(f"**{title}**  \n{text}")

st.divider()
st.markdown(f"**Device:** {ui.device_label()}  ·  **Default model:** {default['name']} — {default['description']}")
missing = [f"{m['name']} ({m['reason']})" for m in models if not m["available"]]
if missing:
    st.caption("Not available offline on this machine: " + "; ".join(missing) + ". Nothing is ever downloaded.")
