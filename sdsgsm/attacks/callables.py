"""torchattacks-style callables: one class per registered method.

``atk = SDSGSM(model, eps_strong=8/255, steps=10); adv = atk(images, labels)`` runs the registry
method "sd-sgsm" through the same wrapper as the app and the CLI, so a torchattacks evaluation loop
can swap it in. ``model`` is any ``nn.Module`` that maps images in [0, 1] to logits (normalisation
inside, as torchattacks expects). Keyword parameters are the spec's names
(:data:`sdsgsm.params.PARAMS`: ``eps``, ``eps_strong``, ``eps_weak``, ``steps``, ``alpha``,
``omega``, …); an unknown name or an out-of-range value raises ``ValueError`` with one line.

The class name is the method's display label without punctuation: ``SDSGSM``, ``MIFGSM``,
``RFGSM`` (R+FGSM), ``CWL2`` (CW-L2), ``APGDCE`` (APGD-CE), ``DeepFool``, ``SmoothFool``…;
:func:`attack_classes` lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from sdsgsm.attacks.base import AttackConfig, AttackResult, build_config


class Attack:
    """Base of the per-method classes: a frozen config plus a model; calling it attacks a batch.

    ``__call__(images, labels=None) -> x_adv``: images (N, 3, H, W) in [0, 1], labels (N,) or None
    (None: attack the model's clean prediction). ``run(images, labels)`` returns the whole
    :class:`~sdsgsm.attacks.base.AttackResult` (logits, budget map, timings, the 8-bit image).
    """

    method: ClassVar[str] = ""
    _fn: ClassVar[Callable[..., AttackResult] | None] = None  # the registry entry's function

    def __init__(self, model: nn.Module, **params: Any) -> None:
        if self._fn is None:
            raise TypeError("Attack is the base class; use a method's class such as SDSGSM or PGD.")
        self.model = model
        try:
            self.config: AttackConfig = build_config(params)
        except TypeError as exc:  # a value of the wrong type for a config field
            raise ValueError(f"{type(self).__name__}: {exc}") from None

    def run(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> AttackResult:
        """Attack ``images`` and return the full result."""
        return type(self)._fn(self.model, images, labels, self.config)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The adversarial images (N, 3, H, W) in [0, 1] (float; ``run(...).x_adv_8bit`` is the 8-bit one)."""
        return self.run(images, labels).x_adv

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r}, model={type(self.model).__name__})"


def class_name(label: str) -> str:
    """The Python class name of a method label: its letters and digits ('MI-FGSM' -> 'MIFGSM')."""
    return re.sub(r"[^0-9A-Za-z]", "", label)


def attack_classes(methods: Mapping[str, Any]) -> dict[str, type[Attack]]:
    """{class name: Attack subclass} for every registry entry (``Method`` objects with ``name``,
    ``label`` and ``description``); the registry's aliases (e.g. BIM for I-FGSM) get their own class."""
    out: dict[str, type[Attack]] = {}
    for key, m in methods.items():
        name = class_name(m.label)
        doc = f"{m.label} (registry method ``{key}``): {m.description}.\n\n{Attack.__doc__}"
        body = {"method": key, "_fn": staticmethod(m.fn), "__doc__": doc, "__module__": "sdsgsm.attacks"}
        out[name] = type(name, (Attack,), body)
    return out
