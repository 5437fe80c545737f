"""Evaluation metrics (paper §4.2): one registry, one aggregator; perturbation aids (Fig. 5/6).

ASR is the share of evaluated samples whose predicted label changes; by default only
clean-correct samples are evaluated (``ASR_CRITERION``). L2 and L∞ are taken over all
C·H·W values of x_adv − x on the [0, 1] scale; SSIM is scikit-image's
``structural_similarity(data_range=1.0, channel_axis=-1)``. Times are per sample: a batch's
synchronised seconds divided by its size; total time = zero-out scan + attack.

Every metric is one :class:`Metric` entry of :data:`METRICS` (key, label, unit, digits,
better direction, per-sample function, display scale, …); :func:`per_sample_metrics`,
:func:`summarise`, the tables (``sdsgsm.render.tables``) and the charts (``sdsgsm.render.viz``) all read
the registry, so adding a metric is one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from skimage.metrics import structural_similarity

from sdsgsm.smoothing import roughness, roughness_normalised

ASR_CRITERION = {
    "clean_correct": "ASR over clean-correct samples (clean prediction = label); success = prediction changes",
    "all": "ASR over all samples; success = prediction differs from the clean prediction",
}


# ----------------------------------------------------------------------------- per-sample functions
def l2_norms(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """Per-sample ‖x_adv − x‖₂ over C·H·W values (§4.2): (N,) float64."""
    return torch.linalg.vector_norm((x_adv - x).flatten(1).double(), dim=1).cpu().numpy()


def linf_norms(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """Per-sample ‖x_adv − x‖∞ (§4.2): (N,) float64."""
    return (x_adv - x).flatten(1).abs().amax(1).double().cpu().numpy()


def ssim_scores(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """Per-sample SSIM (§4.2; scikit-image, data_range 1, channel_axis −1): (N,) float64.

    Images smaller than 7 px use the largest odd window that fits.
    """
    a = x.detach().permute(0, 2, 3, 1).double().cpu().numpy()  # (N, H, W, C)
    b = x_adv.detach().permute(0, 2, 3, 1).double().cpu().numpy()
    win = min(7, *(s if s % 2 else s - 1 for s in a.shape[1:3]))
    return np.array([structural_similarity(p, q, data_range=1.0, channel_axis=-1, win_size=win)
                     for p, q in zip(a, b)])


def success_mask(clean_pred, adv_pred, y, criterion: str = "clean_correct") -> tuple[np.ndarray, np.ndarray]:
    """(evaluated, success) boolean arrays (N,) for the ASR criterion (§4.2)."""
    clean_pred, adv_pred, y = (np.asarray(torch.as_tensor(t).cpu()) for t in (clean_pred, adv_pred, y))
    if criterion not in ASR_CRITERION:
        raise ValueError(f"Unknown ASR criterion {criterion!r}; choose one of {', '.join(ASR_CRITERION)}.")
    evaluated = clean_pred == y if criterion == "clean_correct" else np.ones_like(y, dtype=bool)
    return evaluated, adv_pred != clean_pred


def _success(x: torch.Tensor, result) -> np.ndarray:
    return success_mask(result.clean_pred, result.adv_pred, result.y)[1]


def _success_8bit(x: torch.Tensor, result) -> np.ndarray:
    """(N,) success of the 8-bit image (x_adv_8bit, what a saved PNG holds); NaN where a result has none."""
    pred8 = getattr(result, "adv_pred_8bit", None)
    if pred8 is None:
        return np.full(len(x), math.nan)
    return success_mask(result.clean_pred, pred8, result.y)[1]


def _adv_correct(x: torch.Tensor, result) -> np.ndarray:
    """(N,) bool: the adversarial prediction still equals the attacked label (accuracy under attack)."""
    return (result.adv_pred == result.y.to(result.adv_pred.device)).cpu().numpy()


def _on_adv(fn: Callable[[torch.Tensor, torch.Tensor], np.ndarray]) -> Callable[[torch.Tensor, Any], np.ndarray]:
    """Lift an (x, x_adv) -> (N,) function to the registry's (x, result) -> (N,) form."""
    return lambda x, result: fn(x, result.x_adv)


def _rough(fn) -> Callable[[torch.Tensor, Any], np.ndarray]:
    """(x, result) -> (N,): a roughness function of the perturbation r = x_adv − x (SmoothFool eq. 4)."""
    return lambda x, result: fn(result.x_adv.detach() - x.detach()).cpu().numpy()


def _seconds(attr: str) -> Callable[[torch.Tensor, Any], np.ndarray]:
    """(x, result) -> (N,): the batch's ``result.<attr>`` seconds divided by the batch size."""
    return lambda x, result: np.full(len(x), float(getattr(result, attr, 0.0)) / len(x))


def _queries(x: torch.Tensor, result) -> np.ndarray:
    """(N,) model queries a black-box attack asked per sample (``result.queries``); NaN for the white-box methods."""
    q = getattr(result, "queries", None)
    return np.full(len(x), math.nan) if q is None else q.detach().cpu().numpy().astype(np.float64)


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Metric:
    """One metric of paper §4.2 (or a later one): how to measure, aggregate and show it.

    key: summary prefix (``<key>_mean``/``<key>_std``; a ``rate`` metric's summary key is the key
    itself, e.g. ``asr``). column: the per-sample column (default: key). label/unit/digits: display
    text, unit after ``scale`` ('%', 's', '×1/255' or ''), decimals. better: 'higher' | 'lower'.
    per_sample: (x (N, 3, H, W), AttackResult) -> (N,) values. over: 'evaluated' (samples of the ASR
    criterion), 'attacked' (all samples, e.g. time, which is spent on all of them) or 'successful'
    (evaluated samples whose attack succeeded, SmoothFool's D_s for the roughness). rate: a share
    (mean only, no std). show_std: tables print mean ± std. track_max: also ``<key>_max``.
    in_radar: on the radar/bar charts; in_paper: a column of the paper tables (results.md/.tex).
    latex: TeX label (default: the label). note: the caption sentence defining the metric.
    """

    key: str
    label: str
    unit: str
    digits: int
    better: str
    per_sample: Callable[[torch.Tensor, Any], np.ndarray]
    scale: float = 1.0
    column: str | None = None
    over: str = "evaluated"
    rate: bool = False
    show_std: bool = True
    track_max: bool = False
    in_radar: bool = True
    in_paper: bool = True
    latex: str | None = None
    note: str = ""

    def __post_init__(self):
        if self.better not in ("higher", "lower") or self.over not in ("evaluated", "attacked", "successful"):
            raise ValueError(f"Metric {self.key}: better must be higher|lower and over evaluated|attacked|successful.")

    @property
    def source(self) -> str:
        """The per-sample column (per_sample.csv, result.json 'metrics', metrics.csv)."""
        return self.column or self.key

    @property
    def higher(self) -> bool:
        return self.better == "higher"

    @property
    def mean_key(self) -> str:
        return self.key if self.rate else f"{self.key}_mean"

    @property
    def std_key(self) -> str | None:
        return None if self.rate else f"{self.key}_std"

    @property
    def summary_keys(self) -> list[str]:
        """This metric's keys in :func:`summarise`'s result, in order."""
        extra = [f"{self.key}_max"] if self.track_max else []
        return [self.mean_key, *([self.std_key] if self.std_key else []), *extra]

    @property
    def header(self) -> str:
        """Column header with the unit, e.g. 'ASR (%)', 'Total time (s)', 'SSIM'."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def tex_header(self) -> str:
        """The header in TeX, e.g. 'ASR (\\%)', '$L_2$ Norm'."""
        label, unit = self.latex or self.label, self.unit.replace("%", r"\%").replace("×", r"$\times$")
        return f"{label} ({unit})" if unit else label


_TIME = "wall seconds per attacked sample (batch seconds / batch size, device synchronised)"
METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("asr", "ASR", "%", 1, "higher", _success, scale=100.0, column="success", rate=True, show_std=False,
           note="ASR: share of the evaluated samples whose prediction changes"),
    Metric("asr_8bit", "ASR 8-bit", "%", 1, "higher", _success_8bit, scale=100.0, column="success_8bit", rate=True,
           show_std=False, in_radar=False, latex="ASR 8-bit",
           note="ASR 8-bit: the same share for the image saved as 8-bit PNG (round(x_adv·255)/255; minimum-norm "
                "methods after their quantisation-aware finish)"),
    Metric("l2", "L2 Norm", "", 3, "lower", _on_adv(l2_norms), latex="$L_2$ Norm",
           note="L2 and L∞ of x_adv − x over all C·H·W values (L2 on the [0, 1] pixel scale)"),
    Metric("linf", "L∞ Norm", "×1/255", 2, "lower", _on_adv(linf_norms), scale=255.0, track_max=True,
           latex=r"$L_\infty$ Norm", note="L∞ in 1/255 units (as ε)"),
    Metric("ssim", "SSIM", "", 4, "higher", _on_adv(ssim_scores), note="SSIM: scikit-image, data_range 1"),
    Metric("time_s", "Total time", "s", 3, "lower", _seconds("time_s"), over="attacked", show_std=False,
           note=f"Total time = zero-out scan + attack, {_TIME}"),
    Metric("scan_time_s", "Scan time", "s", 3, "lower", _seconds("scan_time_s"), over="attacked",
           show_std=False, in_radar=False, in_paper=False,
           note="Scan time: the zero-out scan's share (0 for non-spatial methods; a cached scan still counts)"),
    Metric("attack_time_s", "Attack time", "s", 3, "lower", _seconds("attack_time_s"), over="attacked",
           show_std=False, in_radar=False, in_paper=False, note="Attack time: the attack without the scan"),
    Metric("finish_time_s", "8-bit time", "s", 4, "lower", _seconds("finish_time_s"), over="attacked",
           show_std=False, in_radar=False, in_paper=False,
           note="8-bit time: rounding to the 8-bit grid, its check and the minimum-norm finish (not in Total time)"),
    Metric("roughness", "Ω", "", 3, "lower", _rough(roughness), over="successful", in_radar=False,
           latex=r"$\Omega$", note="Ω = ‖r − r∗h‖₂² (SmoothFool eq. 4, h Gaussian σ_h = 1, r = x_adv − x)"),
    Metric("roughness_n", "Ω_n ×1e3", "", 1, "lower", _rough(roughness_normalised), scale=1e3, over="successful",
           in_radar=False, latex=r"$\Omega_n\times10^3$",
           note="Ω_n = Ω/‖r‖₂² (share of high-frequency power), both over the successful samples"),
    Metric("acc_adv", "Accuracy under attack", "%", 1, "lower", _adv_correct, scale=100.0, column="adv_correct",
           rate=True, show_std=False, in_radar=False, in_paper=False,
           note="Accuracy under attack: share of the evaluated samples whose adversarial prediction is the label"),
    Metric("queries", "Queries", "", 0, "lower", _queries, over="successful", in_radar=False, in_paper=False,
           note="Queries: model queries (forward passes of one image) a black-box attack asked until its first "
                "success, mean over the successful samples; blank for white-box methods"),
)}


def format_metric(key: str, value: float | None, *, unit: bool = True) -> str:
    """The one on-screen form of a metric value (tables, charts, the Explorer): ``value`` (a summary or
    per-sample value, native units) times the registry's display scale at its digits, with its unit
    ('%' and 's' after a space; '×1/255' as '/255' attached, like
    :func:`sdsgsm.params.format_budget`); '–' for None/NaN. The header that goes with it is
    ``METRICS[key].header`` (e.g. 'L∞ Norm (×1/255)', 'Ω_n ×1e3').

    ``format_metric('asr', 0.9)`` -> '90.0 %'; ``format_metric('linf', 8 / 255)`` -> '8.00/255';
    ``format_metric('roughness_n', 0.0123)`` -> '12.3'.
    """
    m = METRICS[key]
    if value is None or not math.isfinite(float(value)):
        return "–"
    text = f"{float(value) * m.scale:.{m.digits}f}"
    if not unit or not m.unit:
        return text
    return f"{text}/255" if m.unit == "×1/255" else f"{text} {m.unit}"


def metric_list(which: str = "all") -> list[Metric]:
    """Registry entries in order: 'all', 'paper' (paper-table columns) or 'radar' (chart axes)."""
    pick = {"all": lambda m: True, "paper": lambda m: m.in_paper, "radar": lambda m: m.in_radar}[which]
    return [m for m in METRICS.values() if pick(m)]


def summary_keys() -> list[str]:
    """Every key :func:`summarise` returns, in order: n, n_attacked, then each metric's keys."""
    return ["n", "n_attacked", *(k for m in METRICS.values() for k in m.summary_keys)]


# ----------------------------------------------------------------------------- measure and aggregate
def per_sample_metrics(x: torch.Tensor, result, criterion: str = "clean_correct") -> pd.DataFrame:
    """One row per sample (§4.2): 'evaluated' (the ASR criterion) and one column per registry metric.

    Args: x (N, 3, H, W) clean images in [0, 1]; result an AttackResult of x (x_adv, logits, y,
    scan_time_s/attack_time_s/time_s batch seconds); criterion a key of ``ASR_CRITERION``.
    Returns a DataFrame of N rows: evaluated, success, l2, linf, ssim, time_s, scan_time_s, attack_time_s, ….
    """
    evaluated, _ = success_mask(result.clean_pred, result.adv_pred, result.y, criterion)
    cols = {"evaluated": evaluated}
    for m in METRICS.values():
        cols[m.source] = np.asarray(m.per_sample(x, result))
    return pd.DataFrame(cols)


def _stats(m: Metric, values: np.ndarray) -> dict:
    """mean (and population std, max) of one metric's values; NaN for each when there are none."""
    keys = m.summary_keys
    if not len(values):
        return dict.fromkeys(keys, math.nan)
    stats = {m.mean_key: values.mean(), m.std_key: values.std(), f"{m.key}_max": values.max()}
    return {k: float(stats[k]) for k in keys}


def summarise(per_sample: pd.DataFrame | Iterable[dict]) -> dict:
    """The one aggregator of per-sample metrics (paper §4.2, mean ± std), for every table and chart.

    Args: per_sample a DataFrame with an 'evaluated' column and the registry's per-sample columns
    (per_sample.csv rows, :func:`per_sample_metrics`), or a list of single-image result.json
    'metrics' dicts. Returns {'n': evaluated samples, 'n_attacked': all rows, then per metric
    ``asr`` or ``<key>_mean``/``<key>_std`` (population std, ddof=0) and ``linf_max``}.

    Rules, the same everywhere:
    * **No sample evaluated**: ASR and every statistic of an 'evaluated' metric (L2, L∞, SSIM,
      linf_max) are NaN — never a fall-back to the non-evaluated samples.
    * **Time** (scan, attack, total): mean over *all attacked* rows, evaluated or not, since time
      is spent on every one of them; NaN only when there are no rows.
    * **Roughness** (Ω, Ω_n): over the evaluated samples whose attack succeeded (SmoothFool's D_s).
    * A registry column missing from the input gives NaN for that metric.
    """
    df = per_sample if isinstance(per_sample, pd.DataFrame) else pd.DataFrame(list(per_sample))
    evaluated = df["evaluated"].to_numpy(bool) if len(df) else np.zeros(0, bool)
    out = {"n": int(evaluated.sum()), "n_attacked": len(df)}
    for m in METRICS.values():
        values = df[m.source].to_numpy(np.float64) if m.source in df else np.full(len(df), math.nan)
        if m.over == "successful":
            ok = df["success"].to_numpy(bool) if "success" in df else np.zeros(len(df), bool)
            values = values[evaluated & ok]
        elif m.over == "evaluated":
            values = values[evaluated]
        out.update(_stats(m, values))
    return out


def _json_value(v):
    return bool(v) if isinstance(v, (bool, np.bool_)) else float(v)


@dataclass(frozen=True)
class Metrics:
    """Per-sample metrics of one attack run (§4.2) and the ASR criterion they were taken under.

    per_sample: N rows, 'evaluated' plus one column per registry metric (:func:`per_sample_metrics`).
    """

    per_sample: pd.DataFrame
    criterion: str

    def summary(self) -> dict:
        """:func:`summarise` of the rows plus the criterion text."""
        return {**summarise(self.per_sample), "criterion": ASR_CRITERION[self.criterion]}

    def sample(self, i: int = 0) -> dict:
        """JSON-ready metrics of sample i (result.json 'metrics'): evaluated, criterion, registry columns."""
        row = self.per_sample.iloc[i]
        return {"evaluated": bool(row["evaluated"]), "criterion": ASR_CRITERION[self.criterion],
                **{m.source: _json_value(row[m.source]) for m in METRICS.values()}}


def evaluate(x: torch.Tensor, result, criterion: str = "clean_correct") -> Metrics:
    """All registry metrics of an AttackResult against clean images x (N, 3, H, W) (§4.2)."""
    return Metrics(per_sample_metrics(x, result, criterion), criterion)


def aggregate(method: str, runs: Iterable[dict]) -> dict:
    """{'method': method, **summarise(runs)} over single-image result.json 'metrics' dicts."""
    return {"method": method, **summarise(runs)}


# ----------------------------------------------------------------------------- visual aids
def amplify(x: torch.Tensor, x_adv: torch.Tensor, factor: float = 5.0) -> torch.Tensor:
    """Perturbation shown amplified: clip(0.5 + factor·(x_adv − x), 0, 1), shape of x (Fig. 5/6)."""
    return torch.clamp(0.5 + factor * (x_adv - x), 0.0, 1.0)


def top_tiles(x: torch.Tensor, x_adv: torch.Tensor, boxes: torch.Tensor, k: int = 3) -> torch.Tensor:
    """The k windows with the largest mean |δ| per sample (yellow boxes of Fig. 5/6).

    Args: boxes (P, 4) windows (top, left, h, w). Returns (N, k, 4) int64 boxes.
    """
    mag = (x_adv - x).abs().mean(1)  # (N, H, W)
    energy = torch.stack([mag[:, t:t + h, c:c + w].mean((1, 2)) for t, c, h, w in boxes.tolist()], 1)
    idx = energy.topk(min(k, len(boxes)), dim=1).indices  # (N, k)
    return boxes.to(idx.device)[idx]
