"""What the Explorer shows of one result, per method: the sentences, built from the numbers shown, and the panels.

Which panels and sentences apply comes from the method's registry entry (``Method.views``, ``Method.widgets``;
see :mod:`sdsgsm.attacks`): the spatial methods show R, E and the perturbation tiles, the patch its box and
no ε, the minimum-norm methods (CW, DeepFool, FAB, EAD, SmoothFool) their realised norms and no budget map.
Nothing here runs an attack; everything is cheap enough for every rerun.
"""

from __future__ import annotations

import html

import numpy as np

from sdsgsm.attacks import METHODS
from sdsgsm.params import format_budget

# what raises an attack's strength, per parameter a method reads (the hint after a failed attack)
STRONGER = {"eps_strong": "a larger ε_strong", "eps": "a larger ε", "steps": "more steps T",
            "region": "a region with more windows (top-k)", "sf_max_iter": "a higher iteration cap",
            "sigma_g": "a smaller σ_g", "patch_size": "a larger adversarial patch",
            "placement": "the omega-star placement"}


def budget_text(summary: dict) -> str:
    """The budget a bounded method was given: 'ε = 8/255' or 'ε_strong = 8/255 on R, ε_weak = 2/255 elsewhere'."""
    m, p = METHODS[summary["method"]], summary["parameters"]
    if m.spatial:
        return (f"ε_strong = {format_budget(p['budget']['eps_strong'])} on R, ε_weak = "
                f"{format_budget(p['budget']['eps_weak'])} elsewhere")
    return f"ε = {format_budget(p['eps'])}"


def patch_side(summary: dict, input_size: int) -> int:
    """The pasted patch's side in pixels (clamped to the image)."""
    return min(int(summary["parameters"]["patch_size"]), input_size)


SET_ALREADY = {"placement": "omega-star", "region": "topk"}  # a hint that names the current choice is dropped


def hint(method: str, shown: set[str], settings: dict | None = None) -> str:
    """What to try after a failed attack: the strength knobs among the widgets shown for ``method`` (one that
    ``settings`` — result.json's 'parameters' — already has is left out)."""
    settings = {**(settings or {}), **(settings or {}).get("budget", {})}
    knobs = [text for name, text in STRONGER.items() if name in METHODS[method].widgets and name in shown
             and not (name in SET_ALREADY and settings.get(name) == SET_ALREADY[name])]
    if not knobs:
        return ""
    return "Try " + (", ".join(knobs[:-1]) + " or " + knobs[-1] if len(knobs) > 1 else knobs[0]) + "."


def reading(summary: dict, input_size: int, shown: set[str]) -> str:
    """One plain-language sentence about the outcome, from the numbers of ``summary`` (result.json) and the
    method's registry views: the bound for ε-bounded methods, the realised norms for minimum-norm ones, the
    patch's share of the image for the patch; an image the model already gets wrong is said so."""
    m, before, after, label = summary["metrics"], summary["clean"], summary["adversarial"], summary["label"]
    views, name = set(METHODS[summary["method"]].views), METHODS[summary["method"]].label
    if summary.get("already_misclassified", not m["evaluated"]):
        return (f"**Already misclassified**: the model predicts **{before['name']}** ({before['prob']:.1%}) for an "
                f"image labelled **{label['name']}**, so there is nothing to fool; not counted in ASR.")
    if m["success"]:
        text = f"The label changed from **{before['name']}** to **{after['name']}**"
        if "bound" in views:
            return (text + f" while SSIM stayed **{m['ssim']:.3f}** and no pixel moved more than "
                    f"**{format_budget(m['linf'])}** (budget {budget_text(summary)}).")
        if "norms" in views:
            return (text + f": {name} needed L2 = **{m['l2']:.3f}** and L∞ = **{format_budget(m['linf'])}** "
                    f"(a minimum-norm attack has no budget; these norms are its result). SSIM **{m['ssim']:.3f}**.")
        if "patch_box" in views:
            side = patch_side(summary, input_size)
            return (text + f" by pasting a **{side}×{side} px** patch (**{side * side / input_size ** 2:.1%}** of the "
                    f"image); the pixels outside it did not move.")
        return text + "."
    p_after = next((r["prob"] for r in after["top5"] if r["index"] == before["index"]), None)
    drop = f" (its confidence went from {before['prob']:.1%} to {p_after:.1%})" if p_after is not None else ""
    tip = hint(summary["method"], shown, summary["parameters"])
    return f"The label stayed **{before['name']}**{drop}. {tip}".strip()


def verdict_html(summary: dict) -> str:
    """The label change in large type: 'clean (p) → adversarial (p)', the element a projector must show."""
    before = summary["clean"]
    after = summary.get("adversarial_8bit", summary["adversarial"])
    e = html.escape
    if summary.get("already_misclassified"):
        mark = "already misclassified"
    else:
        mark = "fooled" if summary["metrics"]["success"] else "not fooled"
    return (f"<div class='sdsgsm-verdict' id='sdsgsm-verdict'>{e(before['name'])} ({before['prob']:.1%}) → "
            f"<span id='sdsgsm-adv-label'>{e(after['name'])} ({after['prob']:.1%})</span> · {mark}</div>")


def top5_html(before: list[dict], after: list[dict]) -> str:
    """Clean and adversarial top-5, one small table above the other (names wrap at spaces, percentages are never
    clipped)."""
    e = html.escape

    def table(title: str, rows: list[dict]) -> str:
        body = "".join(f"<tr><td>{e(r['name'])}</td><td>{r['prob']:.1%}</td></tr>" for r in rows)
        return f"<table><thead><tr><th>{title}</th><th>p</th></tr></thead><tbody>{body}</tbody></table>"

    return f"<div class='sdsgsm-top5'>{table('Clean top-5', before)}{table('Adversarial top-5', after)}</div>"


def auto_contrast(delta: np.ndarray) -> np.ndarray:
    """x_adv − x (H, W, 3) stretched around grey to the full range (grey = 0; the largest |δ| is black or
    white): a perturbation that ×5 leaves flat grey on a projector stays visible. Returns (H, W, 3) in [0, 1]."""
    peak = float(np.abs(delta).max())
    return np.clip(0.5 + delta / (2 * peak), 0.0, 1.0) if peak > 0 else np.full_like(delta, 0.5)


def linf_tile(summary: dict, input_size: int) -> tuple[str, str] | None:
    """The norm tile of the metrics row: ('L∞', '8/255') for ε-bounded and minimum-norm methods, the patch's
    box for the patch, None otherwise."""
    views = set(METHODS[summary["method"]].views)
    if "linf" in views:
        return "L∞", format_budget(summary["metrics"]["linf"])
    if "patch_box" in views:
        side = patch_side(summary, input_size)
        return "Patch", f"{side}×{side} px"
    return None


def run_text(method: str, cfg) -> str:
    """The spinner's words while ``method`` runs: its display name and what it iterates."""
    m = METHODS[method]
    if "sf_max_iter" in m.widgets:
        return f"{m.label}: up to {cfg.sf_max_iter} iterations …"
    if "patch_box" in m.views:
        return f"{m.label}: pasting the {cfg.patch_size} px patch …"
    steps = cfg.steps if m.multi_step else 1
    return f"{m.label}: {steps} step{'s' if steps != 1 else ''} …"

