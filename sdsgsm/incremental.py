"""Exact incremental inference for the zero-out scan on EfficientNet-Lite (paper eq. 1–2).

Krypton (Nakandala, Kumar & Papakonstantinou, SIGMOD 2019): occluding one window Ω only
changes the feature maps inside Ω's projective field, which grows by k − 1 (then shrinks
by the stride s) at each k×k convolution and stays put at 1×1 convolutions, batch norm
(eval) and ReLU6. So the clean network is run once per image, its intermediate maps are
kept, and every occluded copy recomputes only the changed region of each map:

* all windows of a scan get a crop of the same size per layer (the largest changed region,
  shifted inside the map at the borders) with a per-window offset, so they batch;
* an MBConv block gathers its input crop plus the depthwise halo from the clean,
  zero-padded block input (few channels), pastes the window's updated crop over it,
  expands there (re-zeroing the padding, which bias + ReLU6 made non-zero), runs the
  depthwise conv with padding 0 and projects; the residual is a slice of the gathered input;
* the global average pool only needs Σ_crop(new) − Σ_crop(clean), so the logit change is
  f(Z_Ω x) − f(x) = W_fc·(Σ_crop new − Σ_crop clean)/(H·W), with no cancellation error.

Batch norm is folded into the convolutions, and on CPU conv + ReLU6 and conv + residual
run as single oneDNN calls. The result is exact up to float rounding (≈1e-6 relative in
float32); in bfloat16 the clean maps come from the same code in the same precision, so
unchanged regions agree and only the recomputed crops round. Where a crop reaches the
whole map (at 224 px and m = 16: the 14×14 and 7×7 stages) the layers run in full.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LiteNet", "supports", "compile_lite", "compiled", "plan", "clean_maps", "window_diffs",
           "incremental_diffs"]


# ----------------------------------------------------------------------------- network
@dataclass(frozen=True)
class _Op:
    """A convolution with eval-mode batch norm folded in; pad is (top, bottom, left, right)."""

    weight: torch.Tensor
    bias: torch.Tensor
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]
    groups: int
    act: bool  # ReLU6 after the conv
    fuse: bool = True  # on CPU, one oneDNN call for conv + ReLU6 / conv + add when it checks out

    def __call__(self, x: torch.Tensor, padding: tuple[int, int] = (0, 0),
                 add: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, h, w), padded unless ``padding`` (symmetric) is given -> ReLU6(conv) or
        conv + add (B, C', h', w'); one fused oneDNN call on CPU when available."""
        if self.fuse and x.device.type == "cpu" and _fused_ok():
            return _fused(self, x, padding, add)
        y = F.conv2d(x, self.weight, self.bias, self.stride, padding, 1, self.groups)
        y = y.clamp_(0.0, 6.0) if self.act else y
        return y if add is None else y.add_(add)

    @property
    def symmetric(self) -> bool:
        top, bottom, left, right = self.pad
        return top == bottom and left == right


def _fused(op: _Op, x: torch.Tensor, padding, add):
    """Conv + ReLU6 (or + residual) through oneDNN post-ops (the kernels torch.compile uses)."""
    pointwise = torch.ops.mkldnn._convolution_pointwise
    args = (op.weight, op.bias, list(padding), list(op.stride), [1, 1], op.groups)
    if add is not None:
        if op.act:
            raise ValueError("conv + ReLU6 + add is not fused")
        return pointwise.binary(x, add.contiguous(memory_format=torch.channels_last), *args,
                                "add", None, None, [], None)
    return pointwise(x, *args, "hardtanh" if op.act else "none", [0.0, 6.0] if op.act else [], "")


@functools.cache
def _fused_ok() -> bool:
    """Whether torch's oneDNN fused convolutions exist and agree with F.conv2d (checked once)."""
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
        w, b, r = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, generator=g), torch.randn(2, 4, 4, 4)
        op = _Op(w, b, (3, 3), (1, 1), (0, 0, 0, 0), 4, True)
        lin = _Op(w, b, (3, 3), (1, 1), (0, 0, 0, 0), 4, False)
        ok = (torch.allclose(_fused(op, x, (0, 0), None), F.conv2d(x, w, b, groups=4).clamp(0, 6), atol=1e-5)
              and torch.allclose(_fused(lin, x, (0, 0), r), F.conv2d(x, w, b, groups=4) + r, atol=1e-5))
    except (RuntimeError, AttributeError, TypeError, ValueError):
        ok = False
    return bool(ok)


@dataclass(frozen=True)
class _Block:
    expand: _Op | None
    dw: _Op
    project: _Op
    residual: bool


@dataclass(frozen=True)
class LiteNet:
    """An EfficientNet-Lite network and its input normalisation compiled for incremental inference.

    mean/std (1, 3, 1, 1) normalisation of the [0, 1] input; fc_w (K, C), fc_b (K,) float32.
    """

    mean: torch.Tensor
    std: torch.Tensor
    stem: _Op
    blocks: tuple[_Block, ...]
    head: _Op
    fc_w: torch.Tensor
    fc_b: torch.Tensor
    dtype: torch.dtype


def _convs(net) -> list[nn.Module]:
    out = [net._conv_stem, net._conv_head]
    for b in net._blocks:
        out += [getattr(b, "_expand_conv", None), b._depthwise_conv, b._project_conv]
    return [c for c in out if c is not None]


def supports(net, mean: torch.Tensor) -> bool:
    """True when ``net`` is an eval-mode efficientnet_lite_pytorch EfficientNet of the Lite kind
    (ReLU6, no squeeze-excitation, static SAME padding) with 3 input channels and ``mean``, its
    input normalisation, has shape (1, 3, 1, 1). Which wrappers may run their network through
    this engine is the caller's decision (:func:`sdsgsm.models.supports_incremental`)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding, Identity
    except ImportError:
        return False

    if type(net) is not EfficientNet or net.training:
        return False
    if net._global_params.local_pooling or not isinstance(net._swish, nn.ReLU6):
        return False
    for b in net._blocks:
        if b.has_se or not isinstance(b._swish, nn.ReLU6) or b.training:
            return False
    for c in _convs(net):
        if (type(c) is not Conv2dStaticSamePadding or tuple(c.dilation) != (1, 1)
                or tuple(c.padding) != (0, 0) or not isinstance(c.static_padding, (nn.ZeroPad2d, Identity))):
            return False
    return mean.shape == (1, 3, 1, 1) and net._conv_stem.in_channels == 3


def _fold(conv, bn: nn.BatchNorm2d, act: bool, dtype, memory_format, fuse: bool) -> _Op:
    """Fold eval batch norm into ``conv`` (computed in float64, stored in ``dtype``)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.double() * scale[:, None, None, None]
    bias = bn.bias.double() - bn.running_mean.double() * scale
    if conv.bias is not None:
        bias = bias + conv.bias.double() * scale
    pad = conv.static_padding.padding if isinstance(conv.static_padding, nn.ZeroPad2d) else (0, 0, 0, 0)
    left, right, top, bottom = pad
    stride = tuple(conv.stride) if len(conv.stride) == 2 else (conv.stride[0],) * 2
    return _Op(weight.to(dtype).contiguous(memory_format=memory_format), bias.to(dtype),
               tuple(conv.kernel_size), stride, (top, bottom, left, right), conv.groups, act, fuse)


def compile_lite(net, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype = torch.float32,
                 fuse: bool = True) -> LiteNet:
    """Fold ``net`` (see :func:`supports`) behind the input normalisation (x − mean)/std into a
    LiteNet computing in ``dtype``; ``fuse``: on CPU, conv + ReLU6 and conv + residual run as one
    oneDNN call each when torch's fused kernels check out."""
    cl = torch.channels_last
    blocks = []
    for b in net._blocks:
        has_expand = b._block_args.expand_ratio != 1
        a = b._block_args
        stride = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
        blocks.append(_Block(
            _fold(b._expand_conv, b._bn0, True, dtype, cl, fuse) if has_expand else None,
            _fold(b._depthwise_conv, b._bn1, True, dtype, cl, fuse),
            _fold(b._project_conv, b._bn2, False, dtype, cl, fuse),
            bool(a.id_skip and stride == 1 and a.input_filters == a.output_filters)))
    return LiteNet(mean.float(), std.float(),
                   _fold(net._conv_stem, net._bn0, True, dtype, cl, fuse), tuple(blocks),
                   _fold(net._conv_head, net._bn1, True, dtype, cl, fuse),
                   net._fc.weight.float(), net._fc.bias.float(), dtype)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(net, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype, fuse: bool = True) -> LiteNet:
    """:func:`compile_lite`, cached per network, dtype and ``fuse`` until a parameter or buffer of
    ``net``, or ``mean``/``std``, is replaced, moved or changed in place."""
    tensors = [*net.parameters(), *net.buffers(), mean, std]
    stamp = (dtype, tuple((t.device, t.data_ptr(), t._version) for t in tensors))
    cache = _COMPILED.setdefault(net, {})
    key = (dtype, fuse)
    if key not in cache or cache[key][0] != stamp:
        cache[key] = (stamp, compile_lite(net, mean, std, dtype, fuse))
    return cache[key][1]


# ----------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Region:
    """Per-window crops of one feature map: rows [top, top + h), cols [left, left + w)."""

    top: torch.Tensor   # (P,) int64
    left: torch.Tensor  # (P,) int64
    h: int
    w: int
    size: tuple[int, int]  # (H, W) of the whole map

    @property
    def full(self) -> bool:
        return (self.h, self.w) == self.size

    def take(self, sel: torch.Tensor) -> _Region:
        return _Region(self.top[sel], self.left[sel], self.h, self.w, self.size)


def _grow(off: torch.Tensor, length: int, size: int, k: int, s: int, before: int, after: int,
          full_fraction: float):
    """Rows of a k-tap, stride-s conv output that a change on input rows [off, off+length)
    reaches; returns (offsets, common length, output size). A common length reaching
    ``full_fraction`` of the output size becomes the whole output."""
    out = (size + before + after - k) // s + 1
    lo = torch.div(off - k + 1 + before + s - 1, s, rounding_mode="floor").clamp(min=0)
    hi = torch.div(off + length - 1 + before, s, rounding_mode="floor").clamp(max=out - 1)
    n = max(1, min(out, int((hi - lo + 1).max())))
    n = out if n >= full_fraction * out else n
    return torch.minimum(lo, torch.full_like(lo, out - n)), n, out


def _through(reg: _Region, op: _Op, full_fraction: float) -> _Region:
    """The region of ``op``'s output that changes when ``reg`` of its input changes."""
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = op.kernel, op.stride, op.pad
    top, h, oh = _grow(reg.top, reg.h, reg.size[0], kh, sh, pt, pb, full_fraction)
    left, w, ow = _grow(reg.left, reg.w, reg.size[1], kw, sw, pl, pr, full_fraction)
    return _Region(top, left, h, w, (oh, ow))


def plan(net: LiteNet, boxes: torch.Tensor, height: int, width: int, full_fraction: float = 1.0) -> list[_Region]:
    """Per-window crops of every map for windows boxes (P, 4) of equal size on H × W inputs:
    [input window, stem output, then each block's output]. A crop side reaching
    ``full_fraction`` of its map side is widened to the whole map (1.0: only when it is whole)."""
    regs = [_Region(boxes[:, 0].clone(), boxes[:, 1].clone(), int(boxes[0, 2]), int(boxes[0, 3]),
                    (height, width))]
    regs.append(_through(regs[0], net.stem, full_fraction))
    for b in net.blocks:
        regs.append(_through(regs[-1], b.dw, full_fraction))
    return regs


# ----------------------------------------------------------------------------- clean pass
@dataclass
class _CleanMaps:
    """One image's clean maps, channels last (H + pads, W + pads, C), zero-padded as the
    next k×k conv pads them."""

    inp: torch.Tensor          # normalised input, padded for the stem
    block_in: list             # per block: its input, padded for its depthwise conv
    head: torch.Tensor         # head map (post-ReLU6), unpadded
    head_sum: torch.Tensor     # (C,) float32
    logits: torch.Tensor       # (K,) float32


def _pad(x: torch.Tensor, op: _Op) -> torch.Tensor:
    top, bottom, left, right = op.pad
    return F.pad(x, (left, right, top, bottom)) if any(op.pad) else x


def _hwc(x: torch.Tensor) -> torch.Tensor:
    return x[0].permute(1, 2, 0).contiguous()  # (1, C, H, W) -> (H, W, C)


def _normalise(net: LiteNet, x: torch.Tensor) -> torch.Tensor:
    u = (x - net.mean.to(x.device)) / net.std.to(x.device)
    return u.to(net.dtype).contiguous(memory_format=torch.channels_last)


def _block_full(b: _Block, h: torch.Tensor) -> torch.Tensor:
    """A whole MBConv block on whole maps h (B, C, H, W)."""
    e = b.expand(h) if b.expand is not None else h
    d = b.dw(e, padding=(b.dw.pad[0], b.dw.pad[2])) if b.dw.symmetric else b.dw(_pad(e, b.dw))
    return b.project(d, add=h if b.residual else None)


def clean_maps(net: LiteNet, x1: torch.Tensor) -> _CleanMaps:
    """Run the folded network on one image x1 (1, 3, H, W) in [0, 1] and keep its maps."""
    u = _pad(_normalise(net, x1), net.stem)
    inp, h = _hwc(u), net.stem(u)
    block_in = []
    for b in net.blocks:
        block_in.append(_hwc(_pad(h, b.dw)))
        h = _block_full(b, h)
    head = net.head(h)
    head_sum = head.sum((0, 2, 3), dtype=torch.float32)
    logits = net.fc_w @ (head_sum / (head.shape[2] * head.shape[3])) + net.fc_b
    return _CleanMaps(inp, block_in, _hwc(head), head_sum, logits)


# ----------------------------------------------------------------------------- crops
def _paste(out: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, crop: torch.Tensor, crop_reg: _Region):
    """Write crop (B, C, ch, cw) over out (B, h, w, C) where its region crop_reg meets rows × cols."""
    b, h, w, c = out.shape
    ch, cw = crop.shape[2], crop.shape[3]
    src_r, src_c = rows - crop_reg.top[:, None], cols - crop_reg.left[:, None]  # (B, h), (B, w)
    inside = (((src_r >= 0) & (src_r < ch))[:, :, None] & ((src_c >= 0) & (src_c < cw))[:, None, :]).flatten()
    dst = inside.nonzero()[:, 0]  # flat (b, i, j) positions in out
    n_, i_, j_ = dst // (h * w), dst // w % h, dst % w
    src = (n_ * ch + src_r[n_, i_]) * cw + src_c[n_, j_]
    values = crop.permute(0, 2, 3, 1).reshape(-1, c).index_select(0, src)
    out.view(-1, c).index_copy_(0, dst, values)
    return out


def _current(clean: torch.Tensor, pad_tl: tuple[int, int], crop: torch.Tensor | None, crop_reg: _Region | None,
             top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Values of each window's current map on rows [top, top+h), cols [left, left+w).

    clean (Hp, Wp, C) is the clean map padded by pad_tl = (top, left) on the low side;
    crop (B, C, ch, cw) holds the window's updated values on crop_reg (outside: clean).
    top/left (B,) in unpadded coordinates may be negative (reading the zero padding).
    Returns (B, C, h, w) in channels-last memory.
    """
    dev = clean.device
    rows = top[:, None] + torch.arange(h, device=dev)  # (B, h)
    cols = left[:, None] + torch.arange(w, device=dev)  # (B, w)
    if bool((top == top[0]).all()) and bool((left == left[0]).all()):  # same region for all: slice
        r0, c0 = int(top[0]) + pad_tl[0], int(left[0]) + pad_tl[1]
        out = clean[r0:r0 + h, c0:c0 + w][None]  # (1, h, w, C), a view of the clean map
        out = out.repeat(len(top), 1, 1, 1) if crop is not None else out.expand(len(top), -1, -1, -1)  # copy
    else:
        out = clean[(rows + pad_tl[0])[:, :, None], (cols + pad_tl[1])[:, None, :]]  # (B, h, w, C)
    if crop is not None:
        out = _paste(out, rows, cols, crop, crop_reg)
    return out.permute(0, 3, 1, 2)


def _zero_outside(e: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: tuple[int, int]) -> None:
    """Zero e (B, C, h, w) where rows top + i or cols left + j fall outside the map (the
    zero padding of the next conv, which the expansion's bias and ReLU6 made non-zero)."""
    for dim, start, n in ((2, top, size[0]), (3, left, size[1])):
        length = e.shape[dim]
        lead = int((-start).clamp(min=0).max())
        trail = int((start + length - n).clamp(min=0).max())
        for first, count in ((0, lead), (length - trail, trail)):
            if count:
                pos = start[:, None] + first + torch.arange(count, device=e.device)  # (B, count)
                bad = (pos < 0) | (pos >= n)
                shape = (len(pos), 1, count, 1) if dim == 2 else (len(pos), 1, 1, count)
                e.narrow(dim, first, count).masked_fill_(bad.view(shape), 0.0)


def _block_crops(b: _Block, clean_in: torch.Tensor, h: torch.Tensor, reg_in: _Region, reg_out: _Region):
    """One MBConv block on each window's crop h (B, C, ·, ·) of region reg_in -> crops on reg_out.

    The block input is gathered with the depthwise halo (C_in channels, 6× fewer than
    expanded), expanded there, and the padding positions are zeroed again."""
    if reg_in.full:
        return _block_full(b, h)
    (kh, kw), (sh, sw), (pt, _, pl, _) = b.dw.kernel, b.dw.stride, b.dw.pad
    top, left = reg_out.top * sh - pt, reg_out.left * sw - pl
    x = _current(clean_in, (pt, pl), h, reg_in, top, left, (reg_out.h - 1) * sh + kh, (reg_out.w - 1) * sw + kw)
    e = x
    if b.expand is not None:
        e = b.expand(x)
        _zero_outside(e, top, left, reg_in.size)
    residual = x[:, :, pt:pt + reg_out.h, pl:pl + reg_out.w] if b.residual else None  # stride 1
    return b.project(b.dw(e), add=residual)


def _window_crops(net: LiteNet, x1: torch.Tensor, reg: _Region) -> torch.Tensor:
    """Normalised values of Z_Ω x inside each window (eq. 1): (0 − mean)/std, (B, 3, m, m)."""
    zero = torch.zeros(1, 3, 1, 1, device=x1.device)
    crop = _normalise(net, zero)  # (1, 3, 1, 1)
    return crop.expand(len(reg.top), 3, reg.h, reg.w).contiguous(memory_format=torch.channels_last)


def _stem_crops(net: LiteNet, maps: _CleanMaps, x1: torch.Tensor, reg_in: _Region, reg_out: _Region):
    crop = _window_crops(net, x1, reg_in)
    if reg_in.full:
        return net.stem(_pad(crop, net.stem))
    (kh, kw), (sh, sw), (pt, _, pl, _) = net.stem.kernel, net.stem.stride, net.stem.pad
    return net.stem(_current(maps.inp, (pt, pl), crop, reg_in, reg_out.top * sh - pt, reg_out.left * sw - pl,
                             (reg_out.h - 1) * sh + kh, (reg_out.w - 1) * sw + kw))


def _chunk_diffs(net: LiteNet, maps: _CleanMaps, regs: list[_Region], x1: torch.Tensor) -> torch.Tensor:
    """Logit change f(Z_Ω x) − f(x) for the windows of ``regs`` (already selected): (B, K)."""
    h = _stem_crops(net, maps, x1, regs[0], regs[1])
    for i, b in enumerate(net.blocks):
        h = _block_crops(b, maps.block_in[i], h, regs[i + 1], regs[i + 2])
    head = net.head(h)
    new_sum = head.sum((2, 3), dtype=torch.float32)  # (B, C)
    reg = regs[-1]
    if reg.full:
        old_sum = maps.head_sum[None]
    else:
        old = _current(maps.head, (0, 0), None, None, reg.top, reg.left, reg.h, reg.w)
        old_sum = old.sum((2, 3), dtype=torch.float32)
    size = reg.size[0] * reg.size[1]
    return ((new_sum - old_sum) / size) @ net.fc_w.T  # (B, K)


# ----------------------------------------------------------------------------- workers
# Crops are small, so one chunk is hundreds of short ops; with torch's intra-op threads each
# op ends in a barrier, and on a busy CPU a descheduled thread stalls every barrier (the scan
# ran 4–8× slower beside one busy process). Independent single-threaded workers, one chunk
# each, have no barriers. Their OpenMP thread count is set per thread through the OpenMP
# runtime torch loaded; torch.set_num_threads would change it process-wide.
_POOL: dict = {}
_POOL_LOCK = threading.Lock()


@functools.cache
def _omp_set_num_threads():
    """omp_set_num_threads of the OpenMP runtime torch uses (Linux), or None (looked up once)."""
    if "backend: openmp" not in torch.__config__.parallel_info().lower():
        return None
    try:
        with open("/proc/self/maps") as f:
            found = sorted(set(re.findall(r"(/\S*lib[gi]?omp[\w.-]*\.so[\w.]*)", f.read())))
    except OSError:
        return None
    # other packages bring OpenMP runtimes of their own (scikit-learn, imported with ART, loads a second
    # libgomp): take the one in torch's own folders, or the only one there is, never a guess
    home = str(Path(torch.__file__).resolve().parent.parent)
    own = [path for path in found if path.startswith(home) and "/torch" in path[len(home):]]
    chosen = own[0] if own else (found[0] if len(found) == 1 else None)
    try:
        return ctypes.CDLL(chosen).omp_set_num_threads if chosen else None
    except (OSError, AttributeError):
        return None


def _single_threaded(set_threads) -> None:
    torch.get_num_threads()  # torch initialises this thread's OpenMP settings first …
    set_threads(1)           # … then this thread alone runs its ops on one thread


def _pool(workers: int | None = None) -> ThreadPoolExecutor | None:
    """The shared pool of ``workers`` single-threaded workers (None: torch's thread count), or
    None: run chunks inline (one worker, or no per-thread OpenMP setting)."""
    workers = workers or torch.get_num_threads()
    set_threads = _omp_set_num_threads() if workers > 1 else None
    if set_threads is None:
        return None
    with _POOL_LOCK:
        key = (os.getpid(), workers)  # a forked child or a new thread count gets a new pool
        if _POOL.get("key") != key:
            _POOL["key"] = key
            _POOL["pool"] = ThreadPoolExecutor(workers, "sdsgsm-scan", _single_threaded, (set_threads,))
        return _POOL["pool"]


def window_diffs(net: LiteNet, maps: _CleanMaps, regs: list[_Region], x1: torch.Tensor,
                 windows: torch.Tensor, chunk: int, workers: int | None = None):
    """Logit changes of some windows of one image, chunk by chunk.

    Args: maps = clean_maps(net, x1); regs = plan(net, all boxes, H, W); x1 (1, 3, H, W);
    windows (k,) indices into the boxes; chunk: at most this many windows in flight (on CPU
    split over the single-threaded workers); workers: on CPU, chunks run on this many
    single-threaded workers (None: torch's thread count; 1: inline with torch's intra-op threads).
    Yields (window indices (B,), diffs (B, K) = f(Z_Ω x1) − f(x1)) in float32.
    """
    pool = _pool(workers) if x1.device.type == "cpu" else None
    per = max(1, chunk // pool._max_workers) if pool is not None else chunk
    size = -(-len(windows) // -(-len(windows) // per))  # equal batches of at most `per` windows
    sels = [windows[start:start + size] for start in range(0, len(windows), size)]

    def run(sel: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return _chunk_diffs(net, maps, [r.take(sel) for r in regs], x1)

    if pool is None:
        yield from ((sel, run(sel)) for sel in sels)
        return
    _fused_ok()  # settle the one-time check before the workers read it
    yield from zip(sels, pool.map(run, sels))


def incremental_diffs(net: LiteNet, x: torch.Tensor, boxes: torch.Tensor, chunk: int, workers: int | None = None):
    """Logit changes of every window of every image, exact up to rounding, chunk by chunk.

    Args: net from :func:`compile_lite`; x (N, 3, H, W) in [0, 1]; boxes (P, 4) int64
    windows (top, left, m, m) of equal size; chunk windows per batch (bounds memory); workers
    as in :func:`window_diffs`.
    Yields (image index i, window indices (B,), clean logits of image i (K,), diffs (B, K)
    = f(Z_Ω x_i) − f(x_i)), all float32, with ``net``'s precision for both terms.
    """
    regs = plan(net, boxes.to(x.device), x.shape[2], x.shape[3])
    for i in range(len(x)):
        maps = clean_maps(net, x[i:i + 1])
        windows = torch.arange(len(boxes), device=x.device)
        for sel, diffs in window_diffs(net, maps, regs, x[i:i + 1], windows, chunk, workers):
            yield i, sel, maps.logits, diffs
