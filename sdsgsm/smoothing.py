"""Low-pass kernels and the roughness measure of SmoothFool (Dabouei et al., WACV 2020).

Kernels (SmoothFool §3.2, §4 "Black-box performance and ablation on smoothing functions"):
* Gaussian with standard deviation σ and width 5σ (§4.1 "To implement the Gaussian kernel, we set
  the kernel width to 5σ"; the width is rounded up to an odd number of pixels);
* uniform k×k, every value 1/k²;
* linear k×k: 4/k² at the centre, 0 at the edges, linearly interpolated in between (built as
  the outer product of two 1-D tents, normalised to sum 1).
All three are separable, so a blur is two 1-D depthwise convolutions per channel with
replicate padding ("same" size). Every kernel sums to 1, so a constant map is unchanged.

Roughness (SmoothFool eq. 4): Ω(r; h) = ‖r − r ∗ h‖₂² with h a Gaussian of σ_h = 1, and the
normalised Ω_n = Ω / ‖r‖₂² (§4.1), the share of the perturbation's power in the high frequencies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sdsgsm.params import SF_KERNELS

KERNELS = SF_KERNELS
SIGMA_H = 1.0  # the roughness filter h of SmoothFool's Table 1


def gaussian_width(sigma: float) -> int:
    """Kernel width 5σ rounded up to an odd number of pixels (σ = 1 -> 5, σ = 2 -> 11)."""
    k = max(1, math.ceil(5 * sigma - 1e-9))
    return k if k % 2 else k + 1


def kernel_1d(kind: str, sigma: float = 2.0, size: int = 5, dtype=torch.float32, device=None) -> torch.Tensor:
    """The 1-D factor (k,) of a separable low-pass kernel g, summing to 1.

    Args: kind 'gaussian' (σ, width 5σ), 'uniform' (size k) or 'linear' (size k, a tent that is
    0 at the edges and peaks at the centre). Raises ValueError for an unknown kind or size < 1.
    """
    if kind == "gaussian":
        k = gaussian_width(sigma)
        t = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
        w = torch.exp(-0.5 * (t / sigma) ** 2)
    elif kind == "uniform":
        w = torch.ones(int(size), dtype=torch.float64)
    elif kind == "linear":
        k = int(size)
        t = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
        w = 1 - t.abs() / ((k - 1) / 2) if k >= 3 else torch.ones(k, dtype=torch.float64)  # 0 at the edges
    else:
        raise ValueError(f"Unknown kernel {kind!r}; choose one of {', '.join(KERNELS)}.")
    if len(w) < 1:
        raise ValueError("Kernel size must be at least 1.")
    return (w / w.sum()).to(dtype=dtype, device=device)


def blur(x: torch.Tensor, k1d: torch.Tensor) -> torch.Tensor:
    """Depthwise 'same' convolution of every channel of x (N, C, H, W) with the separable kernel
    k1d ⊗ k1d (replicate padding; even sizes pad one pixel more after than before)."""
    n, c, h, w = x.shape
    k = len(k1d)
    lo, hi = (k - 1) // 2, k // 2
    kern = k1d.to(dtype=x.dtype, device=x.device)
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (lo, hi, 0, 0), mode="replicate"), kern.view(1, 1, 1, k))
    y = F.conv2d(F.pad(y, (0, 0, lo, hi), mode="replicate"), kern.view(1, 1, k, 1))
    return y.view(n, c, h, w)


def roughness(r: torch.Tensor, sigma_h: float = SIGMA_H) -> torch.Tensor:
    """Ω(r; h) = ‖r − r ∗ h‖₂² per sample (SmoothFool eq. 4), h Gaussian of σ_h: r (N, C, H, W) -> (N,) float64."""
    r = r.detach().double()
    high = r - blur(r, kernel_1d("gaussian", sigma_h, dtype=torch.float64))
    return high.pow(2).flatten(1).sum(1)


def roughness_normalised(r: torch.Tensor, sigma_h: float = SIGMA_H) -> torch.Tensor:
    """Ω_n = Ω(r; h) / ‖r‖₂² per sample (SmoothFool §4.1): (N,) float64 in [0, ~1]. Where r = 0
    (nothing moved) Ω = 0 too and Ω_n is defined as 0: no high-frequency power, and no NaN in a table."""
    power = r.detach().double().pow(2).flatten(1).sum(1)
    return torch.where(power > 0, roughness(r, sigma_h) / power.clamp_min(1e-300), 0.0)
