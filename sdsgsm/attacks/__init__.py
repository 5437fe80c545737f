"""The one registry of attack methods: name -> Method (function + description).

Every method is a function ``(model, x, y, cfg, *, scan=None) -> AttackResult``: the one
wrapper :func:`~sdsgsm.attacks.base.run_method` (timing, labels, clean/adversarial logits,
result) around the method's core. The FGSM family is ours (fgsm_family.py); the Table 2
baselines are IBM ART attacks (art_baselines.py, ART imported lazily) plus our own Jitter
and FAB, which ART 1.20.1 does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from sdsgsm.attacks.art_baselines import art_core, baseline_params
from sdsgsm.attacks.base import (
    GRAD_NORMS,
    MAX_STEPS,
    AttackConfig,
    AttackResult,
    Core,
    build_config,
    config_values,
    resolve_labels,
    run_method,
)
from sdsgsm.attacks.blackbox import blackbox_core, blackbox_params
from sdsgsm.attacks.callables import Attack, attack_classes
from sdsgsm.attacks.fab import fab_core, fab_params
from sdsgsm.attacks.fgsm_family import FamilySpec, family_core
from sdsgsm.attacks.jitter import jitter_core, jitter_params
from sdsgsm.attacks.patch import patch_core
from sdsgsm.attacks.smoothfool import smoothfool_core, smoothfool_params
from sdsgsm.params import PARAMS

SCAN_PARAMS = ("patch", "stride", "score")  # the zero-out scan's parameters (eq. 1–2)
VIEWS = {  # what a result view may show; a method's ``views`` names the ones that apply to it
    "saliency": "the zero-out scan's Δ map (eq. 2)",
    "region": "the sensitive region R (red boxes) and the Δ range",
    "budget_map": "the per-pixel L∞ budget map E (a uniform ε needs no map)",
    "tiles": "the largest-perturbation tiles (yellow boxes)",
    "patch_box": "the pasted patch's box (blue) and its size",
    "bound": "'no pixel moved more than ε': the budget bounds the perturbation",
    "norms": "the realised L2 / L∞ a minimum-norm attack needed",
    "linf": "the L∞ metric tile",
    "steps": "T steps (multi-step methods)",
}

__all__ = ["Attack", "AttackConfig", "AttackResult", "CALLABLES", "METHODS", "Method", "build_config",
           "config_values", "get_method", "method_label", "run_attack", "run_method",
           "GRAD_NORMS", "MAX_STEPS", "resolve_labels"]


@dataclass(frozen=True)
class Method:
    """A registry entry. ``spatial`` methods use the zero-out scan and the budget map.

    ``bounded``: |x_adv − x| ≤ ε (or the budget map) by construction; False for the
    minimum-norm attacks whose budget is their realised L∞. ``params(cfg)``: the dict of
    method-specific parameters a run uses (None: the AttackConfig says it all).
    ``backend``: 'sdsgsm' (our code) or 'art' (IBM ART). ``deterministic``: no random draw
    (random start, random pre-step, jitter noise, ART random init), so x_adv does not depend
    on the random seed and a sample's result does not depend on the rest of its batch.
    ``minimum_norm``: the attack stops just past the decision boundary (CW, DeepFool, FAB, EAD,
    SmoothFool), so its result ends with the quantisation-aware finish that keeps it fooling once
    saved as an 8-bit image (:func:`~sdsgsm.attacks.base.finish_8bit`).
    ``failure``: the outcome sentence for a sample the method did not fool (formatted with
    ``cfg``), added to the single-image warnings, e.g. SmoothFool's iteration cap.
    ``label``: the display name every chart, table, figure, caption and CLI table shows
    (e.g. "MI-FGSM"); the key (e.g. "mifgsm") stays the name on the command line and in links.

    What a page shows for the method (filled in ``__post_init__``: what the flags imply, plus the
    entry's own declarations): ``widgets`` the names of the ``sdsgsm.params.PARAMS`` entries the
    method reads (the only parameter widgets a page shows for it); ``widgets_if`` (name, other
    parameter, values): widget ``name`` only while parameter ``other`` has one of ``values``;
    ``views`` the panels and sentences of :data:`VIEWS` that apply to its result.
    """

    name: str
    fn: Callable[..., AttackResult]
    description: str
    spatial: bool = False
    multi_step: bool = False
    bounded: bool = True
    params: Callable[[AttackConfig], dict] | None = None
    backend: str = "sdsgsm"
    deterministic: bool = True
    failure: str = ""
    minimum_norm: bool = False
    label: str = ""
    widgets: tuple[str, ...] = ()
    widgets_if: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    views: tuple[str, ...] = ()

    def __post_init__(self):
        uses = set(self.widgets)
        if self.spatial:  # the zero-out scan, the region R and the budget map E (eq. 1–5)
            uses |= {*SCAN_PARAMS, "region", "topk", "tau", "rho", "eps_strong", "eps_weak", "eps_max"}
        elif self.bounded:  # one uniform L∞ budget ε (capped by ε_max)
            uses |= {"eps", "eps_max"}
        if self.multi_step:
            uses |= {"steps"} | ({"alpha"} if self.bounded and not self.minimum_norm else set())
        if not self.deterministic:
            uses.add("seed")
        shown = {*self.views, *(("region", "tiles", "budget_map") if self.spatial else ()),
                 *(("steps",) if self.multi_step else ()),
                 *(("bound",) if self.bounded and not self.minimum_norm else ()),
                 *(("norms",) if self.minimum_norm else ()), *(("saliency",) if uses & set(SCAN_PARAMS) else ()),
                 *(("linf",) if self.bounded or self.minimum_norm else ())}
        object.__setattr__(self, "widgets", tuple(p for p in PARAMS if p in uses))
        object.__setattr__(self, "views", tuple(v for v in VIEWS if v in shown))


def _wrapped(name: str, core: Core, minimum_norm: bool = False, bounded: bool = True):
    """The registry function ``(model, x, y, cfg, *, scan=None)``: run_method around ``core``."""
    return partial(run_method, name, core, minimum_norm=minimum_norm, bounded=bounded)


FAMILY_SPECS: dict[str, FamilySpec] = {}  # FGSM-family method -> its loop switches (filled once, at import)


def _family(name: str, description: str, **spec) -> Method:
    fs = FAMILY_SPECS[name] = FamilySpec(**spec)
    widgets = ((("omega", "grad_norm") if fs.direction == "tanh" else ()) + (("decay",) if fs.momentum or fs.nesterov
               else ()) + (("ti_kernel",) if fs.smooth else ()))
    return Method(name, _wrapped(name, partial(family_core, spec=fs)), description,
                  spatial=fs.spatial, multi_step=fs.multi_step, deterministic=fs.deterministic, widgets=widgets)


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


def _art(name: str, description: str, bounded: bool = True, deterministic: bool = True,
         minimum_norm: bool = False) -> Method:
    return Method(name, _wrapped(name, partial(art_core, name=name), minimum_norm, bounded), description,
                  multi_step=True, bounded=bounded, params=partial(baseline_params, name), backend="art",
                  deterministic=deterministic, minimum_norm=minimum_norm)


_ENTRIES += [
    Method("jitter", _wrapped("jitter", jitter_core), "Jitter: PGD-style steps on a noisy scaled-softmax loss "
           "(Schwinn et al. 2021); our implementation, ART has none", multi_step=True, params=jitter_params,
           deterministic=False),
    _art("cw", "CW-L2: Carlini & Wagner 2017 via ART CarliniL2Method (c = 1, T steps); unbounded, "
         "budget = realised L∞", bounded=False, minimum_norm=True),
    _art("deepfool", "DeepFool: Moosavi-Dezfooli et al. 2016 via ART DeepFool (T steps, overshoot 0.02); "
         "unbounded, budget = realised L∞", bounded=False, minimum_norm=True),
    Method("fab", _wrapped("fab", fab_core, minimum_norm=True),
           "FAB-L∞: fast adaptive boundary (Croce & Hein 2020), T steps, counted "
           "only if L∞ ≤ ε; our implementation, ART 1.20.1 has no FAB", multi_step=True, params=fab_params,
           minimum_norm=True),
    _art("apgd", "APGD-CE: auto-PGD with cross-entropy (Croce & Hein 2020) via ART AutoProjectedGradientDescent",
         deterministic=False),
    _art("apgd-dlr", "APGD-DLR: auto-PGD with the difference-of-logits-ratio loss via ART", deterministic=False),
    _art("autoattack", "AutoAttack via ART: APGD-CE, APGD-DLR, DeepFool, Square, each cut to T steps; "
         "first success within L∞ ≤ ε", deterministic=False),
    _art("ead", "EAD: elastic-net attack (Chen et al. 2018) via ART ElasticNet (c from 1, 5 binary-search "
         "steps of T iterations); unbounded, budget = realised L∞", bounded=False, minimum_norm=True),
]
_ENTRIES += [
    Method("smoothfool", _wrapped("smoothfool", smoothfool_core, minimum_norm=True, bounded=False),
           "SmoothFool: smooth minimum-L2 perturbation "
           "(Dabouei et al. 2020), DeepFool steps projected along g ∗ w with SmoothClip; unbounded, budget = "
           "realised L∞", bounded=False, params=smoothfool_params, minimum_norm=True,
           widgets=("sigma_g", "sf_kernel", "sf_size", "sf_clip_eps", "sf_max_iter"),
           failure="SmoothFool did not fool the model within {cfg.sf_max_iter} iterations (raise the cap, or "
                   "lower σ_g / k)."),
    Method("patch", _wrapped("patch", patch_core, bounded=False),
           "Adversarial patch: a square patch (universal 'toaster' or a "
           "pasted crop) at Ω*, the least sensitive window, the centre or at random (Brown et al. 2017); "
           "; not ε-bounded, budget = the patch box", bounded=False,
           widgets=("patch_size", "placement", "patch_mode", "paste_image", *SCAN_PARAMS, "seed"),
           widgets_if=(*((p, "placement", ("omega-star", "least-sensitive")) for p in SCAN_PARAMS),
                       ("seed", "placement", ("random",))), views=("patch_box",),
           params=lambda cfg: {"patch_size": cfg.patch_size, "placement": cfg.placement, "mode": cfg.patch_mode,
                               **({"paste_image": cfg.paste_image} if cfg.patch_mode == "paste" else {})}),
]


def _black_box(name: str, description: str) -> Method:
    return Method(name, _wrapped(name, partial(blackbox_core, name=name)), description, multi_step=True,
                  params=partial(blackbox_params, name), backend="art", deterministic=False)


_ENTRIES += [  # query-only attacks: no gradient, a query budget per image (cfg.queries), AttackResult.queries
    _black_box("square", "Square: score-based black-box L∞ attack with random square updates (Andriushchenko et al., "
               "ECCV 2020) via ART SquareAttack; at most 'queries' model queries per image"),
    _black_box("hopskipjump", "HopSkipJump: decision-based black-box attack, labels only, L∞ version (Chen, Jordan "
               "& Wainwright, IEEE S&P 2020) via ART HopSkipJump; a success once a query inside the ε-ball fools; "
               "at most 'queries' model queries per image"),
    _black_box("simba", "SimBA-pixel: simple black-box attack, ±ε along random pixel directions while the "
               "probability of the label drops (Guo et al., ICML 2019) via ART SimBA; at most 'queries' model "
               "queries per image"),
]
_LABELS = {  # the display name of every method key (one place; Method.label)
    "fgsm": "FGSM", "sgsm": "SGSM", "sd-fgsm": "SD-FGSM", "sd-sgsm": "SD-SGSM", "ifgsm": "I-FGSM",
    "pgd": "PGD", "rfgsm": "R+FGSM", "mifgsm": "MI-FGSM", "nifgsm": "NI-FGSM", "tifgsm": "TI-FGSM",
    "jitter": "Jitter", "cw": "CW-L2", "deepfool": "DeepFool", "fab": "FAB", "apgd": "APGD-CE",
    "apgd-dlr": "APGD-DLR", "autoattack": "AutoAttack", "ead": "EAD", "smoothfool": "SmoothFool",
    "patch": "Patch", "square": "Square", "hopskipjump": "HopSkipJump", "simba": "SimBA",
}
METHODS: dict[str, Method] = {m.name: replace(m, label=_LABELS[m.name]) for m in _ENTRIES}
METHODS["bim"] = replace(METHODS["ifgsm"], name="bim", label="BIM", description="alias of ifgsm")
FAMILY_SPECS["bim"] = FAMILY_SPECS["ifgsm"]


def get_method(name: str) -> Method:
    """Registry lookup with a clear error for unknown names."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable value where a name belongs
        shown = repr(name) if isinstance(name, str) else f"of type {type(name).__name__}"
        raise ValueError(f"Unknown method {shown[:60]}; choose one of {', '.join(METHODS)}.") from None


def method_label(name: str) -> str:
    """The display name of method ``name`` (its key when it is not a registered method, e.g. a
    transfer source's own label)."""
    m = METHODS.get(name)
    return m.label if m is not None else name


def run_attack(model, x, y, cfg: AttackConfig, method: str = "sd-sgsm", scan=None) -> AttackResult:
    """Run registered ``method`` on images x (N, 3, H, W) in [0, 1] with labels y (N,) or None."""
    return get_method(method).fn(model, x, y, cfg, scan=scan)


# torchattacks-style classes, one per registry entry (SDSGSM, PGD, MIFGSM, ...): see callables.py.
CALLABLES: dict[str, type[Attack]] = attack_classes(METHODS)
globals().update(CALLABLES)
__all__ += list(CALLABLES)
