"""SD-SGSM Explorer: `streamlit run app.py`. The landing page (Home, `/`); the other pages are in pages/.

Streamlit serves each file in pages/ at its name without the number prefix (`/Explorer`, `/Compare`,
`/Benchmark`); `nav.sidebar()` draws the one navigation menu on every page (see sdsgsm/ui/nav.py).
"""

import streamlit as st

from sdsgsm import ui
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

st.graphviz_chart("""
digraph {
  rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#f3f5f9", fontname="Helvetica", fontsize=13];
  x [label="image x\\n[0,1]"];
  scan [label="1. zero-out scan\\nΔ_Ω = ‖f(x) − f(Z_Ω x)‖₂\\n(eq. 1–2)"];
  region [label="2. sensitive region R\\nargmax / top-k / τ / neighbours"];
  budget [label="3. budget map E\\nε_strong on R, ε_weak elsewhere\\n(eq. 5, 11)"];
  steps [label="4. T tanh steps\\nx ← clip(x + clip(α·tanh(ω·ĝ), ±E), 0, 1)\\n(eq. 6–7, 12–15)"];
  adv [label="adversarial x'\\nnew label?", fillcolor="#fde8e8"];
  x -> scan -> region -> budget -> steps -> adv;
}
""")

for col, page in zip([c for _ in range(0, len(nav.PAGES) - 1, 3) for c in st.columns(3)], nav.PAGES[1:]):
    col.page_link(page.path, label=f"**{page.label}**: {page.blurb}", icon=page.icon)

models = ui.model_options()
default = next(m for m in models if m["available"])
st.divider()
st.markdown(f"**Device:** {ui.device_label()}  ·  **Default model:** {default['name']} — {default['description']}")
missing = [f"{m['name']} ({m['reason']})" for m in models if not m["available"]]
if missing:
    st.caption("Not available offline on this machine: " + "; ".join(missing) + ". Nothing is ever downloaded.")
