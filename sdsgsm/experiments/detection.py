"""Feature-squeezing detection on a set of images: threshold, detection rate per attack, the adaptive attack.

Xu, Evans & Qi (NDSS 2018) detect adversarial images by the joint L1 distance between the model's softmax on
x and on squeezed copies of x (:mod:`sdsgsm.detection`). This experiment

1. scores every clean image and sets the threshold t at the stated false-positive rate on them (so the
   realised FPR on these images is at most the stated one; with N images it moves in steps of 1/N);
2. runs every registered ``method`` on the bare model (non-adaptive: the attacker ignores the detector)
   and the adaptive attack of Carlini & Wagner (AISec 2017) — PGD on min(margin, 0) − λ·score with BPDA through the
   squeezers — plus the same loop with λ = 0 (the detector ignored) as its like-for-like baseline;
3. reports per attack: ASR, the detection rate (the share of *successful* adversarial images the detector
   flags, as Xu et al. report it), the evasion rate (misclassified and not flagged, over the clean-correct
   images: what the attacker achieves against model + detector) and the ROC AUC of clean vs successful
   adversarial scores.

Samples: the ASR, detection and evasion rates are over the images the model classifies correctly when clean
(labels: the true label where known, else the clean prediction). The threshold is set on all N clean images,
the same images the attacks start from — a teaching-sized, in-sample estimate, stated in the output.

``run_detection`` is pure (no streamlit, no files) and takes plain arguments, so a page can call it;
``detection_files`` turns its result into {file name: bytes}.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks import AttackConfig, AttackResult, config_values
from sdsgsm.attacks.base import join_results
from sdsgsm.defences import params_text
from sdsgsm.detection import ADAPTIVE_NAME, DetectionConfig, adaptive_attack, flagged, scores, threshold_at
from sdsgsm.experiments.defence_grid import attack_batches, grid_labels
from sdsgsm.experiments.runner import ExperimentResult, package_versions, parse_methods, result_files, warm_up

BASELINE_NAME = f"{ADAPTIVE_NAME} (λ = 0)"
CRITERION = ("ASR, detection and evasion rates over the images the model classifies correctly when clean; "
             "detection rate = flagged / successful adversarial images; evasion rate = misclassified and not "
             "flagged / clean-correct images; the threshold is set on all clean images at the stated FPR (in-sample)")


@dataclass
class DetectionResult(ExperimentResult):
    """summary: one row per attack (method, mode, n, asr, n_success, detection_rate, evasion_rate, auc,
    score_mean); per_sample: one row per (attack, image) with clean and adversarial scores; config: the
    threshold, the realised clean FPR, every parameter, versions. ``clean_scores`` (N,) numpy."""

    clean_scores: np.ndarray | None = None

    def table(self) -> pd.DataFrame:
        """Rates in %, for display: attack, mode, n, ASR, detection rate, evasion rate, AUC."""
        df = self.summary
        return pd.DataFrame({"attack": df["method"], "mode": df["mode"], "n": df["n"],
                             "ASR (%)": df["asr"] * 100, "detection rate (%)": df["detection_rate"] * 100,
                             "evasion rate (%)": df["evasion_rate"] * 100, "ROC AUC": df["auc"]})

    def markdown(self) -> str:
        c = self.config
        head = ("| attack | mode | n | ASR (%) | detected (%) | evaded (%) | ROC AUC |\n"
                "|---|---|---|---|---|---|---|\n")
        fmt = lambda v, s=100.0, f=".1f": "–" if pd.isna(v) else f"{v * s:{f}}"  # noqa: E731
        lines = [f"| {r.method} | {r.mode} | {r.n} | {fmt(r.asr)} | {fmt(r.detection_rate)} | "
                 f"{fmt(r.evasion_rate)} | {fmt(r.auc, 1.0, '.3f')} |" for r in self.summary.itertuples()]
        return (head + "\n".join(lines) + f"\n\nSqueezers {', '.join(c['squeezer_text'])}; threshold "
                f"{c['threshold']:.4f} at FPR ≤ {c['fpr'] * 100:g} % (realised {c['clean_fpr'] * 100:.1f} % on "
                f"{c['n_total']} clean images); adaptive λ = {c['detect_lambda']:g}. {CRITERION}.\n")


def _auc(clean: np.ndarray, adv: np.ndarray) -> float:
    """ROC AUC of clean (negative) vs adversarial (positive) scores; NaN without both classes."""
    from sklearn.metrics import roc_auc_score

    if not len(clean) or not len(adv):
        return float("nan")
    return float(roc_auc_score(np.r_[np.zeros(len(clean)), np.ones(len(adv))], np.r_[clean, adv]))


def _rows(method: str, mode: str, res: AttackResult, adv_scores: torch.Tensor, clean_scores: torch.Tensor,
          threshold: float, y: torch.Tensor, keys: list[str]) -> tuple[dict, pd.DataFrame]:
    correct = (res.clean_pred == y).cpu()
    success = (res.adv_pred != y).cpu() & correct
    flag = flagged(adv_scores.cpu(), threshold)
    n, n_success = int(correct.sum()), int(success.sum())
    row = {"method": method, "mode": mode, "n": n, "n_total": len(y), "asr": n_success / n if n else np.nan,
           "n_success": n_success, "detection_rate": float((flag & success).sum()) / n_success if n_success else
           np.nan, "evasion_rate": float((success & ~flag).sum()) / n if n else np.nan,
           "auc": _auc(clean_scores.cpu().numpy(), adv_scores.cpu()[success].numpy()),
           "score_mean": float(adv_scores.cpu()[success].mean()) if n_success else np.nan}
    per = pd.DataFrame({"method": method, "mode": mode, "index": np.arange(len(y)), "key": keys,
                        "label": y.cpu().numpy(), "clean_pred": res.clean_pred.cpu().numpy(),
                        "adv_pred": res.adv_pred.cpu().numpy(), "clean_correct": correct.numpy(),
                        "success": success.numpy(), "clean_score": clean_scores.cpu().numpy(),
                        "adv_score": adv_scores.cpu().numpy(), "flagged": flag.numpy()})
    return row, per


def run_detection(model, x: torch.Tensor, y: torch.Tensor | None, methods: Sequence[str] | str, cfg: AttackConfig,
                  det: DetectionConfig | None = None, *, batch_size: int = 8, baseline: bool = True,
                  progress: Callable[[str, int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, keys: Sequence[str] | None = None,
                  data: str = "") -> DetectionResult:
    """Feature-squeezing detection of every ``method`` and of the adaptive attack (module docstring).

    Args: model a Classifier; x (N, 3, H, W) in [0, 1]; y (N,) labels or None (−1 = unknown: the clean
    prediction); methods registry names (non-adaptive, crafted on the bare model); cfg the AttackConfig of
    every attack, the adaptive one included (its ε, T, α); det the detector (squeezers, FPR, λ, squeezer
    parameters); batch_size images per call; baseline also run the adaptive loop with λ = 0;
    progress(text, done, total) after each attack; should_stop polled before each (True ends the run
    with the finished rows); keys N sample names; data the data-set name. Returns a :class:`DetectionResult`.
    """
    methods = parse_methods(methods)
    det = det or DetectionConfig()
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"Batch size must be a positive integer (got {batch_size!r}).")
    t0 = time.perf_counter()
    x = x.detach().float().to(model.device)
    y_used, source = grid_labels(model, x, y, batch_size)
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    warm_up(model, x[:1], methods[0], False)
    clean_scores = scores(model, x, det, batch_size)
    threshold = threshold_at(clean_scores, det.fpr)
    plan: list[tuple[str, str, Callable[[], AttackResult]]] = [
        (m, "non-adaptive", lambda m=m: attack_batches(model, x, y_used, m, cfg, batch_size)) for m in methods]

    def adaptive(d: DetectionConfig) -> AttackResult:
        parts = [adaptive_attack(model, x[i:i + batch_size], y_used[i:i + batch_size], cfg, d, threshold)
                 for i in range(0, len(x), batch_size)]
        return parts[0] if len(parts) == 1 else join_results(parts)

    if baseline:
        plan.append((BASELINE_NAME, "non-adaptive", lambda: adaptive(replace(det, detect_lambda=0.0))))
    plan.append((ADAPTIVE_NAME, "adaptive", lambda: adaptive(det)))
    rows, parts, stopped, seconds = [], [], False, {}
    for k, (name, mode, run) in enumerate(plan):
        if should_stop is not None and should_stop():
            stopped = True
            break
        t = time.perf_counter()
        res = run()
        row, per = _rows(name, mode, res, scores(model, res.x_adv, det, batch_size), clean_scores, threshold,
                         y_used, keys)
        seconds[name] = time.perf_counter() - t
        rows.append({**row, "seconds": seconds[name]})
        parts.append(per)
        if progress is not None:
            progress(f"{name} ({mode})", k + 1, len(plan))
    dcfg = det.defence
    config = {"experiment": "feature-squeezing detection", "methods": methods, "squeezers": list(det.squeezers),
              "squeezer_text": [f"{s} ({params_text(s, dcfg)})" for s in det.squeezers],
              "squeezer_params": {s: dcfg.params_of(s) for s in det.squeezers}, "fpr": det.fpr,
              "detect_lambda": det.detect_lambda, "threshold": threshold,
              "clean_fpr": float(flagged(clean_scores, threshold).float().mean()),
              "score": "max_i ||softmax(f(x)) - softmax(f(T_i(x)))||_1 (Xu et al. 2018)",
              "adaptive": "PGD (no random start) on min(C&W margin, 0) - lambda * score, BPDA (identity backward) "
                          "through the squeezers (Carlini & Wagner 2017; Athalye et al. 2018); per image the last "
                          "iterate that is misclassified and not flagged, else the final one",
              "parameters": config_values(cfg), "criterion_text": CRITERION, "label_source": source,
              "model": getattr(model, "name", type(model).__name__), "data": data, "n_total": len(x), "keys": keys,
              "batch_size": batch_size, "seconds": seconds, "stopped_early": stopped,
              "wall_time_s": time.perf_counter() - t0, "device": str(x.device), "versions": package_versions()}
    return DetectionResult(pd.DataFrame(rows), pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(),
                           config, stopped, clean_scores.cpu().numpy())


def roc_curves(result: DetectionResult) -> list[dict]:
    """One ROC per attack: {name, fpr, tpr (numpy), auc, point (fpr, tpr) at the threshold}; negatives the
    clean scores of all images, positives the scores of that attack's successful adversarial images."""
    from sklearn.metrics import roc_curve

    clean, t = result.clean_scores, result.config["threshold"]
    out = []
    for (name, mode), part in result.per_sample.groupby(["method", "mode"], sort=False):
        adv = part.loc[part["success"].astype(bool), "adv_score"].to_numpy()
        if not len(adv):
            continue
        labels, values = np.r_[np.zeros(len(clean)), np.ones(len(adv))], np.r_[clean, adv]
        fpr, tpr, _ = roc_curve(labels, values, drop_intermediate=False)
        out.append({"name": f"{name} ({mode})", "fpr": fpr, "tpr": tpr, "auc": _auc(clean, adv),
                    "point": (float((clean > t).mean()), float((adv > t).mean()))})
    return out


def roc_figure(result: DetectionResult):
    """The print figure: ROC curves per attack with the operating point (:func:`sdsgsm.render.detection.roc_figure`)."""
    from sdsgsm.render import detection, figures

    return figures.build(detection.roc_figure, roc_curves(result), result.config["fpr"],
                         title=f"{result.config['model']}: feature-squeezing detector")


def detection_files(result: DetectionResult, stem: str = "detection") -> dict[str, bytes]:
    """{stem}.csv (one row per attack), {stem}_per_sample.csv, {stem}.json and the ROC figure
    {stem}_roc.pdf/.png/.svg/.json, as {name: bytes} for ``write_files`` and the app's downloads."""
    from sdsgsm.render import figures

    files = result_files(result, stem)
    info = {k: v for k, v in result.config.items() if k not in ("versions", "keys")}
    return files | figures.figure_files(roc_figure(result), f"{stem}_roc", info, "detection")


__all__ = ["BASELINE_NAME", "CRITERION", "DetectionResult", "detection_files", "roc_curves", "roc_figure",
           "run_detection"]
