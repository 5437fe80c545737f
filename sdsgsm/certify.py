"""Randomised smoothing: certified L2 robustness (Cohen, Rosenfeld & Kolter, ICML 2019).

The smoothed classifier of a base classifier f under Gaussian noise of standard deviation σ is

    g(x) = argmax_c P(f(x + ε) = c),  ε ~ N(0, σ² I)                                (Cohen et al. 2019, eq. 1)

and Theorem 1 of the paper: if the top class c_A has probability p_A ≥ p̲_A > ½, g is constant within the L2 ball

    R = σ · Φ⁻¹(p̲_A)                                  (Theorem 1 with p̄_B = 1 − p̲_A; Cohen et al. 2019, eq. 4)

around x, Φ⁻¹ the standard normal quantile. p̲_A is a one-sided (1 − α) Clopper–Pearson lower confidence bound of
n_A successes in n draws,

    p̲_A = B(α; n_A, n − n_A + 1),                                           (Clopper & Pearson 1934)

B(q; a, b) the q-quantile of the Beta(a, b) distribution. CERTIFY (Cohen et al. 2019, Algorithm "certify") picks
ĉ_A from n₀ noise samples, bounds p_A from n further samples, and abstains when p̲_A ≤ ½; PREDICT returns the top
class of n samples when the two-sided binomial test of n_A against n_A + n_B at ½ has p-value ≤ α, else abstains.

Our own small module rather than ART's ``PyTorchRandomizedSmoothing``: every noise draw here comes from a seeded
``torch.Generator`` (same seed ⇒ same certificates), the equations above are the code, and one function serves any
classifier (the 8×8 digits models and the embedded ImageNet model alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import torch

ABSTAIN = -1


def clopper_pearson_lower(successes: int, n: int, alpha: float) -> float:
    """One-sided (1 − α) Clopper–Pearson lower bound of a binomial proportion: B(α; k, n − k + 1), 0 when k = 0
    (Clopper & Pearson 1934; Cohen et al. 2019's LowerConfBound)."""
    from scipy.stats import beta

    if not 0 <= successes <= n or n < 1:
        raise ValueError(f"need 0 ≤ successes ≤ n and n ≥ 1 (got {successes}, {n}).")
    if successes == 0:
        return 0.0
    return float(beta.ppf(alpha, successes, n - successes + 1))


def radius(p_lower: float, sigma: float) -> float:
    """Certified L2 radius R = σ·Φ⁻¹(p̲_A) (Cohen et al. 2019, Theorem 1 / eq. 4); 0 when p̲_A ≤ ½ (abstain)."""
    if p_lower <= 0.5:
        return 0.0
    if p_lower >= 1.0:
        return float("inf")
    return sigma * NormalDist().inv_cdf(p_lower)


def noise_counts(base: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, sigma: float, num: int,
                 gen: torch.Generator, num_classes: int, batch: int = 1000) -> torch.Tensor:
    """Counts (num_classes,) of the base classifier's argmax over ``num`` draws f(x + ε), ε ~ N(0, σ² I)
    (Cohen et al. 2019, SampleUnderNoise). x: one input (C, H, W); ``base`` maps a batch to logits."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    left = num
    while left > 0:
        k = min(batch, left)
        noise = torch.randn((k, *x.shape), generator=gen) * sigma
        with torch.no_grad():
            pred = base(x.unsqueeze(0) + noise.to(x.device)).argmax(1).cpu()
        counts += torch.bincount(pred, minlength=num_classes)
        left -= k
    return counts


@dataclass(frozen=True)
class Certificate:
    """One input's CERTIFY outcome: prediction ĉ_A (ABSTAIN = −1), n_A of n, p̲_A and the radius R."""

    prediction: int
    n_a: int
    n: int
    p_lower: float
    radius: float


def certify(base: Callable, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float, gen: torch.Generator,
            num_classes: int, batch: int = 1000) -> Certificate:
    """CERTIFY (Cohen et al. 2019): ĉ_A = top class of n₀ samples; n_A = count of ĉ_A among n fresh samples;
    p̲_A = Clopper–Pearson lower bound at level α; abstain if p̲_A ≤ ½ else certify radius σ·Φ⁻¹(p̲_A)."""
    c_a = int(noise_counts(base, x, sigma, n0, gen, num_classes, batch).argmax())
    n_a = int(noise_counts(base, x, sigma, n, gen, num_classes, batch)[c_a])
    p_lower = clopper_pearson_lower(n_a, n, alpha)
    if p_lower <= 0.5:
        return Certificate(ABSTAIN, n_a, n, p_lower, 0.0)
    return Certificate(c_a, n_a, n, p_lower, radius(p_lower, sigma))


def predict_from_counts(counts: torch.Tensor, alpha: float) -> int:
    """PREDICT's decision from class counts (Cohen et al. 2019): the top two n_A ≥ n_B; return c_A if the
    two-sided binomial test BinomPValue(n_A, n_A + n_B, ½) ≤ α, else ABSTAIN."""
    from scipy.stats import binomtest

    top = torch.topk(counts, 2)
    n_a, n_b = int(top.values[0]), int(top.values[1])
    if n_a + n_b == 0 or binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(top.indices[0])


def predict(base: Callable, x: torch.Tensor, sigma: float, n: int, alpha: float, gen: torch.Generator,
            num_classes: int, batch: int = 1000) -> tuple[int, torch.Tensor]:
    """PREDICT (Cohen et al. 2019) on one input: (class or ABSTAIN, the counts over n noise samples). The returned
    class differs from g(x) with probability at most α (Cohen et al. 2019, Proposition 1)."""
    counts = noise_counts(base, x, sigma, n, gen, num_classes, batch)
    return predict_from_counts(counts, alpha), counts


def certified_accuracy(radii: torch.Tensor, correct: torch.Tensor, at: float) -> float:
    """Certified accuracy at L2 radius r: share of inputs whose certified prediction is correct AND whose
    certified radius R ≥ r (Cohen et al. 2019, §4 'approximate certified test set accuracy')."""
    return float((correct & (radii >= at)).float().mean()) if len(radii) else float("nan")
