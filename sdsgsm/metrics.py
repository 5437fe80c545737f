"""Evaluation metrics (paper §4.2) and perturbation visual aids (Fig. 5/6).

ASR is the share of evaluated samples whose predicted label changes; by default only
clean-correct samples are evaluated (``ASR_CRITERION``). L2 and L∞ are taken over all
C·H·W values of x_adv − x on the [0, 1] scale; SSIM is scikit-image's
``structural_similarity(data_range=1.0, channel_axis=-1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import structural_similarity

ASR_CRITERION = {
    "clean_correct": "ASR over clean-correct samples (clean prediction = label); success = prediction changes",
    "all": "ASR over all samples; success = prediction differs from the clean prediction",
}


def l2_norms(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """Per-sample ‖x_adv − x‖₂ over C·H·W values: (N,) float64."""
    return torch.linalg.vector_norm((x_adv - x).flatten(1).double(), dim=1).cpu().numpy()


def linf_norms(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """Per-sample ‖x_adv − x‖∞: (N,) float64."""
    return (x_adv - x).flatten(1).abs().amax(1).double().cpu().numpy()


def ssim_scores(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """Per-sample SSIM (scikit-image, data_range 1, channel_axis −1): (N,) float64.

    Images smaller than 7 px use the largest odd window that fits.
    """
    a = x.detach().permute(0, 2, 3, 1).double().cpu().numpy()  # (N, H, W, C)
    b = x_adv.detach().permute(0, 2, 3, 1).double().cpu().numpy()
    win = min(7, *(s if s % 2 else s - 1 for s in a.shape[1:3]))
    return np.array([structural_similarity(p, q, data_range=1.0, channel_axis=-1, win_size=win)
                     for p, q in zip(a, b)])


def success_mask(clean_pred, adv_pred, y, criterion: str = "clean_correct") -> tuple[np.ndarray, np.ndarray]:
    """(evaluated, success) boolean arrays (N,) for the ASR criterion (§2.7)."""
    clean_pred, adv_pred, y = (np.asarray(torch.as_tensor(t).cpu()) for t in (clean_pred, adv_pred, y))
    if criterion not in ASR_CRITERION:
        raise ValueError(f"Unknown ASR criterion {criterion!r}; choose one of {', '.join(ASR_CRITERION)}.")
    evaluated = clean_pred == y if criterion == "clean_correct" else np.ones_like(y, dtype=bool)
    return evaluated, adv_pred != clean_pred


@dataclass
class Metrics:
    """Per-sample arrays (N,) and the summary of one attack run."""

    l2: np.ndarray
    linf: np.ndarray
    ssim: np.ndarray
    evaluated: np.ndarray
    success: np.ndarray
    time_per_sample_s: float
    criterion: str

    @property
    def n(self) -> int:
        return int(self.evaluated.sum())

    @property
    def asr(self) -> float:
        """Share of evaluated samples whose label changed (nan when none evaluated)."""
        return float(self.success[self.evaluated].mean()) if self.n else float("nan")

    def summary(self) -> dict:
        """mean ± std of each metric over the evaluated samples (all samples when none are)."""
        sel = self.evaluated if self.n else np.ones_like(self.evaluated)
        out = {"n": self.n, "n_total": len(self.l2), "asr": self.asr, "criterion": ASR_CRITERION[self.criterion]}
        for key in ("l2", "linf", "ssim"):
            vals = getattr(self, key)[sel]
            out[f"{key}_mean"], out[f"{key}_std"] = float(vals.mean()), float(vals.std())
        out["linf_max"] = float(self.linf.max())
        out["time_per_sample_s"] = self.time_per_sample_s
        return out


def evaluate(x: torch.Tensor, result, criterion: str = "clean_correct") -> Metrics:
    """All metrics of an AttackResult against clean images x (N, 3, H, W)."""
    evaluated, success = success_mask(result.clean_pred, result.adv_pred, result.y, criterion)
    return Metrics(l2_norms(x, result.x_adv), linf_norms(x, result.x_adv), ssim_scores(x, result.x_adv),
                   evaluated, success, result.time_s / len(x), criterion)


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


def aggregate(method: str, runs: list[dict]) -> dict:
    """mean ± std over single-image metric dicts (result.json 'metrics') of one method.

    ASR and the means use the evaluated (clean-correct) runs; all runs when none is evaluated.
    """
    used = [r for r in runs if r["evaluated"]] or runs
    out = {"method": method, "n": sum(bool(r["evaluated"]) for r in runs),
           "asr": float(np.mean([r["success"] for r in used]))}
    for key in ("l2", "linf", "ssim"):
        vals = np.array([r[key] for r in used], dtype=np.float64)
        out[f"{key}_mean"], out[f"{key}_std"] = float(vals.mean()), float(vals.std())
    out["time_per_sample_s"] = float(np.mean([r["time_s"] for r in used]))
    return out
