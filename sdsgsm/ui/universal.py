"""Cache adapters for the Transfer page's "Universal perturbations" view: the SHIPPED perturbations
(assets/universal; nothing is trained here), each v as an auto-contrast image, one v applied to a gallery
image with Lite0's predictions before and after, and the shipped results table with one sentence read from it.
Hashable arguments in; numpy / pandas / str out (the page never imports torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from sdsgsm.attacks.universal import (
    FOOLING,
    apply_perturbation,
    load_universal_perturbation,
    shipped_recipe,
)
from sdsgsm.experiments.universal import setting_label, table_cells
from sdsgsm.render.universal import auto_contrast
from sdsgsm.ui.cache import get_model

__all__ = ["FOOLING", "apply", "gallery_keys", "headline", "image", "recipe", "results", "shipped"]


@st.cache_data(show_spinner=False)
def recipe() -> dict:
    """assets/universal/universal.json (command, split, settings, sha256, results)."""
    return shipped_recipe()


def shipped() -> dict[str, str]:
    """Name -> display label of every shipped perturbation, in the recipe's order."""
    return {name: e.get("label", setting_label(name)) for name, e in recipe()["perturbations"].items()}


@st.cache_data(show_spinner=False)
def _v(name: str) -> np.ndarray:
    """v (3, H, W) float32 of a shipped perturbation (its sha256 checked on load)."""
    return load_universal_perturbation(name)[0].numpy()


def image(name: str) -> np.ndarray:
    """The perturbation as an (H, W, 3) image in [0, 1], auto-contrast (mid-grey = 0)."""
    return auto_contrast(_v(name))


def gallery_keys() -> dict[str, str]:
    """The ImageNet gallery keys and the captions the image pickers show ('ImageNet sample 00: bull mastiff')."""
    from sdsgsm.data import gallery

    return {item.key: item.caption for item in gallery("imagenet")}


@st.cache_data(max_entries=64, show_spinner=False)
def apply(name: str, key: str) -> dict:
    """One shipped v on one gallery image: original and perturbed (H, W, 3), and Lite0's top-1 class and
    its probability before and after, plus whether the prediction changed (fooled)."""
    import torch

    from sdsgsm.data import gallery_item, load_image
    from sdsgsm.models import imagenet_labels

    model = get_model(recipe().get("model", "efficientnet_lite0"))
    x = load_image(gallery_item(key).path, int(model.input_size))[None].to(model.device)
    v = torch.from_numpy(_v(name)).to(model.device)
    xa = apply_perturbation(x, v)
    with torch.inference_mode():
        p = torch.softmax(model(torch.cat([x, xa])).float(), 1).cpu()
    names, top = imagenet_labels(), p.argmax(1)
    table = pd.DataFrame({"image": ["original", f"original + v ({setting_label(name)})"],
                          "prediction": [names[int(i)] for i in top],
                          "probability": [f"{float(p[j, top[j]]):.3f}" for j in range(2)]})
    return {"original": x[0].permute(1, 2, 0).cpu().numpy(), "perturbed": xa[0].permute(1, 2, 0).cpu().numpy(),
            "table": table, "fooled": bool(top[0] != top[1])}


def results() -> pd.DataFrame:
    """The shipped results table (per train fold and the mean of the two) as display strings."""
    return table_cells(pd.DataFrame(recipe()["results"]))


def headline() -> str:
    """One sentence read from the shipped table's mean rows: the setting that fooled the most held-out
    images, at what ‖v‖2 and Ω_n, against DeepFool's UAP."""
    df = pd.DataFrame(recipe()["results"])
    mean = df[df["fold"] == "mean"].reset_index(drop=True)
    if mean.empty:
        return "No results were shipped."
    best = mean.loc[mean["test_fooling"].idxmax()]
    text = (f"On held-out images, {setting_label(best['setting'])} fooled the most: {best['test_fooling']:.1f} % "
            f"(mean of the two folds) at ‖v‖2 = {best['l2']:.2f} and Ω_n ×1e3 = {best['roughness_n'] * 1e3:.1f}")
    deep = mean[mean["setting"] == "deepfool"]
    if not deep.empty and best["setting"] != "deepfool":
        d = deep.iloc[0]
        text += (f", against {d['test_fooling']:.1f} % for DeepFool's UAP at ‖v‖2 = {d['l2']:.2f} "
                 f"and Ω_n ×1e3 = {d['roughness_n'] * 1e3:.1f}")
    elif best["setting"] == "deepfool":
        others = mean[mean["setting"] != "deepfool"]
        if not others.empty:
            o = others.loc[others["test_fooling"].idxmax()]
            text += f", against {o['test_fooling']:.1f} % for the best smooth one ({setting_label(o['setting'])})"
    return text + "."
