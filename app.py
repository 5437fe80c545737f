"""SD-SGSM Explorer — placeholder landing page (the full app is built on sdsgsm.ui)."""

import streamlit as st

from sdsgsm.attacks import AttackConfig
from sdsgsm.ui import attack_gallery_image, gallery_keys

st.set_page_config(page_title="SD-SGSM Explorer", layout="wide")
st.title("SD-SGSM Explorer")
st.caption("Spatially distributed, tanh-smoothed adversarial attack (Xu et al., Entropy 2026, 28(2), 193)")
key = st.selectbox("Gallery image", gallery_keys("imagenet"))
with st.spinner("Scanning and attacking …"):
    res = attack_gallery_image(key, AttackConfig())
s = res["summary"]
cols = st.columns(3)
cols[0].image(res["original"], caption=f"original: {s['clean']['name']} ({s['clean']['prob']:.0%})")
cols[1].image(res["adversarial"], caption=f"SD-SGSM: {s['adversarial']['name']} ({s['adversarial']['prob']:.0%})")
cols[2].image(res["perturbation"], caption="perturbation × 5")
m = s["metrics"]
st.write(f"L2 {m['l2']:.3f} · L∞ {m['linf'] * 255:.1f}/255 · SSIM {m['ssim']:.4f} · {m['time_s']:.2f} s")
