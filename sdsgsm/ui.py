"""The only streamlit-aware module of the core: cached wrappers returning numpy.

Models are cached as resources (one per process); scans and attack results are cached
as data keyed by hashable arguments (image key or hash, frozen configs).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from .attacks import AttackConfig
from .data import gallery
from .metrics import amplify
from .models import load_model
from .report import attack_image


@st.cache_resource(max_entries=4, show_spinner="Loading model …")
def get_model(name: str = "efficientnet_lite0"):
    """The classifier ``name`` on the default device, loaded once per process."""
    return load_model(name)


def gallery_keys(dataset: str | None = "imagenet") -> list[str]:
    return [item.key for item in gallery(dataset)]


@st.cache_data(max_entries=64, show_spinner=False)
def attack_gallery_image(key: str, cfg: AttackConfig, method: str = "sd-sgsm",
                         model_name: str = "efficientnet_lite0") -> dict:
    """Attack one gallery image; returns numpy images (H, W, 3) and the JSON summary."""
    report = attack_image(get_model(model_name), key, cfg, method)
    hwc = lambda t: t[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)  # noqa: E731
    return {"original": hwc(report.x), "adversarial": hwc(report.result.x_adv),
            "perturbation": hwc(amplify(report.x, report.result.x_adv)), "summary": report.summary}
