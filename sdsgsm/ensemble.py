"""Sources and targets of a transfer experiment: model specs, one shared image size, ensembles.

**One image space** (the resizing rule). Every attack and every evaluation works on the same
``size``-px image (224 px by default, the gallery's and EfficientNet-Lite0's size). A model whose
native input size differs is wrapped in :class:`Resized`, which resizes *inside its forward* with
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` (anti-aliased when it
shrinks), so the resize is differentiable: the perturbation is crafted and bounded (L∞ ≤ ε) on the
224-px image, a target sees exactly the x_adv crafted on the source, resized the same way as its
clean input, and an ensemble can average the logits of models with different native sizes
(EfficientNet-Lite1 takes 240 px, Lite2 260 px).

**Ensemble source** (:class:`Ensemble`): the mean of its members' logits, the ensemble-based
black-box attack of Liu et al. 2017 ("Delving into transferable adversarial examples") and
Tramèr et al. (ICLR 2018): an attack crafted against several white-box models transfers
better to a held-out black-box one. Written ``ens:lite0+lite1`` (aliases or registered names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sdsgsm.models import ClassifierWrapper, ModelError, available_models, load_model

__all__ = ["ALIASES", "ENSEMBLE_PREFIX", "WORK_SIZE", "Ensemble", "ModelSpec", "Resized", "at_size", "build",
           "canonical", "check_available", "parse_spec", "parse_specs", "resize", "short"]

WORK_SIZE = 224
ENSEMBLE_PREFIX = "ens:"
ALIASES = {"lite0": "efficientnet_lite0", "lite1": "efficientnet_lite1", "lite2": "efficientnet_lite2",
           "r18": "resnet18", "r50": "resnet50"}
_SHORT = {v: k for k, v in ALIASES.items()}


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """x (N, C, H, W) -> (N, C, size, size) by differentiable bilinear interpolation
    (``align_corners=False``; anti-aliased only when it shrinks). Returns x itself when it has that size."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


class Resized(ClassifierWrapper):
    """A classifier seen at another input size: forward(x) = inner(resize(x, inner.input_size)).

    Attributes as :class:`sdsgsm.models.Classifier`: ``name``, ``labels``, ``input_size`` (the shared
    image size it takes), ``native_size`` (the inner model's), ``num_classes``, ``device``. The inner
    model keeps its own fast path (a frozen EfficientNet-Lite on CPU runs its folded network)."""

    def __init__(self, inner: nn.Module, size: int):
        super().__init__()
        self.inner, self.input_size, self.native_size = inner, int(size), int(inner.input_size)
        self.name, self.labels = inner.name, list(inner.labels)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, input_size, input_size) in [0, 1] -> logits (N, K) of the inner model on its native size."""
        return self.inner(resize(x, self.native_size))


class Ensemble(ClassifierWrapper):
    """The mean of several classifiers' logits (Liu et al., ICLR 2017; Tramèr et al., ICLR 2018).

    All members take the same ``input_size`` (wrap them with :func:`at_size`) and share one class
    list. forward(x) = mean_i f_i(x), logits (N, K); every registered attack can use it as its model."""

    def __init__(self, members: list[nn.Module], name: str):
        super().__init__()
        if len(members) < 2:
            raise ModelError("An ensemble needs at least two models.")
        sizes = {int(m.input_size) for m in members}
        if len(sizes) != 1:
            raise ModelError(f"Ensemble members take different input sizes {sorted(sizes)}; wrap them with at_size.")
        if any(list(m.labels) != list(members[0].labels) for m in members):
            raise ModelError("Ensemble members must share one class list (e.g. all ImageNet-1k).")
        self.members = nn.ModuleList(members)
        self.name, self.labels, self.input_size = name, list(members[0].labels), sizes.pop()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, S, S) in [0, 1] -> the members' mean logits (N, K)."""
        return torch.stack([m(x) for m in self.members]).mean(0)


def canonical(name: str) -> str:
    """An alias (``lite1``) or registered name (``efficientnet_lite1``) -> the registered name.
    Raises ModelError (one line) for anything else."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    names = [m.name for m in available_models()]
    if key not in names:
        raise ModelError(f"Unknown model {name.strip()[:40]!r}; choose one of {', '.join(names)} "
                         f"(aliases {', '.join(ALIASES)}) or {ENSEMBLE_PREFIX}a+b.")
    return key


def short(name: str) -> str:
    """The display alias of a registered name (``efficientnet_lite1`` -> ``lite1``), else the name."""
    return _SHORT.get(name, name)


@dataclass(frozen=True)
class ModelSpec:
    """One source or target: a registered model, or an ensemble of several (``members``, registered names)."""

    members: tuple[str, ...]
    ensemble: bool = False

    @property
    def label(self) -> str:
        """Short display name: ``lite0`` or ``ens:lite0+lite1``."""
        text = "+".join(short(m) for m in self.members)
        return ENSEMBLE_PREFIX + text if self.ensemble else text

    @property
    def models(self) -> str:
        """The registered names it contains, joined by '+' (every table says which models an ensemble holds)."""
        return "+".join(self.members)


def parse_spec(text: str) -> ModelSpec:
    """``lite0`` / ``efficientnet_lite0`` / ``ens:lite0+lite1`` -> ModelSpec; ModelError for unknown names,
    an ensemble of fewer than two distinct models."""
    text = text.strip()
    if text.lower().startswith(ENSEMBLE_PREFIX):
        members = tuple(dict.fromkeys(canonical(n) for n in text[len(ENSEMBLE_PREFIX):].split("+") if n.strip()))
        if len(members) < 2:
            raise ModelError(f"The ensemble {text[:60]!r} needs at least two different models, e.g. ens:lite0+lite1.")
        return ModelSpec(members, True)
    return ModelSpec((canonical(text),))


def parse_specs(text: str | list[str], what: str = "models") -> list[ModelSpec]:
    """'a,b,ens:c+d' (or a list) -> ModelSpecs in order, duplicates dropped; ModelError when empty."""
    items = text.split(",") if isinstance(text, str) else list(text)
    specs = list(dict.fromkeys(parse_spec(t) for t in items if t.strip()))
    if not specs:
        raise ModelError(f"No {what} given.")
    return specs


def check_available(spec: ModelSpec) -> None:
    """ModelError (one line) when a member cannot load offline (missing package, uncached weights)."""
    info = {m.name: m for m in available_models()}
    for name in spec.members:
        if not info[name].available:
            raise ModelError(f"{name} is not available offline: {info[name].reason}.")


def at_size(model: nn.Module, size: int) -> nn.Module:
    """``model`` itself when it takes ``size`` px, else :class:`Resized` (model, size)."""
    return model if int(model.input_size) == int(size) else Resized(model, size)


def build(spec: ModelSpec, size: int = WORK_SIZE, device: str | None = None,
          load: Callable[[str], nn.Module] | None = None) -> nn.Module:
    """The model of ``spec`` on ``size``-px inputs: a member at its size (:func:`at_size`), or the
    :class:`Ensemble` of its members. ``load(name)`` builds a registered model (default
    :func:`sdsgsm.models.load_model` on ``device``; the app passes its cached loader)."""
    check_available(spec)
    load = load or (lambda n: load_model(n, device=device))
    members = [at_size(load(n), size) for n in spec.members]
    return Ensemble(members, spec.label) if spec.ensemble else members[0]
