"""The only streamlit-aware module of the core: cached wrappers that return numpy.

* models: ``st.cache_resource`` (one per process and model key);
* decoded images, zero-out scans and attack results: ``st.cache_data`` keyed by hashable
  arguments — an image *source id* (gallery key or content hash of an upload), the model
  key and frozen configs. The scan is keyed by (image, model, ScanConfig) only, so moving
  ω, ε, α or T reuses it; returning to earlier settings is a cache hit.

Large byte payloads (uploads, checkpoints) are passed as ``_``-prefixed arguments that
Streamlit does not hash; the source id already names their content.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import streamlit as st
import torch

from .attacks import METHODS, AttackConfig
from .budget import BudgetConfig
from .data import ImageError, decode_image, gallery, gallery_item, image_hash, load_image, to_tensor
from .metrics import aggregate, amplify  # noqa: F401  (aggregate: used by pages)
from .models import available_models, default_device, load_checkpoint, load_model
from .occlusion import ScanConfig, ScanResult, occlusion_scan, upsample_grid
from .report import attack_tensor

CACHE_TTL = 3600  # seconds


# ----------------------------------------------------------------------------- environment
def device_label() -> str:
    """'CUDA: <GPU name>' or 'CPU (<threads> threads)' — the device attacks run on."""
    dev = default_device()
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    return f"CPU ({torch.get_num_threads()} threads)"


def model_options() -> list[dict]:
    """Registered models with availability: [{'name', 'description', 'available', 'reason'}]."""
    return [asdict(m) for m in available_models()]


def method_options() -> dict[str, str]:
    """Method name -> one-line description, registry order."""
    return {name: m.description for name, m in METHODS.items()}


def spatial_methods() -> set[str]:
    return {name for name, m in METHODS.items() if m.spatial}


def gallery_options(dataset: str | None = None) -> list[dict]:
    """Gallery items as dicts: key, caption, label, dataset, path (str)."""
    return [{"key": g.key, "caption": g.caption, "label": g.label, "dataset": g.dataset, "path": str(g.path)}
            for g in gallery(dataset)]


# ----------------------------------------------------------------------------- models
@st.cache_resource(max_entries=4, show_spinner="Loading model …")
def get_model(model_key: str, _checkpoint: bytes | None = None, arch: str = "cifar_resnet18"):
    """The classifier for ``model_key`` ('efficientnet_lite0', … or 'ckpt:<hash>'), loaded once."""
    if model_key.startswith("ckpt:"):
        return load_checkpoint(_checkpoint, arch=arch)
    return load_model(model_key)


def model_facts(model_key: str, _checkpoint: bytes | None = None, arch: str = "cifar_resnet18") -> dict:
    """name, input size, class count and labels of a model (loads it if needed)."""
    m = get_model(model_key, _checkpoint, arch)
    return {"name": m.name, "input_size": m.input_size, "num_classes": m.num_classes, "labels": m.labels}


def checkpoint_key(data: bytes, arch: str) -> str:
    return f"ckpt:{image_hash(data)}:{arch}"


# ----------------------------------------------------------------------------- images
def source_id(gallery_key: str | None = None, upload: bytes | None = None) -> str:
    """Stable id of an image source: 'gallery:<key>' or 'upload:<content hash>'."""
    return f"gallery:{gallery_key}" if gallery_key else f"upload:{image_hash(upload or b'')}"


@st.cache_data(max_entries=64, ttl=CACHE_TTL, show_spinner=False)
def load_input(source: str, size: int, _data: bytes | None = None) -> np.ndarray:
    """(3, size, size) float32 in [0, 1]; raises ImageError with a clear message."""
    if source.startswith("gallery:"):
        return load_image(gallery_item(source[len("gallery:"):]).path, size).numpy()
    if not _data:
        raise ImageError("The uploaded file is empty.")
    return to_tensor(decode_image(_data, min_size=size), size).numpy()


def true_label(source: str) -> int | None:
    """The gallery label of a source, None for uploads or unlabelled photos."""
    if source.startswith("gallery:"):
        return gallery_item(source[len("gallery:"):]).label
    return None


@st.cache_data(max_entries=64, ttl=CACHE_TTL, show_spinner=False)
def scan(source: str, model_key: str, cfg: ScanConfig, _data: bytes | None = None,
         _checkpoint: bytes | None = None, arch: str = "cifar_resnet18") -> dict:
    """Zero-out scan of one image: grid (nh, nw), boxes (P, 4), clean logits (K,), seconds."""
    model = get_model(model_key, _checkpoint, arch)
    x = torch.from_numpy(load_input(source, model.input_size, _data))[None].to(model.device)
    t0 = time.perf_counter()
    res = occlusion_scan(model, x, cfg)
    return {"grid": res.grid[0].cpu().numpy(), "boxes": res.boxes.cpu().numpy(),
            "clean_logits": res.clean_logits[0].cpu().numpy(), "seconds": time.perf_counter() - t0}


@st.cache_data(max_entries=128, ttl=CACHE_TTL, show_spinner=False)
def attack(source: str, model_key: str, method: str, cfg: AttackConfig, label: int | None,
           _data: bytes | None = None, _checkpoint: bytes | None = None, arch: str = "cifar_resnet18") -> dict:
    """Attack one image with a cached scan. Returns numpy images (H, W, 3) in [0, 1], the
    budget map (H, W), saliency grid and per-pixel map, boxes and result.json's summary."""
    model = get_model(model_key, _checkpoint, arch)
    x = torch.from_numpy(load_input(source, model.input_size, _data))[None].to(model.device)
    s = scan(source, model_key, cfg.scan, _data, _checkpoint, arch)
    cached = ScanResult(torch.from_numpy(s["grid"])[None].to(model.device), torch.from_numpy(s["boxes"]),
                        torch.from_numpy(s["clean_logits"])[None].to(model.device), cfg.scan)
    rep = attack_tensor(model, x, cfg, method, label, source.split(":", 1)[1], scan=cached)
    h, w = x.shape[2:]
    hwc = lambda t: t[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)  # noqa: E731
    return {
        "original": hwc(x), "adversarial": hwc(rep.result.x_adv), "perturbation_x5": hwc(amplify(x, rep.result.x_adv)),
        "delta": hwc(rep.result.x_adv - x), "budget": rep.result.budget[0, 0].cpu().numpy(),
        "saliency_grid": s["grid"], "saliency_map": upsample_grid(cached.grid, cached.boxes, h, w)[0].cpu().numpy(),
        "boxes": s["boxes"], "region_boxes": np.asarray(rep.summary["region_boxes"]).reshape(-1, 4),
        "tile_boxes": np.asarray(rep.summary["top_perturbation_boxes"]).reshape(-1, 4),
        "summary": rep.summary, "scan_seconds": s["seconds"],
        "arrays": {"x": x.cpu().numpy(), "x_adv": rep.result.x_adv.cpu().numpy(),
                   "saliency": cached.grid.cpu().numpy(), "budget": rep.result.budget.cpu().numpy()},
    }


# ----------------------------------------------------------------------------- shared widgets
# Slider values are in 1/255 units for ε and α; alpha 0 means "automatic" (see AttackConfig).
DEFAULTS = {"patch": 16, "stride": 0, "score": "logit_l2", "region": "argmax", "topk": 3, "tau": 0.0,
            "rho": 0.5, "eps_strong": 8.0, "eps_weak": 2.0, "eps_max": 8.0, "eps": 8.0, "steps": 5,
            "alpha": 0.0, "omega": 10.0, "grad_norm": "max", "decay": 1.0, "seed": 0}
PRESETS = {
    "Table 1": {"steps": 1, "alpha": 0.0, "eps": 8.0, "eps_strong": 8.0, "eps_weak": 4.0, "eps_max": 8.0},
    "Table 2": {"steps": 10, "alpha": 4.0, "eps": 8.0, "eps_strong": 8.0, "eps_weak": 4.0, "eps_max": 8.0},
}
PATCHES = [4, 8, 12, 14, 16, 24, 28, 32, 48, 56, 64, 112]
OMEGAS = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0, 1e6]
NUMERIC_PARAMS = {"patch": (1, 4096), "steps": (1, 1000), "topk": (1, 1000), "seed": (0, 2**31 - 1),
                  "eps_strong": (0, 255), "eps_weak": (0, 255), "eps_max": (0, 255), "eps": (0, 255),
                  "alpha": (0, 255), "omega": (1e-9, 1e9), "tau": (-1e9, 1e9), "rho": (0, 1), "decay": (0, 10)}


def init_state(prefix: str) -> list[str]:
    """Put defaults, then valid query parameters, into session state once per session.

    Returns warnings for query parameters that were ignored (NaN, inf, out of range, unknown).
    """
    if st.session_state.get(f"{prefix}_init"):
        return []
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(f"{prefix}_{key}", value)
    warnings = []
    for key, raw in st.query_params.items():
        if key not in NUMERIC_PARAMS:
            continue
        lo, hi = NUMERIC_PARAMS[key]
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or not lo <= value <= hi:
            warnings.append(f"Ignored query parameter {key}={raw!r}: expected a finite number in [{lo}, {hi}].")
            continue
        st.session_state[f"{prefix}_{key}"] = int(value) if isinstance(DEFAULTS[key], int) else value
    if st.session_state[f"{prefix}_patch"] not in PATCHES:
        PATCHES.append(st.session_state[f"{prefix}_patch"])
        PATCHES.sort()
    if st.session_state[f"{prefix}_omega"] not in OMEGAS:
        OMEGAS.append(st.session_state[f"{prefix}_omega"])
        OMEGAS.sort()
    st.session_state[f"{prefix}_init"] = True
    return warnings


def apply_preset(prefix: str, values: dict) -> None:
    """on_click callback: copy a preset (or the defaults) into the page's widget state."""
    for key, value in values.items():
        st.session_state[f"{prefix}_{key}"] = value


def attack_controls(prefix: str, spatial: bool = True, box=st.sidebar) -> AttackConfig:
    """Render the scan / budget / step widgets and return the AttackConfig.

    Raises ValueError (from the frozen configs) with a clear message for invalid combinations.
    """
    k = lambda name: f"{prefix}_{name}"  # noqa: E731
    cols = box.columns(3)
    for col, (name, values) in zip(cols, [*PRESETS.items(), ("Reset", DEFAULTS)]):
        col.button(name, key=k(f"preset_{name}"), on_click=apply_preset, args=(prefix, values),
                   help=f"Paper {name} settings" if name != "Reset" else "Back to the defaults",
                   width="stretch")
    with box.expander("Zero-out scan", expanded=False):
        st.select_slider("Patch size m (px)", PATCHES, key=k("patch"))
        st.number_input("Stride (0 = m)", 0, 256, step=1, key=k("stride"))
        st.selectbox("Score", ["logit_l2", "confidence_drop"], key=k("score"),
                     help="logit_l2: ‖f(x) − f(Z_Ω x)‖₂ (eq. 2); confidence_drop: p_y(x) − p_y(Z_Ω x)")
    with box.expander("Region and budget (×1/255)", expanded=spatial):
        st.selectbox("Region mode", ["argmax", "topk", "threshold", "neighbours", "soft"], key=k("region"))
        region = st.session_state[k("region")]
        if region == "topk":
            st.number_input("k windows", 1, 100, key=k("topk"))
        if region == "threshold":
            st.number_input("τ (Δ threshold)", key=k("tau"), format="%.4f")
        if region == "neighbours":
            st.slider("ρ (neighbour Δ ≥ ρ·Δmax)", 0.0, 1.0, step=0.05, key=k("rho"))
        st.slider("ε_strong (region R)", 0.0, 16.0, step=0.5, key=k("eps_strong"))
        st.slider("ε_weak (background)", 0.0, 16.0, step=0.5, key=k("eps_weak"))
        st.slider("ε_max (cap)", 0.0, 16.0, step=0.5, key=k("eps_max"))
        st.slider("ε (uniform methods)", 0.0, 16.0, step=0.5, key=k("eps"))
    with box.expander("Steps and smoothing", expanded=True):
        st.slider("Steps T", 1, 50, key=k("steps"))
        st.slider("Step size α (0 = auto)", 0.0, 8.0, step=0.25, key=k("alpha"),
                  help="auto: α = ε for one step, 2.5·ε/T for T > 1")
        st.select_slider("ω (tanh steepness)", OMEGAS, key=k("omega"), help="d = tanh(ω·ĝ), paper eq. 6")
        st.selectbox("Gradient normalisation ĝ", ["max", "pow10", "none"], key=k("grad_norm"))
        st.number_input("Momentum μ (MI/NI-FGSM)", 0.0, 10.0, step=0.1, key=k("decay"))
        st.number_input("Seed", 0, 2**31 - 1, key=k("seed"))
    return config_from_state(prefix)


def config_from_state(prefix: str) -> AttackConfig:
    """AttackConfig from the page's session state (ε and α in 1/255 units)."""
    v = {name: st.session_state[f"{prefix}_{name}"] for name in DEFAULTS}
    scan_cfg = ScanConfig(patch=int(v["patch"]), stride=int(v["stride"]) or None, score=v["score"])
    budget = BudgetConfig(eps_strong=v["eps_strong"] / 255, eps_weak=v["eps_weak"] / 255,
                          eps_max=v["eps_max"] / 255, region=v["region"], topk=int(v["topk"]),
                          tau=float(v["tau"]), rho=float(v["rho"]))
    return AttackConfig(eps=v["eps"] / 255, steps=int(v["steps"]), alpha=(v["alpha"] / 255) or None,
                        omega=float(v["omega"]), grad_norm=v["grad_norm"], decay=float(v["decay"]),
                        seed=int(v["seed"]), scan=scan_cfg, budget=budget)


COLLECTIONS = {"imagenet": "ImageNet samples (labelled)", "photo": "Photos (scikit-image)",
               "cifar10": "CIFAR-10 samples (32 px, for CIFAR checkpoints)"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]


def image_picker(prefix: str, box=st.sidebar) -> tuple[str, bytes | None, str] | None:
    """Gallery or upload. Returns (source id, upload bytes or None, caption) or None if no image."""
    k = lambda name: f"{prefix}_{name}"  # noqa: E731
    kind = box.radio("Image source", ["Gallery", "Upload"], horizontal=True, key=k("source"))
    if kind == "Gallery":
        coll = box.selectbox("Collection", list(COLLECTIONS), format_func=COLLECTIONS.get, key=k("collection"))
        items = {g["key"]: g for g in gallery_options(coll)}
        key = box.selectbox("Gallery image", list(items), key=k("image"),
                            format_func=lambda key: items[key]["caption"].split(";")[0][:60])
        box.image(items[key]["path"], width=160)
        return source_id(gallery_key=key), None, items[key]["caption"]
    up = box.file_uploader("Upload an image", type=UPLOAD_TYPES, key=k("upload"))
    if up is None:
        return None
    data = up.getvalue()
    return source_id(upload=data), data, up.name


def model_picker(prefix: str, box=st.sidebar) -> tuple[str, bytes | None, str] | None:
    """Registered models available offline, or an uploaded checkpoint. Returns (key, bytes, arch)."""
    k = lambda name: f"{prefix}_{name}"  # noqa: E731
    options = [m for m in model_options() if m["available"]]
    names = [m["name"] for m in options] + ["own checkpoint"]
    unavailable = [m["name"] for m in model_options() if not m["available"]]
    choice = box.selectbox("Model", names, key=k("model"),
                           help="Not available offline here: " + ", ".join(unavailable) if unavailable else None)
    if choice != "own checkpoint":
        return choice, None, "cifar_resnet18"
    from .models import CHECKPOINT_ARCHS

    arch = box.selectbox("Architecture of a state_dict", list(CHECKPOINT_ARCHS), key=k("arch"))
    up = box.file_uploader("Checkpoint (.pt / .pth, TorchScript or state_dict)", type=["pt", "pth", "ckpt"],
                           key=k("ckpt"))
    if up is None:
        return None
    data = up.getvalue()
    return checkpoint_key(data, arch), data, arch


# ----------------------------------------------------------------------------- benchmark page
@st.cache_data(max_entries=8, ttl=CACHE_TTL, show_spinner=False)
def bench_data(spec: str, model_key: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """Benchmark images at the model's size: x (N, 3, S, S), y (N,), keys, info. Raises ValueError."""
    from .benchmark import load_benchmark_data

    x, y, keys, info = load_benchmark_data(spec, get_model(model_key), limit)
    return x.numpy(), y.numpy(), keys, info


@st.cache_data(max_entries=64, ttl=CACHE_TTL, show_spinner=False)
def bench_method(spec: str, limit: int | None, model_key: str, method: str, cfg: AttackConfig,
                 batch_size: int, _progress=None):
    """One method of a benchmark run (cached, so re-running or adding a method is instant)."""
    from .benchmark import run_benchmark

    x, y, keys, info = bench_data(spec, model_key, limit)
    return run_benchmark(get_model(model_key), torch.from_numpy(x), torch.from_numpy(y), [method], cfg,
                         batch_size, progress=_progress, keys=keys, data=info["name"],
                         meta={"label_source_data": info["label_source"]})


def merge_bench(parts: list):
    """Join single-method BenchmarkResults (one cached run per method) into one."""
    from .benchmark import merge_results

    return merge_results(parts)


def bench_files(result) -> dict[str, bytes]:
    """The benchmark's output files as {name: bytes} for download buttons."""
    import tempfile
    from pathlib import Path

    from .benchmark import write_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        return {p.name: p.read_bytes() for p in map(Path, write_benchmark(result, tmp))}


def bench_presets() -> dict[str, tuple[list[str], str]]:
    """Preset name -> (methods, description)."""
    from .benchmark import PRESETS

    return {name: (list(p.methods), p.description) for name, p in PRESETS.items()}


def preset_cfg(name: str, base: AttackConfig) -> AttackConfig:
    from .benchmark import preset_config

    return preset_config(name, base)[1]
