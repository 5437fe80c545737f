"""Zero-out scan: decision-dependent domain identification (paper §3.2, eq. 1–2).

Square m×m windows Ω slide with stride s (default s = m). A partial last window is
clamped inside the image, so the windows always cover the border. Z_Ω sets every
channel of Ω to 0 (eq. 1); each window is scored by

* ``logit_l2``        Δ_Ω = ‖f(x) − f(Z_Ω x)‖₂ on logits (eq. 2, default);
* ``confidence_drop`` p_y(x) − p_y(Z_Ω x) for the label y (Algorithm 1's γ).

All occluded copies are evaluated without gradients in chunks of ``chunk`` copies (or
incremental crops), so peak memory is bounded by the chunk size, not by the number of
windows. Engines (``ScanConfig.engine``):

* ``incremental`` exact incremental inference (Krypton) for EfficientNet-Lite: each
  window recomputes only the part of each feature map it can influence (see
  :mod:`sdsgsm.incremental`); exact up to float rounding;
* ``batched``     full forward passes of the occluded copies, channels-last (on CPU in
  batches of at most ``EngineOptions.cpu_batch_pixels`` pixels, which run faster than big ones);
* ``naive``       the reference: one cloned copy per window, NCHW (for benchmarks);
* ``auto``        incremental where the model supports it, else batched.

``precision`` ``float32`` is exact; ``bfloat16``/``float16`` run the scan's forward passes
in reduced precision (never the attack's gradients), after which the ``refine``
highest-scoring windows of each image are rescored in float32, so the windows that pick
the region R (argmax, top-k) carry float32 scores; ``auto`` picks bfloat16 for the
incremental engine on hardware with native bfloat16 (CUDA, or CPUs with AVX512-BF16/AMX)
and float32 otherwise. :class:`EngineOptions` (``ScanConfig.engine_options``) tunes the
engines' speed; it changes no result beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import torch

from sdsgsm import incremental
from sdsgsm.memory import halving, run_chunks
from sdsgsm.models import supports_incremental
from sdsgsm.params import SCORES, check_fields, default, default_patch  # noqa: F401  (SCORES re-exported)
from sdsgsm.timing import clock

ENGINES = ("auto", "incremental", "batched", "naive")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class EngineOptions:
    """Speed settings of the scan engines (the defaults are the measured best, bench/scan.py);
    none changes a score beyond float rounding.

    fuse: incremental engine on CPU: run conv + ReLU6 and conv + residual as one oneDNN call
    each, when torch's fused kernels exist and agree with F.conv2d (checked once per process).
    full_fraction: incremental engine: a recomputed crop whose side reaches this fraction of
    its feature map's side is computed over the whole map (1.0: only crops that are whole).
    workers: incremental engine on CPU: chunks run on this many single-threaded workers
    (None: torch's thread count; 1: inline, on torch's intra-op threads).
    cpu_batch_pixels: batched engine on CPU: forward passes of at most this many pixels
    (measured on Lite0 at 224 px: batches of 4–16 images run ~1.8× faster per image than 64).
    """

    fuse: bool = True
    full_fraction: float = 1.0
    workers: int | None = None
    cpu_batch_pixels: int = 8 * 224 * 224

    def __post_init__(self):
        def positive_int(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        if not isinstance(self.fuse, bool):
            raise ValueError(f"fuse must be True or False (got {self.fuse!r}).")
        fraction = self.full_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"full_fraction must be in (0, 1] (got {fraction!r}).")
        if not (self.workers is None or positive_int(self.workers)):
            raise ValueError(f"workers must be None or a positive integer (got {self.workers!r}).")
        if not positive_int(self.cpu_batch_pixels):
            raise ValueError(f"cpu_batch_pixels must be a positive integer (got {self.cpu_batch_pixels!r}).")

    @classmethod
    def from_mapping(cls, data: Mapping) -> EngineOptions:
        """EngineOptions from ``dataclasses.asdict`` output (a saved result); unknown keys are ignored."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class ScanConfig:
    """Zero-out scan parameters. ``patch`` None: scaled with the input size (:meth:`for_size`);
    ``stride`` None means stride = patch (non-overlapping).

    chunk: occluded copies (or incremental crops) evaluated at once; bounds peak memory.
    engine: ``auto`` | ``incremental`` | ``batched`` | ``naive`` (module docstring).
    precision: ``auto`` | ``float32`` | ``bfloat16`` | ``float16`` of the scan's forward
    passes only (module docstring); all engines are exact in float32.
    refine: after a reduced-precision scan, rescore this many top windows per image in
    float32 (0: keep the reduced-precision scores).
    engine_options: the engines' speed settings (:class:`EngineOptions`); a mapping of its
    fields (as ``dataclasses.asdict`` writes it into a saved result) is accepted too.
    """

    patch: int | None = default("patch")
    stride: int | None = default("stride")
    score: str = default("score")
    chunk: int = 64
    engine: str = "auto"
    precision: str = "auto"
    refine: int = 12
    engine_options: EngineOptions = EngineOptions()

    def __post_init__(self):
        if isinstance(self.engine_options, Mapping):  # read back from JSON
            object.__setattr__(self, "engine_options", EngineOptions.from_mapping(self.engine_options))
        if not isinstance(self.engine_options, EngineOptions):
            raise ValueError(f"engine_options must be an EngineOptions (got {self.engine_options!r}).")
        check_fields(self, "scan")  # patch, stride, score: ranges from the parameter spec
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"Chunk size must be an integer of at least 1 (got {self.chunk!r}).")
        if self.engine not in ENGINES:
            raise ValueError(f"Unknown scan engine {self.engine!r}; choose one of {', '.join(ENGINES)}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Unknown scan precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}.")
        if not isinstance(self.refine, int) or isinstance(self.refine, bool) or self.refine < 0:
            raise ValueError(f"refine must be a non-negative integer (got {self.refine!r}).")

    @property
    def step(self) -> int:
        return self.stride or self.patch

    def for_size(self, side: int) -> ScanConfig:
        """This config with an automatic patch (None) resolved for images of ``side`` px
        (:func:`sdsgsm.params.default_patch`: 16 at 224 px, 4 at 32 px)."""
        return self if self.patch is not None else replace(self, patch=default_patch(side))


@dataclass
class ScanResult:
    """grid (N, nh, nw) float32 scores; boxes (nh·nw, 4) int64 rows (top, left, h, w) in
    row-major window order; clean_logits (N, K) of the unoccluded images (float32 forward);
    engine the engine and precision that ran, e.g. ``"incremental/bfloat16+refine12"``;
    seconds the synchronised wall time of the whole batch's scan (0.0 when not measured)."""

    grid: torch.Tensor
    boxes: torch.Tensor
    clean_logits: torch.Tensor
    cfg: ScanConfig
    engine: str = ""
    seconds: float = 0.0


def window_starts(size: int, patch: int, step: int) -> list[int]:
    """Start offsets 0, s, 2s, … along one axis; the last window is clamped to size − m."""
    if patch > size:
        raise ValueError(f"Patch size {patch} is larger than the image side {size}.")
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def window_boxes(height: int, width: int, cfg: ScanConfig) -> torch.Tensor:
    """All windows as an (nh·nw, 4) int64 tensor of (top, left, h, w), row-major."""
    cfg = cfg.for_size(min(height, width))
    rows = window_starts(height, cfg.patch, cfg.step)
    cols = window_starts(width, cfg.patch, cfg.step)
    return torch.tensor([(r, c, cfg.patch, cfg.patch) for r in rows for c in cols], dtype=torch.int64)


def grid_shape(height: int, width: int, cfg: ScanConfig) -> tuple[int, int]:
    """(nh, nw): number of window rows and columns."""
    cfg = cfg.for_size(min(height, width))
    return (len(window_starts(height, cfg.patch, cfg.step)),
            len(window_starts(width, cfg.patch, cfg.step)))


def _score(clean: torch.Tensor, diff: torch.Tensor, y: torch.Tensor, score: str) -> torch.Tensor:
    """clean (B, K) logits, diff (B, K) = f(Z_Ω x) − f(x), y (B,) -> (B,) scores (eq. 2 or γ)."""
    if score == "logit_l2":
        return torch.linalg.vector_norm(diff.float(), dim=1)
    p_clean = clean.float().softmax(1).gather(1, y[:, None])[:, 0]
    p_occ = (clean.float() + diff.float()).softmax(1).gather(1, y[:, None])[:, 0]
    return p_clean - p_occ


def resolve(model, x: torch.Tensor, cfg: ScanConfig) -> tuple[str, str]:
    """The (engine, precision) ``occlusion_scan`` runs for ``model`` on ``x``'s device.

    Raises ValueError when engine ``incremental`` is asked for a model it does not support.
    """
    supported = supports_incremental(model)
    if cfg.engine == "incremental" and not supported:
        raise ValueError("The incremental scan engine supports EfficientNet-Lite models only; "
                         "use engine='auto' or 'batched'.")
    engine = ("incremental" if supported else "batched") if cfg.engine == "auto" else cfg.engine
    precision = cfg.precision
    if precision == "auto":
        precision = "bfloat16" if engine == "incremental" and _native_bf16(x.device) else "float32"
    return engine, precision


def _native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def window_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 4) windows -> (B, 1, H, W) bool, True inside the window (Z_Ω zeroes it)."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    top, left, h, w = boxes.unbind(1)
    in_r = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (B, H)
    in_c = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (B, W)
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def _full_diffs(model, x, boxes, cfg: ScanConfig, ref, engine: str, amp, windows=None):
    """f(Z_Ω x) − f(x) by full forward passes over chunks of (image, window) pairs.

    Yields (image indices (B,), window indices (B,), ref logits (B, K), diffs (B, K))."""
    if windows is None:
        pairs = torch.cartesian_prod(torch.arange(len(x)), torch.arange(len(boxes)))  # (N·P, 2)
    else:  # (N, k) window indices per image
        pairs = torch.stack([torch.arange(len(x)).repeat_interleave(windows.shape[1]), windows.cpu().flatten()], 1)
    pairs = pairs.to(x.device)
    size = cfg.chunk
    if engine == "batched" and x.device.type == "cpu":
        size = max(1, min(size, cfg.engine_options.cpu_batch_pixels // (x.shape[2] * x.shape[3])))
    for start in range(0, len(pairs), size):
        img, win = pairs[start:start + size].unbind(1)
        if engine == "naive":
            batch = x[img].clone()  # (B, 3, H, W)
            for b, (top, left, ph, pw) in enumerate(boxes[win.cpu()].tolist()):
                batch[b, :, top:top + ph, left:left + pw] = 0.0  # Z_Ω, eq. 1
        else:
            masks = window_masks(boxes.to(x.device)[win], x.shape[2], x.shape[3])
            batch = x[img].masked_fill_(masks, 0.0).contiguous(memory_format=torch.channels_last)  # eq. 1
        with amp:
            logits = model(batch)
        yield img, win, ref[img], logits.float() - ref[img]


def _forward(model, x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, K) float logits of the unoccluded images, at most ``size`` at once; out of device
    memory halves that number (:func:`sdsgsm.memory.run_chunks`)."""
    return torch.cat(run_chunks(lambda a, b: model(x[a:b]).float(), len(x), size, what="the scan's clean pass"))


def _batched_scores(model, x, boxes, cfg: ScanConfig, clean, labels, engine: str, precision: str,
                    windows=None) -> torch.Tensor:
    """(N, P) scores by full forward passes (only ``windows`` (N, k) if given, the rest NaN)."""
    dtype = _DTYPES[precision]
    amp = torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32)
    with amp:  # reference clean logits in the scan's own precision
        ref = clean if dtype == torch.float32 else _forward(model, x, cfg.chunk)
    scores = torch.full((len(x), len(boxes)), float("nan"), device=x.device)
    for img, win, ref_b, diffs in _full_diffs(model, x, boxes, cfg, ref, engine, amp, windows):
        scores[img, win] = _score(ref_b, diffs, labels[img], cfg.score)
    return scores


def _batched_scan(model, x, boxes, cfg: ScanConfig, clean_logits, y, engine: str, precision: str):
    """Batched / naive engines: returns (scores (N, P), clean logits (N, K))."""
    clean = _forward(model, x, cfg.chunk) if clean_logits is None else clean_logits.float()
    labels = clean.argmax(1) if y is None else y.to(x.device)
    scores = _batched_scores(model, x, boxes, cfg, clean, labels, engine, precision)
    refine = min(cfg.refine, len(boxes)) if precision != "float32" else 0
    if refine:  # the top windows of each image again, in float32
        top = scores.topk(refine, dim=1).indices  # (N, k)
        exact = _batched_scores(model, x, boxes, cfg, clean, labels, engine, "float32", windows=top)
        scores.scatter_(1, top, exact.gather(1, top))
    return scores, clean


def _incremental_scan(model, x, boxes, cfg: ScanConfig, clean_logits, y, precision: str):
    """Incremental engine, image by image: returns (scores (N, P), clean logits (N, K)).

    Clean logits are the float32 folded network's (equal to model(x) up to rounding) unless
    given; the scores compare like with like (clean and occluded in the scan's precision)."""
    opts = cfg.engine_options
    net = incremental.compiled(model.net, model.mean, model.std, _DTYPES[precision], opts.fuse)
    net32 = incremental.compiled(model.net, model.mean, model.std, torch.float32, opts.fuse)
    regs = incremental.plan(net, boxes.to(x.device), x.shape[2], x.shape[3], opts.full_fraction)
    refine = min(cfg.refine, len(boxes)) if precision != "float32" else 0
    scores = torch.empty(len(x), len(boxes), device=x.device)
    cleans = []
    for i in range(len(x)):
        xi = x[i:i + 1]
        maps = incremental.clean_maps(net, xi)
        maps32 = maps if net is net32 or not (refine or clean_logits is None) else incremental.clean_maps(net32, xi)
        cleans.append(maps32.logits if clean_logits is None else clean_logits[i].float())
        label = cleans[-1].argmax() if y is None else y[i].to(x.device)
        todo = torch.arange(len(boxes), device=x.device)
        for sel, diffs in incremental.window_diffs(net, maps, regs, xi, todo, cfg.chunk, opts.workers):
            scores[i, sel] = _score(maps.logits.expand(len(sel), -1), diffs, label.expand(len(sel)), cfg.score)
        if refine:  # the top windows again, in float32
            top = scores[i].topk(refine).indices
            for sel, diffs in incremental.window_diffs(net32, maps32, regs, xi, top, cfg.chunk, opts.workers):
                scores[i, sel] = _score(maps32.logits.expand(len(sel), -1), diffs, label.expand(len(sel)), cfg.score)
    return scores, torch.stack(cleans)


def occlusion_scan(model, x: torch.Tensor, cfg: ScanConfig = ScanConfig(),
                   y: torch.Tensor | None = None, clean_logits: torch.Tensor | None = None) -> ScanResult:
    """Score every window of every image (paper eq. 1–2), in chunks, without gradients.

    Args: model maps (B, 3, H, W) in [0, 1] to (B, K) logits; x (N, 3, H, W) in [0, 1];
    y (N,) labels for ``confidence_drop`` (default: clean prediction); clean_logits (N, K)
    to reuse an already computed clean forward pass.
    Returns a ScanResult with grid (N, nh, nw), the clean logits (float32; from the
    incremental engine's folded network, equal to model(x) up to float rounding) and the
    engine that ran and ``seconds``, the synchronised wall time of this call.
    Raises ValueError for a patch larger than the image or an unsupported engine.
    Out of device memory: the window chunk is halved and the scan run again, announced by a
    :class:`~sdsgsm.memory.MemoryRetryWarning`, down to one window, then
    :class:`~sdsgsm.memory.DeviceMemoryError` (:func:`sdsgsm.memory.halving`); the result
    keeps ``cfg`` as given.
    """
    t0 = clock(x.device)
    n, _, h, w = x.shape
    cfg = cfg.for_size(min(h, w))
    boxes = window_boxes(h, w, cfg)  # (P, 4)
    nh, nw = grid_shape(h, w, cfg)
    engine, precision = resolve(model, x, cfg)

    def scan(chunk: int):
        run_cfg = cfg if chunk == cfg.chunk else replace(cfg, chunk=chunk)
        with torch.inference_mode():
            if engine == "incremental":
                return _incremental_scan(model, x, boxes, run_cfg, clean_logits, y, precision)
            return _batched_scan(model, x, boxes, run_cfg, clean_logits, y, engine, precision)

    scores, clean = halving(scan, cfg.chunk, what=f"the zero-out scan ({engine} engine)", unit="window")
    refine = min(cfg.refine, len(boxes)) if precision != "float32" else 0
    tag = f"{engine}/{precision}" + (f"+refine{refine}" if refine else "")
    return ScanResult(scores.view(n, nh, nw), boxes, clean, cfg, tag, seconds=clock(x.device) - t0)


def upsample_grid(grid: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Paint window scores back onto pixels: (N, nh, nw) -> (N, H, W).

    A pixel covered by several windows (stride < patch or a clamped border window) takes
    the largest score among them.
    """
    n = grid.shape[0]
    flat = grid.reshape(n, -1)  # (N, P)
    out = torch.full((n, height, width), float("-inf"), device=grid.device)
    for k, (top, left, ph, pw) in enumerate(boxes.tolist()):
        region = out[:, top:top + ph, left:left + pw]
        torch.maximum(region, flat[:, k, None, None].expand_as(region), out=region)
    return out
