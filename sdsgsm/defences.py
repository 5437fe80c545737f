"""Input-transform defences placed in front of any model, and BPDA to attack through them.

Athalye, Carlini & Wagner (ICML 2018: gradient masking, and why it fails; BPDA); Guo et al.
(ICLR 2018, "Countering adversarial images using input transformations": JPEG, total-variation
minimisation); Xu et al. (NDSS 2018, "Feature squeezing": bit-depth reduction, median smoothing);
Xie et al. (ICLR 2018, "Mitigating adversarial effects through randomization": random resize and pad).
A defence is a transform T: [0, 1]^(N×3×H×W) -> [0, 1]^(N×3×H×W); the defended classifier is f(T(x)).

Which code computes T (the forward):

* ``jpeg``      ART ``JpegCompression`` (PIL JPEG round trip, quality q);
* ``median``    ART ``SpatialSmoothing`` (scipy ``median_filter``, window w per channel, reflect padding);
* ``gaussian``  our :mod:`sdsgsm.smoothing` Gaussian kernel (σ, width 5σ, replicate padding) — not in ART;
* ``bitdepth``  ART ``FeatureSqueezing`` (round to 2^b − 1 levels per channel);
* ``tvm``       ART ``TotalVarMin`` (Bernoulli pixel mask, L-BFGS-B on the TV objective, per channel);
* ``resize``    ours (ART has none for PyTorch): random nearest-neighbour resize to r×r, r drawn from
                round(s·H) … H, then zero padding back to H×W at a random offset — a *randomised* defence;
* ``none``      the identity (the undefended model).

Gradients (the adaptive attack): ``gaussian`` is a differentiable convolution and is attacked with
its exact gradient. The others are not differentiable (quantisation, a median, an optimiser), and
run through BPDA (Athalye, Carlini & Wagner, ICML 2018, "Obfuscated gradients give a false sense of
security", §4.1): the forward pass is the real T, the backward pass is the identity, so
∂L(f(T(x)))/∂x is taken as ∇_z L(f(z)) at z = T(x).

TVM's random mask is drawn with numpy seeded 0 for every image, so T is a fixed function of the
image (no randomness for EOT to average; an image's result does not depend on its batch).

``resize`` is random: every call draws a new (r, top, left) per image from a ``torch.Generator``.
:func:`transform` and :func:`defend` without a generator seed a fresh one with ``resize_seed`` (the
same draws on every call: reproducible, image i of a call gets the i-th draw); a :class:`Defended`
model holds its own generator, seeded once with ``resize_seed``, so each of its forward passes draws
afresh (what an attacker faces) and a run is still reproducible. Resize and pad are differentiable
for a fixed draw, so the adaptive attack uses the exact gradient of the draw it sees; EOT
(Athalye et al. 2018) averages it over draws (``eot_samples`` of the FGSM family).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdsgsm.attacks.art_baselines import seeded
from sdsgsm.models import ClassifierWrapper
from sdsgsm.params import DEFENCE_NAMES, DEFENCE_PARAMS, check
from sdsgsm.smoothing import blur, gaussian_width, kernel_1d

TVM_SEED = 0


@dataclass(frozen=True)
class DefenceConfig:
    """The parameters of every defence (sdsgsm/params.py ``DEFENCE_PARAMS``); each defence reads its own.

    jpeg_quality 1…100; median_window odd px; gaussian_sigma px; bit_depth 1…8; tvm_prob, tvm_lamb,
    tvm_iter: TVM's keep probability, λ and L-BFGS-B iterations; resize_min the smallest scale s and
    resize_seed the random seed of the resize-and-pad draws. Checked against the spec on creation.
    """

    jpeg_quality: int = DEFENCE_PARAMS["jpeg_quality"].default
    median_window: int = DEFENCE_PARAMS["median_window"].default
    gaussian_sigma: float = DEFENCE_PARAMS["gaussian_sigma"].default
    bit_depth: int = DEFENCE_PARAMS["bit_depth"].default
    tvm_prob: float = DEFENCE_PARAMS["tvm_prob"].default
    tvm_lamb: float = DEFENCE_PARAMS["tvm_lamb"].default
    tvm_iter: int = DEFENCE_PARAMS["tvm_iter"].default
    resize_min: float = DEFENCE_PARAMS["resize_min"].default
    resize_seed: int = DEFENCE_PARAMS["resize_seed"].default

    def __post_init__(self):
        for f in fields(self):
            check(f.name, getattr(self, f.name), DEFENCE_PARAMS)

    def params_of(self, defence: str) -> dict:
        """{parameter: value} of the parameters ``defence`` uses (e.g. {'jpeg_quality': 75})."""
        return {n: getattr(self, n) for n in get_defence(defence).params}


# ----------------------------------------------------------------------------- the transforms (forward only)
def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def _from_numpy(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(like.device)


def _jpeg(x: torch.Tensor, c: DefenceConfig) -> torch.Tensor:
    """ART JpegCompression: x·255 cast to uint8 (ART truncates), PIL JPEG at quality q, back /255."""
    from art.defences.preprocessor import JpegCompression

    out, _ = JpegCompression(clip_values=(0.0, 1.0), quality=c.jpeg_quality, channels_first=True)(_to_numpy(x))
    return _from_numpy(out, x)


def _median(x: torch.Tensor, c: DefenceConfig) -> torch.Tensor:
    """ART SpatialSmoothing: scipy median_filter of window w per channel (reflect padding), clipped to [0, 1]."""
    from art.defences.preprocessor import SpatialSmoothing

    out, _ = SpatialSmoothing(window_size=c.median_window, channels_first=True, clip_values=(0.0, 1.0))(_to_numpy(x))
    return _from_numpy(out, x)


def _bitdepth(x: torch.Tensor, c: DefenceConfig) -> torch.Tensor:
    """ART FeatureSqueezing: rint(x·(2^b − 1)) / (2^b − 1) (Xu et al. 2018, §3.1)."""
    from art.defences.preprocessor import FeatureSqueezing

    out, _ = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=c.bit_depth)(_to_numpy(x))
    return _from_numpy(out, x)


def _tvm(x: torch.Tensor, c: DefenceConfig) -> torch.Tensor:
    """ART TotalVarMin (Guo et al. 2018, §3.2), one image at a time in NHWC, each with the mask of seed 0."""
    from art.defences.preprocessor import TotalVarMin

    tvm = TotalVarMin(prob=c.tvm_prob, norm=2, lamb=c.tvm_lamb, solver="L-BFGS-B", max_iter=c.tvm_iter,
                      clip_values=(0.0, 1.0))
    nhwc = _to_numpy(x).transpose(0, 2, 3, 1)  # (N, H, W, C): ART minimises over x_i[:, :, channel]
    out = []
    for img in nhwc:
        with seeded(TVM_SEED, x.device):
            out.append(tvm(np.ascontiguousarray(img[None]))[0][0])
    return _from_numpy(np.stack(out).transpose(0, 3, 1, 2), x)


def resize_pad(x: torch.Tensor, c: DefenceConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random resize-and-pad (Xie et al., ICLR 2018, §3): per image i, r_i ~ U{round(s·H), …, H} (s =
    ``c.resize_min``), nearest-neighbour resize of x_i to r_i × round(r_i·W/H), then zero padding back to
    H × W with the top-left corner at (t_i, l_i), t_i ~ U{0, …, H − r_i}, l_i ~ U{0, …, W − width}.

    Draws (r_i, t_i, l_i) in image order from ``gen`` (CPU generator; None: a fresh one seeded with
    ``c.resize_seed``). Differentiable in x for the drawn values (the resize's and the pad's adjoints).
    x (N, C, H, W) -> (N, C, H, W), x's dtype."""
    if gen is None:
        gen = torch.Generator().manual_seed(c.resize_seed)
    h, w = x.shape[-2:]
    lo = min(h, max(1, round(c.resize_min * h)))
    out = []
    for img in x:
        r = int(torch.randint(lo, h + 1, (1,), generator=gen))
        rw = min(w, max(1, round(r * w / h)))
        top = int(torch.randint(0, h - r + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - rw + 1, (1,), generator=gen))
        small = F.interpolate(img[None], size=(r, rw), mode="nearest")
        out.append(F.pad(small, (left, w - rw - left, top, h - r - top)))
    return torch.cat(out)


def gaussian_blur(x: torch.Tensor, c: DefenceConfig) -> torch.Tensor:
    """Gaussian blur of σ = ``c.gaussian_sigma`` (width 5σ, odd; replicate padding), differentiable:
    :func:`sdsgsm.smoothing.blur` with :func:`~sdsgsm.smoothing.kernel_1d` ('gaussian')."""
    return blur(x, kernel_1d("gaussian", c.gaussian_sigma, dtype=x.dtype, device=x.device))


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Defence:
    """One registry entry. ``transform(x, cfg)``: x (N, 3, H, W) in [0, 1] -> T(x), same shape, device and
    dtype float32. ``bpda``: non-differentiable, attacked with BPDA (identity backward); False: T is
    differentiable and the adaptive attack uses its exact gradient. ``art_class``: the ART preprocessor
    computing T ('' for ours). ``slow``: seconds per image (TVM), so an adaptive zero-out scan through it
    (one T per window) is not run. ``random``: T draws at random on every call and takes a third argument,
    the ``torch.Generator`` to draw from (None: one seeded from the config). ``params``: the DEFENCE_PARAMS
    entries it reads."""

    name: str
    label: str
    description: str
    transform: Callable[[torch.Tensor, DefenceConfig], torch.Tensor]
    bpda: bool = True
    art_class: str = ""
    slow: bool = False
    random: bool = False

    def apply(self, x: torch.Tensor, cfg: DefenceConfig, gen: torch.Generator | None = None) -> torch.Tensor:
        """T(x) with this defence's parameters from ``cfg``; ``gen`` feeds a random defence's draws."""
        return self.transform(x, cfg, gen) if self.random else self.transform(x, cfg)

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(n for n, p in DEFENCE_PARAMS.items() if self.name in p.show_if[1])


DEFENCES: dict[str, Defence] = {d.name: d for d in [
    Defence("none", "no defence", "the undefended model f(x)", lambda x, c: x, bpda=False),
    Defence("jpeg", "JPEG", "JPEG compression at quality q (Guo et al. 2018; Das et al. 2017) via ART "
            "JpegCompression; BPDA", _jpeg, art_class="JpegCompression"),
    Defence("median", "median", "median smoothing in a w×w window (Xu et al. 2018) via ART SpatialSmoothing; BPDA",
            _median, art_class="SpatialSmoothing"),
    Defence("gaussian", "Gaussian", "Gaussian blur of σ (width 5σ; our sdsgsm.smoothing kernel, ART has none); "
            "differentiable, exact gradient", gaussian_blur, bpda=False),
    Defence("bitdepth", "bit depth", "bit-depth reduction to b bits, feature squeezing (Xu et al. 2018) via ART "
            "FeatureSqueezing; BPDA", _bitdepth, art_class="FeatureSqueezing"),
    Defence("tvm", "TVM", "total-variation minimisation (Guo et al. 2018) via ART TotalVarMin, 0.5–7 s per "
            "image; BPDA, no adaptive zero-out scan", _tvm, art_class="TotalVarMin", slow=True),
    Defence("resize", "random resize", "random resize to r×r and zero padding back at a random offset (Xie et al. "
            "2018), a new draw on every call; differentiable per draw, attacked with EOT (Athalye et al. 2018)",
            resize_pad, bpda=False, random=True),
]}
assert tuple(DEFENCES) == DEFENCE_NAMES, "sdsgsm/params.py DEFENCE_NAMES must list the registry in order"


def get_defence(name: str) -> Defence:
    """Registry lookup with a one-line error for unknown names."""
    try:
        return DEFENCES[name]
    except KeyError:
        raise ValueError(f"Unknown defence {name!r}; choose one of {', '.join(DEFENCES)}.") from None


def parse_defences(text: str | list[str]) -> list[str]:
    """'jpeg,median' or a list -> registry names in order, duplicates dropped; ValueError for unknown names."""
    names = text.split(",") if isinstance(text, str) else list(text)
    out = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if not out:
        raise ValueError(f"No defences given; choose from {', '.join(DEFENCES)}.")
    for name in out:
        get_defence(name)
    return out


def params_text(name: str, cfg: DefenceConfig) -> str:
    """'quality 75', 'window 3', 'σ 1', '4 bits', … : a defence's parameters in a few words."""
    p = cfg.params_of(name)
    texts = {"jpeg": lambda: f"quality {p['jpeg_quality']}", "median": lambda: f"window {p['median_window']}",
             "gaussian": lambda: f"σ {p['gaussian_sigma']:g}, width {gaussian_width(p['gaussian_sigma'])}",
             "bitdepth": lambda: f"{p['bit_depth']} bits",
             "tvm": lambda: f"keep {p['tvm_prob']:g}, λ {p['tvm_lamb']:g}, {p['tvm_iter']} iterations",
             "resize": lambda: f"scale {p['resize_min']:g} … 1, seed {p['resize_seed']}"}
    return texts.get(name, lambda: "")()


def transform(x: torch.Tensor, name: str, cfg: DefenceConfig | None = None,
              gen: torch.Generator | None = None) -> torch.Tensor:
    """T(x) of defence ``name`` without gradients: x (N, 3, H, W) in [0, 1] -> (N, 3, H, W) in [0, 1], float32
    (gaussian, resize and none keep x's dtype). ``gen``: the generator of a random defence's draws (None: a
    fresh one seeded with ``resize_seed``, so repeated calls give the same output)."""
    with torch.no_grad():
        return get_defence(name).apply(x.detach(), cfg or DefenceConfig(), gen)


# ----------------------------------------------------------------------------- BPDA and the defended model
class _Bpda(torch.autograd.Function):
    """Backward pass differentiable approximation with g(x) = x (Athalye et al. 2018, §4.1):
    forward T(x), backward the identity (the incoming gradient passes unchanged)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return fn(x.detach())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def defend(x: torch.Tensor, name: str, cfg: DefenceConfig | None = None,
           gen: torch.Generator | None = None) -> torch.Tensor:
    """T(x) with the gradient the adaptive attack uses: exact for a differentiable defence (gaussian,
    resize for its draw, none), BPDA's identity for the others. x (N, 3, H, W) in [0, 1]; ``gen`` as in
    :func:`transform`."""
    d, cfg = get_defence(name), cfg or DefenceConfig()
    if not d.bpda:
        return d.apply(x, cfg, gen)
    return _Bpda.apply(x, lambda z: d.transform(z.float(), cfg).to(x.dtype))


class Defended(ClassifierWrapper):
    """The defended classifier f(T(x)) with the attributes of :class:`sdsgsm.models.Classifier` that the
    attacks, the metrics and the reports read (name, labels, input_size, num_classes, device), so every
    registered method — the FGSM family and the ART baselines, which wrap whatever model they get —
    attacks *through* the defence (the adaptive attack; BPDA where T is not differentiable).

    Args: model a Classifier ((B, 3, H, W) in [0, 1] -> (B, K)); defence a registry name; cfg its parameters.
    A random defence (``random``) draws from the model's own generator, seeded with ``cfg.resize_seed`` when
    the model is made: every forward pass is a new draw, the sequence of draws reproducible.
    """

    def __init__(self, model: nn.Module, defence: str, cfg: DefenceConfig | None = None):
        super().__init__()
        self.model = model
        self.defence = get_defence(defence).name
        self.cfg = cfg or DefenceConfig()
        self.name = f"{getattr(model, 'name', type(model).__name__)}+{self.defence}"
        self.random = get_defence(defence).random
        self.generator = torch.Generator().manual_seed(self.cfg.resize_seed) if self.random else None
        self.eval()

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def input_size(self) -> int:
        return self.model.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) in [0, 1] -> f(T(x)) logits (N, K)."""
        return self.model(defend(x, self.defence, self.cfg, self.generator))


def seconds_per_image(name: str, cfg: DefenceConfig, x: torch.Tensor) -> float:
    """Wall seconds of T per image on x (N, 3, H, W) (one untimed call first); bench/defences.py prints it."""
    import time

    transform(x[:1], name, cfg)
    t0 = time.perf_counter()
    transform(x, name, cfg)
    return (time.perf_counter() - t0) / max(1, len(x))


__all__ = ["DEFENCES", "Defence", "DefenceConfig", "Defended", "defend", "get_defence", "parse_defences",
           "params_text", "resize_pad", "seconds_per_image", "transform"]
