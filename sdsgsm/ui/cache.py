"""Cache adapters between the pages and the core: hashable arguments in, numpy out.

* models: ``st.cache_resource`` (one per process and model key);
* decoded images, zero-out scans, attack records and their output files: ``st.cache_data``
  keyed by an image *source id* (gallery key or content hash of an upload), the model key and
  frozen configs. The scan is keyed by (image, model, ScanConfig[, label for confidence_drop]),
  so moving ω, ε, α or T reuses it.

Large byte payloads (uploads, checkpoints) are ``_``-prefixed arguments that Streamlit does not
hash; the source id / model key already name their content.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import asdict

import numpy as np
import streamlit as st
import torch

from sdsgsm.attacks import METHODS, AttackConfig
from sdsgsm.data import ImageError, decode_image, gallery, gallery_item, image_hash, load_image, to_tensor
from sdsgsm.experiments.report import attack_tensor, image_files, image_record
from sdsgsm.memory import recording
from sdsgsm.models import CHECKPOINT_ARCHS, available_models, default_device, load_checkpoint, load_model
from sdsgsm.occlusion import ScanConfig, ScanResult, occlusion_scan

CACHE_TTL = 3600  # seconds


# ----------------------------------------------------------------------------- server-wide work gate
def max_runs() -> int:
    """How many scans / attacks / benchmark runs the server computes at once: $SDSGSM_MAX_RUNS,
    else half the CPU cores (1 to 4). More sessions wait their turn instead of multiplying the
    peak memory and slowing every run down."""
    raw = os.environ.get("SDSGSM_MAX_RUNS", "")
    if raw.strip().isdigit() and int(raw) >= 1:
        return int(raw)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@st.cache_resource(show_spinner=False)
def work_gate() -> threading.BoundedSemaphore:
    """The one gate of this server (like the caches, shared by all sessions; it holds no data).

    It is held only around a leaf computation (the scan itself, the attack itself, one benchmark
    method), never while a cached function is called, so it cannot deadlock with Streamlit's
    per-key cache locks."""
    return threading.BoundedSemaphore(max_runs())


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


def checkpoint_archs() -> list[str]:
    return list(CHECKPOINT_ARCHS)


def method_options() -> dict[str, str]:
    """Method name -> one-line description, registry order."""
    return {name: m.description for name, m in METHODS.items()}


def method_flags(name: str) -> dict:
    """{'spatial', 'multi_step', 'bounded', 'minimum_norm', 'label', 'views'} of a registry method
    ('views': the panels and sentences that apply to its result, the registry's ``Method.views``)."""
    m = METHODS[name]
    return {"spatial": m.spatial, "multi_step": m.multi_step, "bounded": m.bounded, "minimum_norm": m.minimum_norm,
            "label": m.label, "views": set(m.views)}


def gallery_options(dataset: str | None = None) -> list[dict]:
    """Gallery items as dicts: key, caption, label, dataset, path (str)."""
    return [{"key": g.key, "caption": g.caption, "label": g.label, "dataset": g.dataset, "path": str(g.path)}
            for g in gallery(dataset)]


# ----------------------------------------------------------------------------- models
@st.cache_resource(max_entries=4, show_spinner="Loading model …")
def get_model(model_key: str, _checkpoint: bytes | None = None, arch: str = ""):
    """The classifier for ``model_key`` ('efficientnet_lite0', … or 'ckpt:<hash>:<arch>'), loaded once."""
    if model_key.startswith("ckpt:"):
        return load_checkpoint(_checkpoint, arch=arch)
    return load_model(model_key)


def model_facts(model_key: str, _checkpoint: bytes | None = None, arch: str = "") -> dict:
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
def load_input(source: str, size: int, _data: bytes | None = None, _name: str | None = None) -> np.ndarray:
    """(3, size, size) float32 in [0, 1]; raises ImageError with a clear message that names
    the upload by ``_name``, its file name (not part of the cache key)."""
    if source.startswith("gallery:"):
        return load_image(gallery_item(source[len("gallery:"):]).path, size).numpy()
    if not _data:
        raise ImageError(f"The uploaded file {_name or ''} is empty.".replace("  ", " "))
    return to_tensor(decode_image(_data, min_size=size, name=_name), size).numpy()


_FITS = {"imagenet": 1000, "photo": 1000, "photos": 1000, "cifar10": 10}


def true_label(source: str, num_classes: int) -> int | None:
    """The gallery label of ``source`` when its collection's classes are the model's (else None)."""
    if not source.startswith("gallery:"):
        return None
    item = gallery_item(source[len("gallery:"):])
    return item.label if _FITS.get(item.dataset) == num_classes else None


# ----------------------------------------------------------------------------- scan and attack
def _input(source, model, data) -> torch.Tensor:
    return torch.from_numpy(load_input(source, model.input_size, data))[None].to(model.device)


@st.cache_data(max_entries=64, ttl=CACHE_TTL, show_spinner=False)
def scan(source: str, model_key: str, cfg: ScanConfig, label: int | None, _data: bytes | None = None,
         _checkpoint: bytes | None = None, arch: str = "") -> dict:
    """Zero-out scan of one image (eq. 1–2): grid (nh, nw), boxes (P, 4), clean logits (K,), seconds.

    ``label`` is the attacked label; it changes the scores only for ``confidence_drop``, so callers
    pass it only then (:func:`scan_label`) and the logit-L2 scan is shared across labels.
    """
    model = get_model(model_key, _checkpoint, arch)
    y = None if label is None else torch.tensor([label], device=model.device)
    x = _input(source, model, _data)
    with work_gate(), recording() as retries:  # out-of-memory retries (sdsgsm.memory), shown with the result
        res = occlusion_scan(model, x, cfg, y=y)
    return {"grid": res.grid[0].cpu().numpy(), "boxes": res.boxes.cpu().numpy(), "engine": res.engine,
            "clean_logits": res.clean_logits[0].cpu().numpy(), "seconds": res.seconds, "cfg": res.cfg,
            "memory_retries": retries}


def scan_label(cfg: ScanConfig, label: int | None) -> int | None:
    """The label the scan depends on: the attacked label for ``confidence_drop``, else None."""
    return label if cfg.score == "confidence_drop" else None


def attack(source: str, model_key: str, method: str, cfg: AttackConfig, label: int | None,
           _data: bytes | None = None, _checkpoint: bytes | None = None, arch: str = "") -> dict:
    """Attack one image with the cached scan: :func:`sdsgsm.experiments.report.image_record` plus 'scan_seconds'.

    Streamlit keys a cached call by the arguments actually passed, so ``attack(s, m, k, cfg, y)`` and
    ``attack(s, m, k, cfg, y, None, None, "")`` would be two entries computed twice (Home's example and
    the Explorer's default view are the same attack); every call is passed on in full to one entry.
    ``attack.clear()`` empties it."""
    return _attack(source, model_key, method, cfg, label, _data, _checkpoint, arch)


@st.cache_data(max_entries=64, ttl=CACHE_TTL, show_spinner=False)
def _attack(source: str, model_key: str, method: str, cfg: AttackConfig, label: int | None,
            _data: bytes | None, _checkpoint: bytes | None, arch: str) -> dict:
    """:func:`attack`'s cached entry (all arguments always passed)."""
    model = get_model(model_key, _checkpoint, arch)
    x = _input(source, model, _data)
    s = scan(source, model_key, cfg.scan, scan_label(cfg.scan, label), _data, _checkpoint, arch)
    dev = model.device
    cached = ScanResult(torch.from_numpy(s["grid"])[None].to(dev), torch.from_numpy(s["boxes"]),
                        torch.from_numpy(s["clean_logits"])[None].to(dev), s["cfg"], s["engine"], s["seconds"])
    with work_gate(), recording() as retries:
        rep = attack_tensor(model, x, cfg, method, label, source.split(":", 1)[1], scan=cached)
    record = image_record(rep)
    retries = s.get("memory_retries", []) + retries
    if retries:  # said beside the result like the other warnings
        record["summary"] = {**record["summary"], "warnings": [*record["summary"].get("warnings", []), *retries]}
    return {**record, "scan_seconds": s["seconds"]}


attack.clear = _attack.clear


@st.cache_data(max_entries=16, ttl=CACHE_TTL, show_spinner=False)
def files(source: str, model_key: str, method: str, cfg: AttackConfig, label: int | None,
          _data: bytes | None = None, _checkpoint: bytes | None = None, arch: str = "") -> dict[str, bytes]:
    """The seven output files of :func:`attack`'s record (the same bytes as the CLI writes)."""
    return image_files(attack(source, model_key, method, cfg, label, _data, _checkpoint, arch))


# ----------------------------------------------------------------------------- pictures of a result
def digest(*arrays) -> str:
    """A content key of arrays (every byte, shape and dtype; Streamlit's own hash samples arrays of
    500 000 values or more, which could give two different pictures one key)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def heat_png(kind: str, values: np.ndarray, boxes=()) -> bytes:
    """PNG of the Explorer's saliency (``kind`` 'saliency', red ``boxes``) or budget ('budget') heat map
    (:func:`sdsgsm.render.viz.saliency_heat_image`, :func:`~sdsgsm.render.viz.budget_heat_image`), drawn once
    per content: moving ω, α or T keeps the scan and the budget, so a rerun sends the same picture again (the
    browser already has it) instead of an interactive chart to rebuild."""
    return _heat_png(kind, digest(values, np.asarray(boxes, dtype=np.int64)), values, boxes)


@st.cache_resource(max_entries=64, show_spinner=False)
def _heat_png(kind: str, key: str, _values: np.ndarray, _boxes) -> bytes:
    from sdsgsm.render import viz

    img = viz.saliency_heat_image(_values, _boxes) if kind == "saliency" else viz.budget_heat_image(_values)
    return viz.png_bytes(img)


def picture(img: np.ndarray, boxes=(), colour: tuple[int, int, int] = (230, 25, 25)) -> bytes:
    """JPEG (quality 100: what ``st.image`` makes of an RGB picture) of an (H, W, 3) array in [0, 1] with
    ``boxes`` (top, left, h, w) drawn in ``colour``; encoded once per content, so a rerun that shows the same
    picture neither encodes it nor makes the browser fetch it again. Show it with ``output_format="JPEG"``."""
    return _picture(digest(img, np.asarray(boxes, dtype=np.int64)), tuple(colour), img, boxes)


@st.cache_resource(max_entries=192, show_spinner=False)
def _picture(key: str, colour: tuple[int, int, int], _img: np.ndarray, _boxes) -> bytes:
    import io

    from sdsgsm.render import viz

    buf = io.BytesIO()
    viz.draw_boxes(viz.to_pil(_img), _boxes, colour).save(buf, format="JPEG", quality=100)
    return buf.getvalue()


# ----------------------------------------------------------------------------- benchmark page
@st.cache_data(max_entries=8, ttl=CACHE_TTL, show_spinner=False)
def bench_data(spec: str, model_key: str, limit: int | None, _checkpoint: bytes | None = None,
               arch: str = "") -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """Benchmark images at the model's size: x (N, 3, S, S), y (N,), keys, info. Raises ValueError."""
    from sdsgsm.experiments.runner import load_benchmark_data

    x, y, keys, info = load_benchmark_data(spec, get_model(model_key, _checkpoint, arch), limit)
    return x.numpy(), y.numpy(), keys, info


class RunStore:
    """A bounded, thread-safe LRU of finished benchmark runs, keyed by every argument of the run.

    ``st.cache_data`` records the element calls made inside a cached function and replays them on a
    hit; a benchmark's live progress bar lives outside the function, so its replay fails. Runs are
    therefore computed outside any cached function and kept here (one store per server, like
    ``st.cache_data``; it holds results only, never session data).
    """

    def __init__(self, size: int = 64):
        self.size, self._runs, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._runs[key] = value
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    return RunStore()


def bench_method(spec: str, limit: int | None, model_key: str, method: str, cfg: AttackConfig, batch_size: int,
                 progress=None, checkpoint: bytes | None = None, arch: str = ""):
    """One method of a benchmark run, kept in :func:`run_store` (re-running, adding a method or
    stopping shows it again at once). ``progress(method, done, total)`` may draw a live bar."""
    from sdsgsm.experiments.benchmark import run_benchmark

    key = (spec, limit, model_key, method, cfg, batch_size, arch)
    hit = run_store().get(key)
    if hit is not None:
        return hit
    model = get_model(model_key, checkpoint, arch)
    x, y, keys, info = bench_data(spec, model_key, limit, checkpoint, arch)
    with work_gate():
        result = run_benchmark(model, torch.from_numpy(x), torch.from_numpy(y), [method], cfg, batch_size,
                               progress=progress, keys=keys, data=info["name"],
                               meta={"label_source_data": info["label_source"]})
    run_store().put(key, result)
    return result


def merge_bench(parts: list):
    """Join single-method BenchmarkResults (one cached run per method) into one."""
    from sdsgsm.experiments.benchmark import merge_results

    return merge_results(parts)


def bench_files(result) -> dict[str, bytes]:
    """The benchmark's output files as {name: bytes} for download buttons."""
    from sdsgsm.experiments.benchmark import benchmark_files

    return benchmark_files(result)
