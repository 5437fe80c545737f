"""Home: what SD-SGSM Explorer is, the pipeline, links to the pages, device and model."""

import streamlit as st

from sdsgsm import ui

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

c1, c2, c3 = st.columns(3)
with c1:
    st.page_link("views/1_Explorer.py", label="**Explorer**: one image, every stage live", icon=":material/search:")
with c2:
    st.page_link("views/2_Compare.py", label="**Compare**: many methods side by side", icon=":material/compare:")
with c3:
    st.page_link("views/3_Benchmark.py", label="**Benchmark**: paper Tables 1 and 2", icon=":material/table_chart:")

models = ui.model_options()
default = next(m for m in models if m["available"])
st.divider()
st.markdown(f"**Device:** {ui.device_label()}  ·  **Default model:** {default['name']} — {default['description']}")
missing = [f"{m['name']} ({m['reason']})" for m in models if not m["available"]]
if missing:
    st.caption("Not available offline on this machine: " + "; ".join(missing) + ". Nothing is ever downloaded.")
