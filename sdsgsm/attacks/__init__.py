"""The one registry of attack methods: name -> Method (function + description).

Every method is a function ``(model, x, y, cfg, *, scan=None) -> AttackResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from .base import GRAD_NORMS, MAX_STEPS, AttackConfig, AttackResult, resolve_labels
from .fgsm_family import FamilySpec, fgsm_family

__all__ = ["AttackConfig", "AttackResult", "METHODS", "Method", "get_method", "run_attack",
           "GRAD_NORMS", "MAX_STEPS", "resolve_labels"]


@dataclass(frozen=True)
class Method:
    """A registry entry. ``spatial`` methods use the zero-out scan and the budget map."""

    name: str
    fn: Callable[..., AttackResult]
    description: str
    spatial: bool = False
    multi_step: bool = False


def _family(name: str, description: str, **spec) -> Method:
    fs = FamilySpec(**spec)
    return Method(name, partial(fgsm_family, spec=fs, name=name), description,
                  spatial=fs.spatial, multi_step=fs.multi_step)


_ENTRIES = [
    _family("fgsm", "FGSM: one sign step of size ε (Goodfellow et al. 2015)"),
    _family("sgsm", "SGSM: one tanh(ω·ĝ) step of size ε (paper eq. 6)", direction="tanh"),
    _family("sd-fgsm", "SD-FGSM: one sign step under the spatial budget map E", spatial=True),
    _family("sd-sgsm", "SD-SGSM: tanh steps under the spatial budget map E (paper Algorithm 1, §3.7)",
            direction="tanh", spatial=True, multi_step=True),
    _family("ifgsm", "I-FGSM / BIM: T sign steps of size α, projected on the ε-box", multi_step=True),
    _family("pgd", "PGD: I-FGSM from a uniform random start (Madry et al. 2018)",
            multi_step=True, random_start=True),
    _family("rfgsm", "R+FGSM: random sign pre-step of ε/2, then sign step(s) (Tramèr et al. 2018)",
            multi_step=True, rand_prestep=True),
    _family("mifgsm", "MI-FGSM: momentum μ on the L1-normalised gradient (Dong et al. 2018)",
            multi_step=True, momentum=True),
    _family("nifgsm", "NI-FGSM: Nesterov look-ahead plus momentum (Lin et al. 2020)",
            multi_step=True, nesterov=True),
    _family("tifgsm", "TI-FGSM: Gaussian-smoothed gradient, sign steps (Dong et al. 2019)",
            multi_step=True, smooth=True),
]
METHODS: dict[str, Method] = {m.name: m for m in _ENTRIES}
METHODS["bim"] = Method("bim", METHODS["ifgsm"].fn, "alias of ifgsm", multi_step=True)


def get_method(name: str) -> Method:
    """Registry lookup with a clear error for unknown names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; choose one of {', '.join(METHODS)}.") from None


def run_attack(model, x, y, cfg: AttackConfig, method: str = "sd-sgsm", scan=None) -> AttackResult:
    """Run registered ``method`` on images x (N, 3, H, W) in [0, 1] with labels y (N,) or None."""
    return get_method(method).fn(model, x, y, cfg, scan=scan)
