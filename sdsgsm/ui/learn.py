"""The Learn page's streamlit side: its state (shared with the Explorer), cached computations and charts.

Cached functions take the same hashable arguments as :mod:`sdsgsm.ui.cache` (image source id,
model key, frozen configs; ``_``-prefixed bytes are not hashed) and return numpy, so a slider
move on one station reruns only that station's cheap part. The computations themselves are the
pure functions of :mod:`sdsgsm.experiments.learn`, which call the attack code the app uses.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from sdsgsm.attacks import FAMILY_SPECS, METHODS, AttackConfig
from sdsgsm.budget import BudgetConfig
from sdsgsm.data import ImageError, gallery_item
from sdsgsm.experiments import learn
from sdsgsm.metrics import amplify
from sdsgsm.occlusion import ScanConfig
from sdsgsm.params import PARAMS
from sdsgsm.ui import cache
from sdsgsm.ui.state import key

P = "ln"  # the Learn page's session-state prefix; the Explorer's is "ex"
EX = "ex"
IMAGE_KEYS = ("source", "collection", "image")  # the image picker's state (sdsgsm.ui.widgets.image_picker)
REPLAY_METHODS = tuple(m for m in METHODS if m in FAMILY_SPECS and m != "bim")
MAX_REPLAY_STEPS = 50  # every x_t is kept for the slider: 50 × 0.6 MB at 224 px
HERO_IMAGE = "imagenet/imagenet_00_243.jpg"
PICKED = (0, 190, 255)  # a window the user picked (Ω* stays red)


# ----------------------------------------------------------------------------- state shared with the Explorer
def adopt_explorer_state() -> bool:
    """First Learn run of a session that has used the Explorer: take its image, method and parameters
    (a link's own values are applied after, by ``init_state``, and win). Returns True if it did."""
    if st.session_state.get(key(P, "init")) or not st.session_state.get(key(EX, "init")):
        return False
    for name in (*PARAMS, *IMAGE_KEYS, "method"):
        if key(EX, name) in st.session_state:
            st.session_state[key(P, name)] = st.session_state[key(EX, name)]
    return True


def hand_over_to_explorer() -> None:
    """Copy this page's image, method and parameters into the Explorer's state (same session)."""
    for name in (*PARAMS, *IMAGE_KEYS, "method"):
        if key(P, name) in st.session_state:
            st.session_state[key(EX, name)] = st.session_state[key(P, name)]
    st.session_state[key(EX, "init")] = True


def explorer_query(source: str, method: str) -> dict[str, str]:
    """The Explorer link's query parameters: the gallery image, the method and every parameter that
    differs from its default (shown units, as the Explorer's own links)."""
    query = {"image": source.split(":", 1)[1]} if source.startswith("gallery:") else {}
    query["method"] = method
    for name, p in PARAMS.items():
        value = st.session_state.get(key(P, name), p.shown(p.default))
        if value != p.shown(p.default):
            query[name] = f"{value:g}" if isinstance(value, float) else str(value)
    return query


STATIONS = ("1 Prediction", "2 One window", "3 Saliency and R", "4 Budget E", "5 Sign vs tanh", "6 Replay",
            "7 Try it")
TITLES = ("1. The prediction", "2. Zero out one window (paper Fig. 1)", "3. The saliency map and the region R",
          "4. The budget map E", "5. Sign versus tanh (paper §3.4–3.5, Fig. 2)", "6. The iterations, replayed",
          "7. Try it yourself")


def station_from_query() -> list[str]:
    """``?station=N`` (1 … 7) opens that station; anything else is ignored with one line."""
    raw = st.query_params.get("station")
    if raw is None:
        return []
    if raw.strip().isdigit() and 1 <= int(raw) <= len(STATIONS):
        st.session_state[key(P, "station")] = STATIONS[int(raw) - 1]
        return []
    return [f"Ignored station={raw[:40]!r} from the link: expected 1 … {len(STATIONS)}."]


def go_station(index: int) -> None:
    """on_click of Back / Next."""
    st.session_state[key(P, "station")] = STATIONS[index]


def scan_config(values: dict) -> ScanConfig:
    """The ScanConfig of native parameter values (patch, stride, score), exactly as the Explorer's
    AttackConfig holds it (auto patch unresolved), so both pages share one cached scan."""
    fields = {p.target.split(".", 1)[1]: values[n] for n, p in PARAMS.items() if p.target.startswith("scan.")}
    return ScanConfig(**fields)


def budget_config(values: dict) -> BudgetConfig:
    """The BudgetConfig of native parameter values. Raises ValueError (one line), e.g. ε_weak > ε_strong."""
    fields = {p.target.split(".", 1)[1]: values[n] for n, p in PARAMS.items() if p.target.startswith("budget.")}
    return BudgetConfig(**fields)


def best_window(grid: np.ndarray) -> tuple[int, int]:
    """(row, column) of Ω* = argmax Δ (eq. 11)."""
    r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return int(r), int(c)


def set_window(rc: tuple[int, int]) -> None:
    st.session_state[key(P, "row")], st.session_state[key(P, "col")] = rc


def clamp_window(source: str, shape: tuple[int, int], best: tuple[int, int]) -> None:
    """Start at Ω*, and go back to it for a new image or a new window grid (patch size)."""
    sig = (source, *shape)
    if key(P, "row") not in st.session_state or st.session_state.get(key(P, "grid")) != sig:
        set_window(best)
    st.session_state[key(P, "grid")] = sig


def rank_text(q: float) -> str:
    return "the largest" if q >= 1 else f"the {q:.0%} quantile of"


def torch_of(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


# ----------------------------------------------------------------------------- cached computations
def _x(source: str, model, data) -> torch.Tensor:
    return torch.from_numpy(cache.load_input(source, model.input_size, data))[None].to(model.device)


def _y(model, label: int | None, x: torch.Tensor) -> torch.Tensor:
    if label is None:
        with torch.inference_mode():
            return model(x).argmax(1)
    return torch.tensor([label], device=model.device)


@st.cache_data(max_entries=64, ttl=cache.CACHE_TTL, show_spinner=False)
def prediction(source: str, model_key: str, _data: bytes | None = None, _checkpoint: bytes | None = None,
               arch: str = "") -> list[dict]:
    """Top-5 of the clean image (station 1): [{'index', 'name', 'prob'}]."""
    model = cache.get_model(model_key, _checkpoint, arch)
    x = _x(source, model, _data)
    return learn.top5(model, x)


def scan(source: str, model_key: str, cfg: ScanConfig, label: int | None, data=None, ckpt=None, arch="") -> dict:
    """The Explorer's cached zero-out scan (the same cache entry): grid, boxes, clean logits, seconds."""
    return cache.scan(source, model_key, cfg, cache.scan_label(cfg, label), data, ckpt, arch)


@st.cache_data(max_entries=256, ttl=cache.CACHE_TTL, show_spinner=False)
def occluded(source: str, model_key: str, box: tuple[int, int, int, int], _data: bytes | None = None,
             _checkpoint: bytes | None = None, arch: str = "") -> dict:
    """Z_Ω x for one window (station 2): occluded image (H, W, 3), Δ_Ω, top-5 before/after."""
    model = cache.get_model(model_key, _checkpoint, arch)
    out = learn.occlude(model, _x(source, model, _data), box)
    return {**out, "occluded": out["occluded"][0].permute(1, 2, 0).cpu().numpy()}


@st.cache_data(max_entries=32, ttl=cache.CACHE_TTL, show_spinner=False)
def gradient(source: str, model_key: str, label: int | None, _data: bytes | None = None,
             _checkpoint: bytes | None = None, arch: str = "") -> np.ndarray:
    """∇_x CE(f(x), y) of the clean image (3, H, W) float32 (station 5), by the attack's own code."""
    model = cache.get_model(model_key, _checkpoint, arch)
    x = _x(source, model, _data)
    return learn.image_gradient(model, x, _y(model, label, x))[0].cpu().numpy()


@st.cache_data(max_entries=32, ttl=cache.CACHE_TTL, show_spinner=False)
def replay(source: str, model_key: str, method: str, cfg: AttackConfig, label: int | None,
           _data: bytes | None = None, _checkpoint: bytes | None = None, arch: str = "") -> dict:
    """The attack replayed (station 6), with the cached scan for spatial methods: states (T + 1, H, W, 3),
    perturbation ×5 per step (T + 1, H, W, 3), loss / p_true / p_other (T + 1,), names, flip step."""
    from sdsgsm.occlusion import ScanResult

    model = cache.get_model(model_key, _checkpoint, arch)
    x = _x(source, model, _data)
    y = None if label is None else torch.tensor([label], device=model.device)
    cached = None
    if METHODS[method].spatial:
        s = scan(source, model_key, cfg.scan, label, _data, _checkpoint, arch)
        dev = model.device
        cached = ScanResult(torch.from_numpy(s["grid"])[None].to(dev), torch.from_numpy(s["boxes"]),
                            torch.from_numpy(s["clean_logits"])[None].to(dev), s["cfg"], s["engine"], s["seconds"])
    r = learn.replay(model, x, y, cfg, method, scan=cached)
    hwc = lambda t: t.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)  # noqa: E731
    labels = model.labels
    return {"states": hwc(r.states), "perturbation_x5": hwc(amplify(x, r.states)),
            "loss": r.loss, "p_true": r.p_true, "p_other": r.p_other,
            "other_names": [labels[i] for i in r.other], "pred_names": [labels[i] for i in r.pred],
            "label": labels[int(r.result.y[0])], "label_source": r.result.label_source, "flip": r.flip,
            "steps": len(r.loss) - 1, "linf": float((r.states[-1] - x[0]).abs().max()),
            "alpha": learn.step_alpha(cfg, method), "alpha_auto": cfg.alpha is None}


def hero(model_key: str) -> dict | None:
    """Home page example: the Explorer's cached SD-SGSM record of a gallery photo at the defaults."""
    facts = cache.model_facts(model_key)
    source = cache.source_id(gallery_key=HERO_IMAGE)
    label = cache.true_label(source, facts["num_classes"])
    try:
        return cache.attack(source, model_key, "sd-sgsm", AttackConfig(), label)
    except (ValueError, ImageError, RuntimeError):
        return None


def gallery_caption(source: str) -> str:
    """A short caption for a gallery source id ('' for uploads)."""
    if not source.startswith("gallery:"):
        return ""
    return gallery_item(source.split(":", 1)[1]).caption.split(";")[0]


def saliency_pixels(grid: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """The scan's window scores (nh, nw) painted onto pixels (side, side) for the heat map."""
    from sdsgsm.occlusion import upsample_grid

    return upsample_grid(torch.from_numpy(grid)[None], torch.from_numpy(boxes), side, side)[0].numpy()


OMEGA_CURVE = np.geomspace(1e-2, 1e4, 37)


@st.cache_data(max_entries=32, ttl=cache.CACHE_TTL, show_spinner=False)
def prop1(source: str, model_key: str, label: int | None, eps: float, omega: float, grad_norm: str,
          _data: bytes | None = None, _checkpoint: bytes | None = None, arch: str = "") -> dict:
    """Proposition 1 on this image's gradient at (ε, ω): the :class:`sdsgsm.experiments.learn.Prop1` fields and
    its ratio (station 5d)."""
    from dataclasses import asdict

    g = torch.from_numpy(gradient(source, model_key, label, _data, _checkpoint, arch))
    res = learn.proposition1(g, eps, omega, grad_norm)
    return {**asdict(res), "ratio": res.ratio}


@st.cache_data(max_entries=32, ttl=cache.CACHE_TTL, show_spinner=False)
def prop1_curve(source: str, model_key: str, label: int | None, eps: float, grad_norm: str,
                _data: bytes | None = None, _checkpoint: bytes | None = None, arch: str = "") -> np.ndarray:
    """‖δ_tanh‖₂ / ‖δ_FGSM‖₂ of this image's gradient over ``OMEGA_CURVE`` (37,)."""
    g = torch.from_numpy(gradient(source, model_key, label, _data, _checkpoint, arch))
    return learn.prop1_curve(g, eps, OMEGA_CURVE, grad_norm)


def region_box_list(region: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Boxes (k, 4) of the windows in R; region (nh, nw) bool."""
    return boxes[region.reshape(-1)]


def budget_of(grid: np.ndarray, boxes: np.ndarray, side: int, cfg: BudgetConfig) -> dict:
    """:func:`sdsgsm.experiments.learn.budget_counts` on a cached scan's numpy grid (nh, nw) and boxes (P, 4)."""
    return learn.budget_counts(torch.from_numpy(grid)[None], torch.from_numpy(boxes), (side, side), cfg)
