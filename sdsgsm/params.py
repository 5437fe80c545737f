"""The one parameter spec: every user-facing attack parameter is one ``Param`` entry here.

CLI flags (``add_flags``), Streamlit widgets (``sdsgsm.ui.widgets``), query-parameter parsing
(``parse_query``), presets (``PRESETS``), the config dataclasses' defaults and ranges
(``default`` / ``check``) and the README's parameter table (``markdown_table``) all derive
from ``PARAMS``. Adding a parameter is one entry below (plus the config field it feeds).

Units. A value is *native* in configs and on the command line (ε = 8/255 ≈ 0.0314, fractions
accepted) and *shown* in widgets and query parameters: ``unit="1/255"`` parameters are shown
×255 (``?eps_strong=8`` means 8/255). ``auto`` parameters take ``None`` natively and 0 when
shown (α: ε for one step, 2.5·ε/T after; stride: = m; patch: scaled with the input size).

This module imports nothing from the rest of the package, so every module can import it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

SCORES = ("logit_l2", "confidence_drop")
REGIONS = ("argmax", "topk", "threshold", "neighbours", "soft")
GRAD_NORMS = ("max", "pow10", "none")
FAIR_EPS_MAX = 8 / 255  # the paper's fairness cap (§4.1); ε_max above it is allowed but labelled
SF_KERNELS = ("gaussian", "uniform", "linear")  # SmoothFool's low-pass kernels g
PLACEMENTS = ("omega-star", "least-sensitive", "centre", "random")  # where the adversarial patch goes
PATCH_MODES = ("universal", "paste")
BLACK_BOX_METHODS = ("square", "hopskipjump", "simba")  # the query-only methods (sdsgsm.attacks.blackbox.BLACK_BOX)
# the 20 ImageNet gallery samples (assets/gallery/imagenet), sources of a pasted crop (tests keep these equal)
PASTE_IMAGES = tuple(f"imagenet_{i:02d}_{c}" for i, c in enumerate(
    (243, 559, 438, 990, 949, 853, 609, 609, 915, 455, 541, 630, 741, 471, 129, 99, 251, 22, 317, 305)))


@dataclass(frozen=True)
class Param:
    """One parameter. ``target`` is the config field it feeds ('eps', 'budget.eps_strong', 'scan.patch').

    kind: int | float | str. lo/hi: inclusive range of the native value (None: unbounded);
    choices: allowed strings; stops: suggested slider stops (shown units) for a
    ``select_slider`` — any valid value is accepted, a session's own value is added to its
    stops; step: widget step (shown units); auto: what None / 0 means, '' if not allowed;
    show_if: (other parameter or 'method', values) for which the widget is shown;
    odd: integers must be odd (kernel sizes). group: sidebar section of the widget.
    """

    name: str
    kind: type
    default: object
    label: str
    help: str
    target: str
    group: str
    widget: str = "number"  # 'slider' | 'select_slider' | 'select' | 'number'
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    stops: tuple[float, ...] = ()
    step: float | None = None
    auto: str = ""
    show_if: tuple[str, tuple[str, ...]] | None = None
    odd: bool = False

    @property
    def scale(self) -> float:
        return 255.0 if self.unit == "1/255" else 1.0

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def shown(self, native):
        """Native value -> widget / query value (None -> 0 for auto parameters)."""
        if native is None:
            return self.kind(0)
        if self.kind is str:
            return native
        value = native * self.scale
        return int(round(value)) if self.kind is int else round(float(value), 6)

    def native(self, shown):
        """Widget / query value -> native value (0 -> None for auto parameters)."""
        if self.kind is str:
            return shown
        if self.auto and shown == 0:
            return None
        return int(shown) if self.kind is int else float(shown) / self.scale


def _eps(name: str, default: float, label: str, help_: str, target: str) -> Param:
    return Param(name, float, default, label, help_, target, "budget", widget="slider", unit="1/255",
                 lo=0.0, hi=32 / 255, step=0.5)


PARAMS: dict[str, Param] = {p.name: p for p in [
    # --- zero-out scan (§3.2, eq. 1–2)
    Param("patch", int, None, "Patch size m (px)", "side of the square zero-out window Ω of the occlusion scan "
          "(eq. 1), in px; not the adversarial patch (--patch-size)", "scan.patch",
          "scan", widget="select_slider", lo=1, hi=1024, stops=(0, 2, 4, 7, 8, 14, 16, 28, 32, 56, 112),
          auto="scaled with the input size (16 at 224 px, 4 at 32 px)"),
    Param("stride", int, None, "Stride s (px)", "step between windows; the last window is clamped inside the "
          "image (§3.2)", "scan.stride", "scan", lo=1, hi=1024, step=1, auto="s = m"),
    Param("score", str, "logit_l2", "Window score", "logit_l2: Δ_Ω = ‖f(x) − f(Z_Ω x)‖₂ (eq. 2); confidence_drop: "
          "p_y(x) − p_y(Z_Ω x) (Algorithm 1's γ)", "scan.score", "scan", widget="select", choices=SCORES),
    # --- region R and budget map E (§3.3, eq. 4–5, 11)
    Param("region", str, "argmax", "Region mode", "R: argmax Ω* (eq. 11), top-k windows, Δ > τ, Ω* plus "
          "neighbours with Δ ≥ ρ·Δmax, or soft (E scaled by saliency)", "budget.region", "budget",
          widget="select", choices=REGIONS),
    Param("topk", int, 3, "k windows", "number of windows in R for region topk", "budget.topk", "budget",
          lo=1, hi=1000, step=1, show_if=("region", ("topk",))),
    Param("tau", float, 0.0, "τ (Δ threshold)", "windows with Δ_Ω > τ form R (§3.2 stability threshold); "
          "in the units of the score", "budget.tau", "budget", step=0.1, show_if=("region", ("threshold",))),
    Param("rho", float, 0.5, "ρ (neighbour share)", "8-neighbours of Ω* with Δ ≥ ρ·Δmax join R (§3.3)",
          "budget.rho", "budget", widget="slider", lo=0.0, hi=1.0, step=0.05,
          show_if=("region", ("neighbours",))),
    _eps("eps_strong", 8 / 255, "ε_strong (region R)", "L∞ budget on R (eq. 5)", "budget.eps_strong"),
    _eps("eps_weak", 2 / 255, "ε_weak (background)", "L∞ budget outside R (eq. 5); 0 ≤ ε_weak ≤ ε_strong",
         "budget.eps_weak"),
    _eps("eps_max", 8 / 255, "ε_max (cap)", "cap on every ε; the paper's fair cap is 8/255, above it lifts "
         "the cap", "budget.eps_max"),
    # --- steps (§3.4–3.7, eq. 6–7, 12–15)
    _eps("eps", 8 / 255, "ε (uniform methods)", "L∞ budget of the non-spatial methods (FGSM, PGD, …)", "eps"),
    Param("steps", int, 5, "Steps T", "iterations of eq. 12–15 (single-step methods always take 1)", "steps",
          "steps", widget="select_slider", lo=1, hi=1000, stops=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)),
    Param("alpha", float, None, "Step size α", "x' = x_t + α·d (eq. 7)", "alpha", "steps", widget="slider",
          unit="1/255", lo=1e-12, hi=32 / 255, step=0.25, auto="ε for one step, 2.5·ε/T for T > 1"),
    Param("omega", float, 10.0, "ω (tanh steepness)", "d = tanh(ω·ĝ) (eq. 6); ω → ∞ gives sign(g)", "omega",
          "steps", widget="select_slider", lo=1e-3, hi=1e9,
          stops=(0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0, 1e6)),
    Param("grad_norm", str, "max", "Gradient normalisation ĝ", "max: g / max|g|; pow10: the authors' power-of-ten "
          "rescaling; none: raw g", "grad_norm", "steps", widget="select", choices=GRAD_NORMS),
    Param("decay", float, 1.0, "Momentum μ", "MI-/NI-FGSM momentum on the L1-normalised gradient", "decay",
          "steps", lo=0.0, hi=10.0, step=0.1, show_if=("method", ("mifgsm", "nifgsm"))),
    Param("ti_kernel", int, 7, "TI kernel size (px)", "side of TI-FGSM's Gaussian gradient kernel (odd)", "ti_kernel",
          "steps", widget="select_slider", lo=1, hi=31, stops=(1, 3, 5, 7, 9, 15, 21, 31), odd=True,
          show_if=("method", ("tifgsm",))),
    Param("seed", int, 0, "Seed", "random start / pre-step / ART initialisation", "seed", "steps",
          lo=0, hi=2**31 - 1, step=1),
    Param("eot_samples", int, 1, "EOT samples n", "Expectation over Transformation (Athalye et al. ICML 2018): "
          "each step of the FGSM family averages the gradient over n draws of a randomised defence; 1 = off; "
          "a deterministic model is differentiated once whatever n", "eot_samples", "steps", lo=1, hi=100, step=1),
    # --- SmoothFool (Dabouei et al. 2020, Algorithms 1–2, eq. 4–8)
    Param("sigma_g", float, 2.0, "σ_g (Gaussian g)", "standard deviation of SmoothFool's Gaussian low-pass g, "
          "width 5σ_g; w̃ = g ∗ w (SmoothFool eq. 7); larger is smoother", "sigma_g", "smoothfool",
          widget="select_slider", lo=0.1, hi=500.0, stops=(0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0),
          show_if=("method", ("smoothfool",))),
    Param("sf_kernel", str, "gaussian", "Kernel g", "SmoothFool's low-pass g: gaussian (σ_g), uniform k×k, or "
          "linear k×k (4/k² at the centre, 0 at the edges), per channel", "sf_kernel", "smoothfool",
          widget="select", choices=SF_KERNELS, show_if=("method", ("smoothfool",))),
    Param("sf_size", int, 25, "k (uniform / linear g, px)", "side of SmoothFool's uniform or linear kernel g "
          "(unused by the Gaussian)", "sf_size", "smoothfool", lo=1, hi=1001, step=2,
          show_if=("method", ("smoothfool",))),
    Param("sf_clip_eps", float, 0.1, "SmoothClip step ε", "step of SmoothClip (SmoothFool Algorithm 1, eq. 11); "
          "the paper uses 1 / 0.5 / 0.1 on MNIST / CIFAR-10 / ImageNet", "sf_clip_eps", "smoothfool",
          lo=1e-3, hi=1.0, step=0.05, show_if=("method", ("smoothfool",))),
    Param("sf_max_iter", int, 10, "SmoothFool iterations (cap)", "at most this many smooth projections "
          "(Algorithm 2); past it the outcome is 'not fooled within N iterations'", "sf_max_iter", "smoothfool",
          widget="select_slider", lo=1, hi=1000, stops=(1, 2, 3, 5, 10, 20, 50, 100),
          show_if=("method", ("smoothfool",))),
    # --- adversarial patch (Brown et al. 2017; arXiv:2312.16880)
    Param("patch_size", int, 48, "Adversarial patch (px)", "side of the square adversarial patch pasted on the "
          "image (32 / 48 / 64 in arXiv:2312.16880), in px; not the scan window m (--patch)", "patch_size", "patch",
          widget="select_slider", lo=1, hi=1024, stops=(16, 24, 32, 48, 64, 96, 128),
          show_if=("method", ("patch",))),
    Param("placement", str, "omega-star", "Patch placement", "omega-star: centred on the most sensitive scan "
          "window Ω* (eq. 11); least-sensitive: on the least; centre; random (seeded)", "placement", "patch",
          widget="select", choices=PLACEMENTS, show_if=("method", ("patch",))),
    Param("patch_mode", str, "universal", "Patch mode", "universal: the shipped optimised 'toaster' patch "
          "(assets/patches); paste: a centre crop of another gallery image", "patch_mode", "patch",
          widget="select", choices=PATCH_MODES, show_if=("method", ("patch",))),
    Param("paste_image", str, "imagenet_04_949", "Pasted image (paste mode)", "gallery image whose centre crop "
          "is pasted in paste mode", "paste_image", "patch", widget="select", choices=PASTE_IMAGES,
          show_if=("patch_mode", ("paste",))),
    # --- black-box attacks (Square, Andriushchenko et al. 2020; HopSkipJump, Chen et al. 2020; SimBA, Guo et al. 2019)
    Param("queries", int, 200, "Query budget", "most model queries (forward passes of one image) a black-box attack "
          "may ask per image; it stops there, or at its first query that fools the model inside the ε-ball",
          "queries", "steps", widget="select_slider", lo=1, hi=10000,
          stops=(50, 100, 200, 500, 1000, 2000, 5000, 10000), show_if=("method", BLACK_BOX_METHODS)),
]}


def default(name: str, spec: Mapping[str, Param] | None = None):
    """Native default of parameter ``name`` of ``spec`` (default :data:`PARAMS`; used by the config dataclasses)."""
    return (PARAMS if spec is None else spec)[name].default


def format_budget(value: float | None, auto: float | None = None) -> str:
    """The one on-screen form of a budget or norm on the [0, 1] pixel scale: n/255.

    ``format_budget(8 / 255)`` -> '8/255'; ``format_budget(0.0314)`` -> '8.0/255'; a value that
    is None (derived) with its derived ``auto`` value -> 'auto (4/255)'.
    """
    if value is None:
        return "auto" if auto is None else f"auto ({format_budget(auto)})"
    n = float(value) * 255.0
    if abs(n - round(n)) < 1e-6:
        return f"{round(n):d}/255"
    return f"{n:.1f}/255" if abs(n) >= 1 else f"{n:.2f}/255"


def _range_text(p: Param) -> str:
    def fmt(v):
        if 0 < v < 1e-9:
            return "> 0"
        if p.unit:
            return "0" if v == 0 else f"{v * p.scale:g}/255"
        return str(int(v)) if p.kind is int else f"{v:g}"

    if p.choices:
        return ", ".join(p.choices)
    if p.lo is None and p.hi is None:
        return "any finite number"
    return f"{fmt(p.lo)} … {fmt(p.hi)}"


def check(name: str, value, spec: Mapping[str, Param] | None = None) -> None:
    """Raise ValueError with a one-line message unless native ``value`` is valid for ``name``
    (an entry of ``spec``, default :data:`PARAMS`; :data:`DEFENCE_PARAMS` for the defences)."""
    p = (PARAMS if spec is None else spec)[name]
    if value is None and p.auto:
        return
    if p.choices:
        if value not in p.choices:
            raise ValueError(f"Unknown {name} {value!r}; choose one of {', '.join(p.choices)}.")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{p.label} must be a finite number (got {value!r}).")
    if p.kind is int and value != int(value):
        raise ValueError(f"{p.label} must be an integer (got {value!r}).")
    if (p.lo is not None and value < p.lo - 1e-12) or (p.hi is not None and value > p.hi + 1e-12):
        raise ValueError(f"{p.label} = {p.shown(value):g}{'/255' if p.unit else ''} is outside {_range_text(p)}.")
    if p.odd and int(value) % 2 == 0:
        raise ValueError(f"{p.label} must be odd (got {value}).")


def check_fields(obj, prefix: str = "", spec: Mapping[str, Param] | None = None) -> None:
    """Check every field of config ``obj`` that an entry of ``spec`` (default :data:`PARAMS`) targets as
    ``prefix + field``; a one-line ValueError for the first invalid one."""
    for p in (PARAMS if spec is None else spec).values():
        owner, _, fname = p.target.rpartition(".")
        if owner == prefix.rstrip(".") and hasattr(obj, fname):
            check(p.name, getattr(obj, fname), spec)


# ----------------------------------------------------------------------------- parsing
def parse_number(text: str) -> float:
    """'8/255', '0.03' or '3e-2' -> finite float (argparse type); raises ArgumentTypeError."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def parse_shown(name: str, raw: str, spec: Mapping[str, Param] | None = None):
    """A query-parameter string in shown units -> the native value; ValueError(short reason)."""
    p = (PARAMS if spec is None else spec)[name]
    if p.kind is str:
        value = raw.strip()
    else:
        try:
            shown = float(raw)
        except ValueError:
            raise ValueError("not a number") from None
        if not math.isfinite(shown):
            raise ValueError("not a finite number")
        if p.kind is int and shown != int(shown):
            raise ValueError("not an integer")
        value = p.native(int(shown) if p.kind is int else shown)
    try:
        check(name, value, spec)
    except ValueError as exc:
        if p.odd and "odd" in str(exc):
            raise ValueError("must be odd") from None
        if p.unit:
            raise ValueError(f"expected {p.lo * p.scale:g} … {p.hi * p.scale:g} (in units of 1/255)") from None
        raise ValueError(f"expected {_range_text(p)}") from None
    return value


def parse_query(query: Mapping[str, str], spec: Mapping[str, Param] | None = None) -> tuple[dict, list[str]]:
    """Spec'd query parameters (of ``spec``, default :data:`PARAMS`) -> ({name: native value}, one
    warning per ignored value).

    Unknown keys are left to the caller; an invalid value is ignored, never raised.
    """
    values, warnings = {}, []
    for name, raw in query.items():
        if name not in (PARAMS if spec is None else spec):
            continue
        try:
            values[name] = parse_shown(name, str(raw), spec)
        except ValueError as exc:
            warnings.append(f"Ignored {name}={str(raw)[:40]!r} from the link: {exc}.")
    return values, warnings


# ----------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """A named method list plus native parameter values; other parameters keep the caller's."""

    name: str
    label: str
    methods: tuple[str, ...]
    description: str
    values: tuple[tuple[str, object], ...] = field(default=())

    def apply(self, base: Mapping[str, object] | None = None) -> dict:
        """``base`` native values (default: the spec defaults) overridden by this preset's."""
        return {**{n: p.default for n, p in PARAMS.items()}, **dict(base or {}), **dict(self.values)}


_FAIR = (("eps", 8 / 255), ("eps_strong", 8 / 255), ("eps_weak", 4 / 255), ("eps_max", 8 / 255))
PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("table1", "Table 1", ("fgsm", "sgsm", "sd-fgsm", "sd-sgsm"),
           "Paper Table 1 (ablation) under the fair cap: one step, ε = 8/255; SD methods ε_strong = 8/255 on R, "
           "ε_weak = 4/255 elsewhere", _FAIR + (("steps", 1), ("alpha", None))),
    Preset("table1-paper", "Paper T1", ("fgsm", "sgsm", "sd-fgsm", "sd-sgsm"),
           "Paper Table 1 as its numbers imply: one step, ε = 8/255; SD methods ε_strong = 14/255 on R and "
           "ε_weak = 8/255 elsewhere (ε_max lifted to 14/255), patch scaled with the input (4 px at 32 px)",
           (("eps", 8 / 255), ("eps_strong", 14 / 255), ("eps_weak", 8 / 255), ("eps_max", 14 / 255),
            ("steps", 1), ("alpha", None), ("patch", None))),
    Preset("table2", "Table 2", ("pgd", "jitter", "cw", "deepfool", "fab", "apgd", "apgd-dlr", "autoattack",
                                 "sd-sgsm"),
           "Paper Table 2: T = 10, α = 4/255, ε = ε_max = 8/255; SD-SGSM ε_strong = 8/255, ε_weak = 4/255 (the "
           "paper's literal ε_g = ε_l = 4/255 is --eps-strong 4/255 --eps-weak 4/255)",
           _FAIR + (("steps", 10), ("alpha", 4 / 255))),
]}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.") from None


# ----------------------------------------------------------------------------- input-scaled default patch
def default_patch(side: int) -> int:
    """Default window side m for an image side (item 9): about side/14, a divisor of the side
    in [4, side/2] nearest to it on a log scale (224 -> 16, 32 -> 4, 299 -> 23); without such a
    divisor, round(side/14) (the last window is clamped inside the image)."""
    target = side / 14
    divisors = [d for d in range(4, side // 2 + 1) if side % d == 0]
    if not divisors:
        return max(1, min(side, round(target)))
    return min(divisors, key=lambda d: (abs(math.log(d / target)), -d))


# ----------------------------------------------------------------------------- CLI and README
def add_flags(parser: argparse.ArgumentParser, *, preset_defaults: bool = False,
              spec: Mapping[str, Param] | None = None) -> None:
    """One flag per parameter of ``spec`` (default :data:`PARAMS`). ``preset_defaults``: defaults are
    None so a preset can fill them."""
    for p in (PARAMS if spec is None else spec).values():
        kwargs = {"dest": p.name, "help": f"{p.help} [{_range_text(p)}; default {_default_text(p)}]"}
        if p.choices:
            kwargs["choices"] = p.choices
        else:
            kwargs["type"] = int if p.kind is int else parse_number
        parser.add_argument(p.flag, default=None if preset_defaults else p.default, **kwargs)


def values_from_args(args: argparse.Namespace, base: Mapping[str, object] | None = None,
                     spec: Mapping[str, Param] | None = None) -> dict:
    """Native values from parsed flags (of ``spec``, default :data:`PARAMS`): flags given (not None)
    override ``base``; checked here."""
    values = dict(base or {})
    for name, p in (PARAMS if spec is None else spec).items():
        given = getattr(args, name, None)
        if given is not None:
            values[name] = None if (p.auto and given == 0) else given
    for name, value in values.items():
        check(name, value, spec)
    return values


def _default_text(p: Param) -> str:
    if p.default is None:
        return f"auto: {p.auto}"
    if p.unit == "1/255":
        return f"{p.default * 255:g}/255"
    return str(p.default)


def markdown_table(spec: Mapping[str, Param] | None = None) -> str:
    """The README's parameter table of ``spec`` (default :data:`PARAMS`; a test keeps README.md equal to it)."""
    lines = ["| Parameter | CLI flag | Query / widget | Default | Range | Meaning |", "|---|---|---|---|---|---|"]
    for p in (PARAMS if spec is None else spec).values():
        unit = " (×1/255)" if p.unit else ""
        cells = [p.label, f"`{p.flag}`", f"`{p.name}`{unit}", _default_text(p), _range_text(p), p.help]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- input-transform defences
# A spec table of its own: these parameters feed sdsgsm.defences.DefenceConfig, never AttackConfig. Their
# CLI flags (``add_flags(..., spec=DEFENCE_PARAMS)``), widgets, query parsing and README table derive from it.
# sdsgsm.defences.DEFENCES, in order
DEFENCE_NAMES = ("none", "jpeg", "median", "gaussian", "bitdepth", "tvm", "resize")


def _defence(name: str, kind: type, default, label: str, help_: str, defence: str, **kw) -> Param:
    return Param(name, kind, default, label, help_, name, "defence", show_if=("defence", (defence,)), **kw)


DEFENCE_PARAMS: dict[str, Param] = {p.name: p for p in [
    _defence("jpeg_quality", int, 75, "JPEG quality", "quality of the JPEG round trip (Guo et al. 2018); lower "
             "removes more detail, and more of the clean signal", "jpeg", widget="select_slider", lo=1, hi=100,
             stops=(10, 20, 30, 50, 60, 75, 85, 90, 95)),
    _defence("median_window", int, 3, "Median window (px)", "side of the median filter's square window, per channel "
             "(Xu et al. 2018 spatial smoothing; odd)", "median", widget="select_slider", lo=1, hi=15,
             stops=(1, 3, 5, 7, 9, 11), odd=True),
    _defence("gaussian_sigma", float, 1.0, "Gaussian σ (px)", "standard deviation of the Gaussian blur, kernel width "
             "5σ (odd), replicate padding; differentiable, so attacked with its exact gradient", "gaussian",
             widget="select_slider", lo=0.1, hi=10.0, stops=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0)),
    _defence("bit_depth", int, 4, "Bit depth", "bits per colour channel kept by feature squeezing (Xu et al. 2018: "
             "4 on ImageNet, 5 on CIFAR-10, 1 on MNIST)", "bitdepth", widget="select_slider", lo=1, hi=8,
             stops=(1, 2, 3, 4, 5, 6, 7, 8)),
    _defence("tvm_prob", float, 0.3, "TVM keep probability", "share of pixels (Bernoulli mask, fixed seed 0) the "
             "total-variation minimisation must match (Guo et al. 2018)", "tvm", lo=0.01, hi=1.0, step=0.05),
    _defence("tvm_lamb", float, 0.5, "TVM λ", "weight of the total-variation term; larger is smoother", "tvm",
             lo=0.0, hi=10.0, step=0.1),
    _defence("tvm_iter", int, 10, "TVM iterations", "L-BFGS-B iterations per channel (ART's default 10); the cost "
             "grows with it", "tvm", lo=1, hi=100, step=1),
    _defence("resize_min", float, 0.9, "Resize: smallest scale s", "random resize-and-pad (Xie et al. ICLR 2018): "
             "each call resizes an H-px image to r px, r drawn uniformly from round(s·H) … H, and zero-pads it back "
             "to H px at a random offset (Xie et al.: 299 of 331 px, s ≈ 0.9)", "resize", lo=0.25, hi=1.0, step=0.05),
    _defence("resize_seed", int, 0, "Resize: seed", "seed of the random resize-and-pad draws: a defended model "
             "draws afresh on every call from a generator seeded with it, so a run is reproducible", "resize",
             lo=0, hi=2**31 - 1, step=1),
]}

# ----------------------------------------------------------------------------- feature-squeezing detection
# A spec table of its own: these parameters feed sdsgsm.detection.DetectionConfig (the squeezers' own settings are
# DEFENCE_PARAMS' bit_depth and median_window); the flags of ``python -m sdsgsm detect`` derive from it.
DETECTION_BITS = 5  # the bit depth of Xu et al.'s joint detector on ImageNet (the defence registry's default is 4)
DETECTION_PARAMS: dict[str, Param] = {p.name: p for p in [
    Param("fpr", float, 0.05, "False-positive rate", "the detector's threshold is the smallest score that flags at "
          "most this share of the clean images (Xu et al. NDSS 2018 use 0.05)", "fpr", "detection", lo=0.0, hi=0.5,
          step=0.01),
    Param("detect_lambda", float, 1.0, "Adaptive λ", "weight of the detector score in the adaptive attack's loss "
          "min(max_{j≠y} Z_j − Z_y, 0) − λ·score(x') (Carlini & Wagner, AISec 2017); 0 = the plain attack",
          "detect_lambda", "detection", lo=0.0, hi=1e6, step=0.5),
]}


# ----------------------------------------------------------------------------- transfer matrix
# A spec table of its own: these parameters feed sdsgsm.experiments.transfer.run_transfer only (flags of
# ``python -m sdsgsm transfer``).
TRANSFER_PARAMS: dict[str, Param] = {p.name: p for p in [
    Param("scale_linf", float, 0.0, "Scale to L∞ before transfer", "rescale every perturbation r = x_adv − x to this "
          "L∞ before the target models classify it, x + r·s/‖r‖∞ clipped to [0, 1] (SmoothFool, Dabouei et al. "
          "WACV 2020, Table 4: 16/255 for the minimum-norm attacks); 0 = off, the raw x_adv", "scale_linf",
          "transfer", unit="1/255", lo=0.0, hi=64 / 255, step=0.5),
]}


# ----------------------------------------------------------------------------- robust-training lab
# A spec table of its own: these parameters feed sdsgsm.experiments.lab.TrainConfig (group 'train', the flags of
# ``lab train``) and EvalConfig (group 'eval', the flags of ``lab eval``); their defaults, range checks, CLI flags,
# the Robust training page's widgets and link parsing and the README table derive from it. The shipped models
# (assets/lab) were trained with the 'train' defaults.
LAB_METHOD_NAMES = ("fgsm", "pgd", "sd-sgsm")  # sdsgsm.experiments.lab.LAB_METHODS (a test keeps them equal)


def _lab(name: str, kind: type, default, label: str, help_: str, group: str, **kw) -> Param:
    return Param(name, kind, default, label, help_, name, group, **kw)


LAB_PARAMS: dict[str, Param] = {p.name: p for p in [
    _lab("seed", int, 0, "Seed", "lab train: seed of the split, initialisation, shuffling and PGD starts", "train",
         lo=0, hi=2**31 - 1, step=1),
    _lab("test_size", float, 0.25, "Test share", "lab train: share of the stratified test split", "train",
         lo=0.05, hi=0.9, step=0.05),
    _lab("epochs", int, 20, "Epochs", "lab train: epochs of every model (teacher and student alike)", "train",
         lo=1, hi=200, step=1),
    _lab("batch_size", int, 64, "Batch size", "lab train: images per Adam step", "train", lo=1, hi=2048, step=1),
    _lab("lr", float, 1e-3, "Learning rate", "lab train: Adam's learning rate, every model", "train",
         lo=1e-6, hi=1.0, step=1e-4),
    _lab("temperature", float, 20.0, "Temperature T", "lab train: T of the teacher and of the student's soft labels "
         "(Papernot et al. 2016); the student is deployed at T = 1", "train", lo=1.0, hi=1000.0, step=1.0),
    _lab("train_eps", float, 0.1, "Training ε (FGSM/PGD-AT)", "lab train: L∞ budget of FGSM and PGD adversarial "
         "training (Goodfellow et al. 2015; Madry et al. 2018); may exceed the attacks' 32/255", "train",
         unit="1/255", lo=0.0, hi=1.0, step=0.5),
    _lab("pgd_steps", int, 7, "PGD-AT steps", "lab train: inner PGD steps of adversarial training, α = 2.5·ε/steps",
         "train", lo=1, hi=100, step=1),
    _lab("threads", int, 1, "Torch threads", "lab train: torch CPU threads of the training process (fixed for "
         "bit-identical weights)", "train", lo=1, hi=64, step=1),
    _lab("steps", int, 10, "Steps T (evaluation)", "lab eval: steps of PGD and SD-SGSM, α = 2.5·ε/T", "eval",
         lo=1, hi=1000, step=1),
    _lab("cw_steps", int, 50, "CW-L2 iterations", "lab eval: iterations of CW-L2 (Carlini & Wagner 2017)", "eval",
         lo=1, hi=1000, step=1),
    _lab("cw_limit", int, 50, "CW-L2 digits", "lab eval: CW-L2 runs on the first N test digits", "eval",
         lo=1, hi=1797, step=1),
    _lab("limit", int, None, "Test digits", "lab eval: use the first N test digits", "eval", lo=1, hi=1797, step=1,
         auto="all test digits"),
]}

# The Robust training page's example row (clean and attacked digits): page-only view settings, not lab settings.
LAB_VIEW_PARAMS: dict[str, Param] = {p.name: p for p in [
    _lab("xmethod", str, "fgsm", "Attack", "attack of the example digits", "view", widget="select",
         choices=LAB_METHOD_NAMES),
    _lab("xeps", float, 16 / 255, "ε", "L∞ budget of the example digits' attack", "view", widget="slider",
         unit="1/255", lo=0.0, hi=32 / 255, step=4.0),
]}


# The lab's stronger experiments (``lab table``, ``lab certify``; the ALP and ensemble-AT models of ``lab train``):
# a table of their own, so the lab's ε may reach 0.3 on the [0, 1] digits without lifting the app's ε sliders
# (PARAMS, 0 … 32/255). Each CLI flag of these commands derives from one entry here.
LAB_EPS_MAX = 0.3  # the lab's own ε cap: the "30 % noise" of the distillation claim of arXiv:2312.16880 (MNIST)
LAB_ROBUST_PARAMS: dict[str, Param] = {p.name: p for p in [
    _lab("alp_weight", float, 0.5, "ALP weight λ", "lab train: weight λ of the logit-pairing term "
         "λ·‖z(x) − z(x̃)‖₂² (Kannan, Kurakin & Goodfellow 2018)", "robust_train", lo=0.0, hi=100.0, step=0.1),
    _lab("table_eps", float, 0.1, "ε (lab table)", "lab table: an L∞ budget on the [0, 1] scale; --eps takes a "
         "comma-separated list", "table", lo=0.0, hi=LAB_EPS_MAX, step=0.05),
    _lab("table_steps", int, 20, "PGD steps (lab table)", "lab table: steps of the PGD used by the masking check, "
         "α = 2.5·ε/steps", "table", lo=1, hi=1000, step=1),
    _lab("restarts", int, 10, "PGD restarts", "lab table: random restarts of the masking check's strong PGD "
         "(Engstrom, Ilyas & Athalye 2018)", "table", lo=1, hi=100, step=1),
    _lab("sigma", float, 0.25, "Noise σ", "lab certify: standard deviation of the Gaussian noise (training and "
         "smoothing, Cohen, Rosenfeld & Kolter 2019); --sigmas takes a comma-separated list", "certify",
         lo=0.01, hi=2.0, step=0.01),
    _lab("n0", int, 100, "n₀ (selection samples)", "lab certify: noise samples that pick the top class ĉ_A",
         "certify", lo=1, hi=100000, step=1),
    _lab("n", int, 1000, "n (estimation samples)", "lab certify: noise samples that bound p_A (the paper uses "
         "100,000)", "certify", lo=1, hi=1000000, step=1),
    _lab("alpha", float, 0.001, "α (failure probability)", "lab certify: a certificate or prediction is wrong with "
         "probability at most α", "certify", lo=1e-9, hi=0.5, step=0.001),
    _lab("cert_limit", int, 200, "Certified digits", "lab certify: certify the first N test digits", "certify",
         lo=1, hi=1797, step=1),
    _lab("attack_steps", int, 20, "PGD-L2 steps", "lab certify: steps of the PGD-L2 attack on the smoothed "
         "classifier", "certify", lo=1, hi=1000, step=1),
    _lab("attack_noise", int, 16, "Noise samples per step", "lab certify: Gaussian samples averaged in each "
         "PGD-L2 gradient (Salman et al. 2019)", "certify", lo=1, hi=1000, step=1),
]}

# ----------------------------------------------------------------------------- adversarial-patch training
# ``python -m sdsgsm train-patch`` (sdsgsm.experiments.patch_train.PatchTraining). ``size`` is one patch side; the
# command's ``--sizes`` takes a comma-separated list of them (a Param holds one number), each checked against it.
PATCH_TRAIN_PARAMS: dict[str, Param] = {p.name: p for p in [
    Param("size", int, 48, "Patch side (px)", "side of the square patch (Brown et al. 2017); --sizes takes a "
          "comma-separated list", "size", "patch_train", lo=1, hi=1024, step=1),
    Param("steps", int, 30, "ART iterations", "iterations of ART's AdversarialPatchPyTorch, each a pass over the "
          "training images (each image drawn 'repeats' times)", "steps", "patch_train", lo=1, hi=100000, step=1),
    Param("seed", int, 0, "Seed", "seed of numpy / torch (ART's random placements)", "seed", "patch_train",
          lo=0, hi=2**31 - 1, step=1),
    Param("batch_size", int, 8, "Batch size", "images per optimisation step", "batch_size", "patch_train",
          lo=1, hi=4096, step=1),
    Param("target", int, 859, "Target class", "target class index (859: ImageNet 'toaster')", "target",
          "patch_train", lo=0, hi=99999, step=1),
    Param("learning_rate", float, 0.03, "Learning rate", "Adam's step on the patch pixels in [0, 1]", "learning_rate",
          "patch_train", lo=1e-5, hi=10.0, step=0.01),
    Param("repeats", int, 4, "Draws per image", "copies of each training image per iteration, each with its own "
          "random position, rotation and scale (more optimisation steps per pass)", "repeats", "patch_train",
          lo=1, hi=1000, step=1),
]}
