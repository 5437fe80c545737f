"""SD-SGSM Explorer core: zero-out scan, spatial budget maps and the FGSM/SGSM family.

Paper: Xu, Li, Chang, Dong, "A Spatially Distributed Perturbation Strategy with Smoothed
Gradient Sign Method for Adversarial Analysis of Image Classification Systems",
Entropy 2026, 28(2), 193. This package never imports streamlit except ``sdsgsm.ui``.
"""

__version__ = "0.1.0"
