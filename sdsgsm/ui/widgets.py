"""Widgets generated from the parameter spec (sdsgsm/params.py), and the image / model / method pickers.

A parameter's widget kind, label, range, step, help (with the paper equation) and visibility all
come from its ``Param`` entry; nothing here repeats a default or a range. ``select_slider``
parameters get the spec's stops plus the session's own value (so a link's ``?omega=7`` works)
computed per run — never by changing a shared list.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from sdsgsm.attacks import METHODS, AttackConfig
from sdsgsm.params import FAIR_EPS_MAX, PARAMS, PRESETS, Param, default_patch, format_budget
from sdsgsm.ui import cache
from sdsgsm.ui.limits import app_limit_error
from sdsgsm.ui.state import apply_preset, config, keep, key

GROUPS = {"scan": "Zero-out scan", "budget": "Region and budget", "steps": "Steps and smoothing",
          "smoothfool": "SmoothFool", "patch": "Adversarial patch"}


def _label(p: Param) -> str:
    return p.label + (" (×1/255)" if p.unit else "")


def _help(p: Param) -> str:
    return p.help + (f". 0 = auto: {p.auto}" if p.auto else "")


def _format(p: Param, input_size: int | None):
    if p.name == "patch":
        auto = f"auto ({default_patch(input_size)})" if input_size else "auto"
        return lambda v: auto if v == 0 else str(v)
    return lambda v: f"{v:g}" if isinstance(v, float) else str(v)


def param_widget(prefix: str, p: Param, input_size: int | None = None, auto: float | None = None) -> None:
    """Draw parameter ``p`` bound to ``st.session_state[prefix_name]`` (shown units); a slider left at auto (0)
    reads 'auto (4/255)' with the derived native value ``auto``."""
    k, label, help_ = key(prefix, p.name), _label(p), _help(p)
    lo = 0 if p.auto else p.shown(p.lo) if p.lo is not None else None
    hi = p.shown(p.hi) if p.hi is not None else None
    if p.widget == "select":
        st.selectbox(label, p.choices, key=k, help=help_)
    elif p.widget == "select_slider":
        stops = sorted({*(p.kind(s) for s in p.stops), st.session_state[k]})
        st.select_slider(label, stops, key=k, help=help_, format_func=_format(p, input_size))
    elif p.widget == "slider":
        at_auto = bool(p.auto) and auto is not None and st.session_state[k] == 0
        st.slider(label, float(lo), float(hi), step=p.step, key=k, help=help_,
                  format=auto_text(p.name, auto).replace("%", "%%") if at_auto else None)
    elif p.kind is int:
        st.number_input(label, lo, hi, step=int(p.step or 1), key=k, help=help_)
    else:
        st.number_input(label, lo, hi, step=p.step, key=k, help=help_, format="%.4f" if p.lo is None else None)


def _visible(p: Param, prefix: str, methods: tuple[str, ...] | None) -> bool:
    """Whether parameter ``p`` matters for any of ``methods`` (None: every method): a name in a chosen
    method's ``widgets`` (and its ``widgets_if`` condition holds), and the spec's own ``show_if``."""
    if p.show_if is not None and p.show_if[0] != "method" and st.session_state[key(prefix, p.show_if[0])] \
            not in p.show_if[1]:
        return False
    if methods is None:
        return True
    for m in (METHODS[name] for name in methods):
        conditions = [(other, allowed) for name, other, allowed in m.widgets_if if name == p.name]
        if p.name in m.widgets and all(st.session_state[key(prefix, o)] in a for o, a in conditions):
            return True
    return False


def shown_params(prefix: str, method: str | Sequence[str] | None) -> set[str]:
    """The parameter names whose widgets :func:`attack_controls` shows for ``method`` (one name or several)."""
    methods = None if method is None else (method,) if isinstance(method, str) else tuple(method)
    return {p.name for p in PARAMS.values() if _visible(p, prefix, methods)}


def derived_value(name: str, cfg: AttackConfig, methods: tuple[str, ...] | None, input_size: int | None):
    """The value an ``auto`` parameter takes for ``cfg`` (native; None when it is set or not derived here):
    α = ε_top for one step, 2.5·ε_top/T after (ε_top = ε_strong for the spatial methods, else ε); s = m;
    m scaled with the input size."""
    spatial = bool(methods) and all(METHODS[m].spatial for m in methods)
    if name == "alpha" and cfg.alpha is None:
        top = cfg.budget.eps_strong if spatial else cfg.eps
        return top if cfg.steps <= 1 else 2.5 * top / cfg.steps
    if name == "patch" and cfg.scan.patch is None and input_size:
        return default_patch(input_size)
    if name == "stride" and cfg.scan.stride is None:
        return cfg.scan.patch if cfg.scan.patch is not None else default_patch(input_size) if input_size else None
    return None


def auto_text(name: str, value) -> str:
    """'auto (4/255)' for a derived budget, 'auto (16 px)' for a derived size."""
    if value is None:
        return "auto"
    return format_budget(None, auto=value) if PARAMS[name].unit else f"auto ({value} px)"


def attack_controls(prefix: str, method: str | Sequence[str] | None = None, input_size: int | None = None,
                    box=None, hide: Sequence[str] = ()) -> tuple[AttackConfig, dict]:
    """Preset buttons and one expander per spec group, in ``box`` (default: the sidebar).

    ``method`` (one name, or the names a multi-method page runs) shows only the widgets a chosen
    method reads (its registry ``widgets``); None shows everything; ``hide`` names parameters a page
    sets itself (a swept one). An ``auto`` parameter left at auto says the value it takes.
    Returns (AttackConfig, {group: empty placeholder at the end of its expander}) for notes
    such as the Δ range. Raises ValueError (one line) for invalid combinations.
    """
    box = box or st.sidebar
    keep(prefix)  # a hidden widget's value survives (Streamlit forgets the state of widgets not drawn)
    names = [*PRESETS, None]
    cols = [c for _ in range(0, len(names), 2) for c in box.columns(2)]  # two per row: readable in a sidebar
    for col, name in zip(cols, names):
        label = PRESETS[name].label if name else "Reset"
        col.button(label, key=key(prefix, f"preset_{name or 'reset'}"), on_click=apply_preset, args=(prefix, name),
                   help=PRESETS[name].description if name else "Back to the defaults", width="stretch")
    methods = None if method is None else (method,) if isinstance(method, str) else tuple(method)
    notes, autos = {}, {}
    try:  # the values an auto parameter takes, said on its widget
        derived = {n: derived_value(n, config(prefix), methods, input_size) for n in ("alpha",)}
    except ValueError:
        derived = {}
    for group, title in GROUPS.items():
        shown = [p for p in PARAMS.values() if p.group == group and p.name not in hide
                 and _visible(p, prefix, methods)]
        if not shown:
            continue  # nothing of this group is used by the chosen methods
        with box.expander(title, expanded=group in ("budget", "steps") or group == method):
            for p in shown:
                param_widget(prefix, p, input_size, derived.get(p.name))
                if p.auto and p.name == "stride":
                    autos[p.name] = st.empty()
            notes[group] = st.empty()
    if st.session_state[key(prefix, "eps_max")] > FAIR_EPS_MAX * 255 + 1e-9 and \
            (methods is None or "eps_max" in shown_params(prefix, methods)):
        box.caption(f"ε_max above {FAIR_EPS_MAX * 255:g}/255 lifts the paper's fairness cap.")
    cfg = config(prefix)
    for name, slot in autos.items():
        value = derived_value(name, cfg, methods, input_size)
        if value is not None:
            slot.caption(f"{PARAMS[name].label.split(' (')[0]} = {auto_text(name, value)}")
    chosen = [METHODS[m] for m in methods] if methods else list(METHODS.values())
    too_much = app_limit_error(cfg, input_size or 224, any(m.multi_step for m in chosen),
                               any(m.spatial for m in chosen), any(m.name == "smoothfool" for m in chosen))
    if too_much:
        raise ValueError(too_much)
    for group in GROUPS:
        notes.setdefault(group, st.empty())
    return cfg, notes


# ----------------------------------------------------------------------------- presentation mode
PRESENT_CSS = """<style>
[data-testid="stMainBlockContainer"] {padding-top: 1.2rem; padding-bottom: 1rem; max-width: 100%;}
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p, [data-testid="stMain"] li,
[data-testid="stMain"] [data-testid="stCaptionContainer"] {font-size: 1.3rem; line-height: 1.45;}
[data-testid="stMain"] h1 {font-size: 1.8rem; padding: 0 0 .3rem 0;}
[data-testid="stMain"] [data-testid="stMetricValue"] {font-size: 2.2rem;}
[data-testid="stMain"] [data-testid="stImageCaption"] {font-size: 1.1rem;}
.sdsgsm-verdict {font-size: 2.1rem !important;}
</style>"""
STYLE_CSS = """<style>
.katex-display {overflow-x: auto; overflow-y: hidden;}
.sdsgsm-verdict {font-size: 1.5rem; font-weight: 600; margin: .2rem 0 .6rem 0; overflow-wrap: anywhere;}
.sdsgsm-top5 table {width: 100%; table-layout: fixed; font-size: .88em; margin-bottom: .4rem;}
.sdsgsm-top5 td, .sdsgsm-top5 th {overflow-wrap: break-word; padding: .1rem .3rem; line-height: 1.25;}
.sdsgsm-top5 td:nth-child(2), .sdsgsm-top5 th:nth-child(2) {width: 4.2em; white-space: nowrap; text-align: right;}
</style>"""


def presenting() -> bool:
    """Whether the link asks for presentation mode (``?present=1``); read before ``st.set_page_config``
    to start with the sidebar collapsed."""
    return str(st.query_params.get("present", "")).lower() in ("1", "true", "yes", "on")


def present_toggle(prefix: str) -> bool:
    """The sidebar's presentation-mode toggle (first run: from ``?present=1``); when on, larger type for a
    projector. Returns whether it is on."""
    k = key(prefix, "present")
    if k not in st.session_state:
        st.session_state[k] = presenting()
    on = st.sidebar.toggle("Presentation mode", key=k, help="For a projector: results first, larger type, "
                           "auto-contrast perturbation; `?present=1` in a link opens the page this way with the "
                           "sidebar collapsed")
    st.html(STYLE_CSS + (PRESENT_CSS if on else ""))
    return on


# ----------------------------------------------------------------------------- pickers
COLLECTIONS = {"imagenet": "ImageNet samples (labelled)", "photo": "Photos (scikit-image)",
               "cifar10": "CIFAR-10 samples (32 px, for CIFAR checkpoints)"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]
IMAGE_UPLOAD_MB = 50  # images are bounded by their pixel count too (sdsgsm/data.py)


def image_picker(prefix: str, box=None) -> tuple[str, bytes | None, str] | None:
    """Gallery or upload. Returns (source id, upload bytes or None, caption) or None if no image."""
    box = box or st.sidebar
    kind = box.radio("Image source", ["Gallery", "Upload"], horizontal=True, key=key(prefix, "source"))
    if kind == "Gallery":
        coll = box.selectbox("Collection", list(COLLECTIONS), format_func=COLLECTIONS.get,
                             key=key(prefix, "collection"))
        items = {g["key"]: g for g in cache.gallery_options(coll)}
        chosen = box.selectbox("Gallery image", list(items), key=key(prefix, "image"),
                               format_func=lambda k: items[k]["caption"].split(";")[0][:60])
        box.image(items[chosen]["path"], width=160)
        return cache.source_id(gallery_key=chosen), None, items[chosen]["caption"]
    up = box.file_uploader("Upload an image", type=UPLOAD_TYPES, key=key(prefix, "upload"),
                           max_upload_size=IMAGE_UPLOAD_MB)
    if up is None:
        return None
    data = up.getvalue()
    return cache.source_id(upload=data), data, up.name


def model_picker(prefix: str, box=None) -> tuple[str, bytes | None, str] | None:
    """Models available offline, or an uploaded checkpoint. Returns (key, checkpoint bytes, arch) or None."""
    box = box or st.sidebar
    options = cache.model_options()
    names = [m["name"] for m in options if m["available"]] + ["own checkpoint"]
    missing = [m["name"] for m in options if not m["available"]]
    choice = box.selectbox("Model", names, key=key(prefix, "model"),
                           help="Not available offline here: " + ", ".join(missing) if missing else None)
    if choice != "own checkpoint":
        return choice, None, ""
    arch = box.selectbox("Architecture of a state_dict", cache.checkpoint_archs(), key=key(prefix, "arch"))
    up = box.file_uploader("Checkpoint (.pt / .pth, TorchScript or state_dict, ≤ 200 MB)", type=["pt", "pth", "ckpt"],
                           key=key(prefix, "ckpt"))
    if up is None:
        return None
    data = up.getvalue()
    return cache.checkpoint_key(data, arch), data, arch


def chosen_model(prefix: str, box=None) -> tuple[str, bytes | None, str, dict]:
    """:func:`model_picker` and the model's facts (name, input size, classes, labels).

    Stops the page with a one-line message while no checkpoint is uploaded or when it cannot be used.
    """
    model = model_picker(prefix, box)
    if model is None:
        st.info("Upload a checkpoint in the sidebar, or choose the embedded model.")
        st.stop()
    try:
        facts = cache.model_facts(*model)
    except ValueError as exc:  # a pickle with code, a wrong architecture, …
        st.error(str(exc).splitlines()[0])
        st.stop()
    return (*model, facts)


def method_picker(prefix: str, box=None, default: str = "sd-sgsm") -> str:
    """One registry method (the spec's method list), with every description in the help."""
    box = box or st.sidebar
    methods = cache.method_options()
    k = key(prefix, "method")
    st.session_state.setdefault(k, default)
    return box.selectbox("Method", list(methods), key=k, help="\n".join(f"- **{n}**: {d}" for n, d in methods.items()))
