"""Our FGSM-family attacks agree with IBM ART's reference implementations.

Same model, same inputs, same true labels y, ε = 8/255, α = 2/255 or 4/255, μ = 1:

    ours                          ART (adversarial-robustness-toolbox)
    fgsm                          FastGradientMethod(norm=∞)
    ifgsm (= bim)                 BasicIterativeMethod and ProjectedGradientDescent(num_random_init=0)
    mifgsm                        ProjectedGradientDescent(decay=μ, num_random_init=0)
    pgd (always a random start)   ProjectedGradientDescent(num_random_init=1): bounds, start distribution
                                  and outcome only (the two RNGs differ)

What differs between the two implementations, and what that means for the assertions:

* Loss reduction. ART's PyTorchClassifier with nn.CrossEntropyLoss() differentiates the batch MEAN, we
  the batch SUM, so ART's gradient is ours × 1/N. sign() does not see a positive scale and MI-FGSM
  divides by each sample's L1 norm, so in exact arithmetic the attacks are the same; a consequence is
  that no test here (and no sign-step reference) can tell a mean from a sum reduction. In floats,
  measured on Lite0: ART's gradient equals plain torch mean-CE bit for bit; with N = 2 (a power of
  two, exact scale) it is exactly ours / 2, while with N = 3 one of 451,584 signs differs at step 1.
  That one flip moves a pixel by 2α, which changes the next gradient everywhere in its receptive field:
  with 3 images only 93 % of values still agree after 3 steps (α = 4/255), 98 % for MI-FGSM (α = 2/255).
  The same cascade on the small CNN: one flipped sign per image at step 1 → 0.4 % of values differ at step 2,
  3 % at step 3 (α = 4/255). So the Lite0 tests use 2 images, and an elementwise mismatch here is
  either a bug or such a rounding cascade: the outcome assertions tell which.
* Projection order. ART clips to [0, 1] and then projects x' − x on the ε-box; we project on the ε-box
  and then clip to [0, 1]. Both are coordinatewise clamps onto two intervals that both contain x, so
  either order is the clamp onto their intersection: identical in exact arithmetic and, measured, bit
  for bit. A test cannot (and need not) detect the order; it does detect a box around x_t instead of x
  or a missing clamp (α = 4/255 × 3 steps > ε, so the ε-box binds in the elementwise tests).
* Momentum. ART 1.20.1 (projected_gradient_descent_pytorch.py, _compute_perturbation_pytorch):
      momentum *= decay; momentum += grad * (1 / ‖grad‖₁)     per sample, ‖·‖₁ = torch.linalg.norm(ord=1),
      step = eps_step · sign(momentum)                       an all-zero gradient stays 0
  ours (fgsm_family._loop): g = μ·m + ∇ / max(Σ|∇|, 1e-12) per sample; m = g; step = α·sign(g).
  The same formula (Dong et al. 2018, L1-normalised per sample); only the float paths differ (linalg.norm
  vs abs().sum(), multiply by the reciprocal vs divide, ART's 1/N), which can flip a sign where μ·m and
  ĝ nearly cancel. Measured: no such flip in the cases below.
* Single step. ART's BIM/PGD with max_iter=1 step by eps_step; so do our iterative methods with steps=1
  when cfg.alpha is given (test_single_step_ifgsm_honours_alpha).

Measured here (torch 2.15 CPU, 1 thread, ART 1.20.1): every elementwise comparison below is
bit-identical (max |Δ| = 0), and so are ifgsm at 5 and 10 steps on both models and mifgsm at 10 steps
on the small CNN. Random-start PGD vs ART at 10 steps: 34–44 % identical values (small CNN), 5 %
(Lite0); L2 of δ within 2.2 %; success per image equal on Lite0, while on the small CNN up to 4 of 20
borderline images differ between seed pairs.

Assertions. Elementwise (1–3 steps): ≥ 99.9 % of values bit-identical and every value within 2α (one
flipped sign step); a flip in the last step does not cascade, an earlier one fails it (see above). The
issue measured that sign iterations amplify float rounding (one reference BIM on contiguous vs permuted
inputs: exact up to 5 steps, 49 % of values differ after 10; here 1 vs 2 threads already gives 84 %
identical after 3 Lite0 steps), so at 10 steps only outcomes are compared: the same success per image
(adversarial argmax ≠ y, and ≠ the clean argmax) and the L2 norm of δ within a few percent.

Threads: the module runs with torch.set_num_threads(1), restored afterwards. On this 2-core machine,
with other processes busy, two OpenMP threads made each gradient 10–20× slower; ours and ART always run
under the same setting, so agreement does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from sdsgsm.attacks import AttackConfig, run_attack
from sdsgsm.attacks.art_baselines import seeded
from sdsgsm.data import load_gallery
from sdsgsm.models import Classifier, load_model

art_evasion = pytest.importorskip("art.attacks.evasion", reason="needs adversarial-robustness-toolbox (ART)")
art_classification = pytest.importorskip("art.estimators.classification")
art_pgd = pytest.importorskip("art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch")

EPS = 8 / 255
A2 = 2 / 255
A4 = 4 / 255
MU = 1.0
# Elementwise (1–3 steps): fraction of bit-identical values required (measured 1.0 everywhere; a
# wrong momentum normalisation, e.g. L2 instead of L1, leaves 99.77 %); the rest within 2α.
MIN_IDENTICAL = 0.999
# 10 steps: relative L2 distance of the perturbations (measured 0 deterministic, ≤ 2.2 % PGD).
L2_REL_TOL = 0.03
L2_REL_TOL_RANDOM_START = 0.05


# ----------------------------------------------------------------------------- set-up


def small_cnn() -> nn.Sequential:
    """A CIFAR-style CNN with torch.manual_seed(0) Kaiming weights and zero biases (global RNG untouched).

    Zero biases and a normalised input make the random net's prediction depend on the image (with the
    default init it predicts one or two classes for every image and ε = 8/255 flips almost none).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
        )
        for layer in net:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
    return net


@dataclass
class Setup:
    """One model on one batch, wrapped once for ART."""

    model: Classifier
    clf: object  # art PyTorchClassifier
    x: torch.Tensor
    y: torch.Tensor
    clean_pred: torch.Tensor


def make_setup(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> Setup:
    assert bool((y >= 0).all()), "these tests need true labels"
    clf = art_classification.PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=model.num_classes, clip_values=(0.0, 1.0), device_type="cpu")
    with torch.inference_mode():
        clean_pred = model(x).argmax(1)
    return Setup(model, clf, x, y, clean_pred)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cifar() -> Setup:
    x, y, _ = load_gallery("cifar10", 32)
    model = Classifier(small_cnn(), "small_cnn", [str(i) for i in range(10)], 32,
                       mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    return make_setup(model, x, y)


@pytest.fixture(scope="module")
def imagenet_lite0() -> Setup:
    """The embedded EfficientNet-Lite0 on 2 gallery images: N = 2 makes ART's 1/N loss scale exact."""
    x, y, _ = load_gallery("imagenet", 224, limit=2)
    return make_setup(load_model("efficientnet_lite0", device="cpu"), x, y)


# ----------------------------------------------------------------------------- attacks


def ours(s: Setup, method: str, steps: int = 1, alpha: float | None = None) -> torch.Tensor:
    cfg = AttackConfig(eps=EPS, steps=steps, alpha=alpha, decay=MU, seed=0)
    res = run_attack(s.model, s.x, s.y, cfg, method)
    assert res.label_source == "true label"
    return res.x_adv


def art_run(s: Setup, kind: str, steps: int = 1, alpha: float = EPS, random_init: int = 0) -> torch.Tensor:
    """ART's attack ``kind`` ('fgm' | 'bim' | 'pgd' | 'mi') on the same batch with int labels y.

    ART accepts index labels of shape (N,) and one-hot-encodes them (check_and_transform_label_format);
    PyTorchClassifier.loss_gradient turns them back into indices for CrossEntropyLoss.
    """
    n = len(s.x)
    if kind == "fgm":
        attack = art_evasion.FastGradientMethod(s.clf, norm=np.inf, eps=EPS, targeted=False,
                                                num_random_init=0, batch_size=n)
    elif kind == "bim":
        attack = art_evasion.BasicIterativeMethod(s.clf, eps=EPS, eps_step=alpha, max_iter=steps,
                                                  targeted=False, batch_size=n, verbose=False)
    else:
        attack = art_evasion.ProjectedGradientDescent(
            s.clf, norm=np.inf, eps=EPS, eps_step=alpha, max_iter=steps, targeted=False,
            num_random_init=random_init, batch_size=n, decay=MU if kind == "mi" else None, verbose=False)
    if kind != "fgm":  # the PyTorch implementation whose formulas the docstring quotes
        assert isinstance(attack._attack, art_pgd.ProjectedGradientDescentPyTorch)
    out = attack.generate(s.x.numpy(), s.y.numpy())
    return torch.from_numpy(out)


# ----------------------------------------------------------------------------- checks


def agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max |a − b|, fraction of bit-identical values)."""
    d = (a - b).abs()
    return d.max().item(), (d == 0).double().mean().item()


def assert_valid(s: Setup, x_adv: torch.Tensor) -> None:
    """x_adv in [0, 1] and within ε of x (up to float rounding of x + clamp(x' − x))."""
    assert x_adv.shape == s.x.shape and x_adv.dtype == torch.float32
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert (x_adv - s.x).abs().max().item() <= EPS + 1e-6


def assert_elementwise(a: torch.Tensor, b: torch.Tensor, alpha: float, min_identical: float) -> None:
    max_diff, identical = agreement(a, b)
    msg = f"max |Δ| = {max_diff:.3g} (2α = {2 * alpha:.3g}), identical {identical:.6f}"
    assert identical >= min_identical, msg
    assert max_diff <= 2 * alpha + 1e-6, msg


def assert_same_outcome(s: Setup, a: torch.Tensor, b: torch.Tensor, l2_rel_tol: float) -> None:
    """Per sample: same success (adversarial argmax ≠ y, and ≠ clean argmax); L2 of the perturbation close."""
    with torch.inference_mode():
        pa, pb = s.model(a).argmax(1), s.model(b).argmax(1)
    assert torch.equal(pa != s.y, pb != s.y), f"success differs: {pa.tolist()} vs {pb.tolist()}, y {s.y.tolist()}"
    assert torch.equal(pa != s.clean_pred, pb != s.clean_pred), (
        f"prediction change differs: {pa.tolist()} vs {pb.tolist()}, clean {s.clean_pred.tolist()}")
    la, lb = (a - s.x).flatten(1).norm(dim=1), (b - s.x).flatten(1).norm(dim=1)
    rel = ((la - lb).abs() / lb).max().item()
    assert rel <= l2_rel_tol, f"L2 of the perturbations differs by {rel:.2%}"


# ----------------------------------------------------------------------------- CIFAR, small CNN


def test_small_cnn_is_attackable(cifar):
    """Guard the set-up: varied clean predictions and an attack that flips some but not all of them."""
    assert len(set(cifar.clean_pred.tolist())) >= 4
    x_adv = ours(cifar, "ifgsm", 10, A2)
    with torch.inference_mode():
        flipped = (cifar.model(x_adv).argmax(1) != cifar.clean_pred).sum().item()
    assert 3 <= flipped <= 17, flipped


def test_art_bim_is_pgd_without_random_start(cifar):
    """The two ART references we use interchangeably are the same computation."""
    bim = art_run(cifar, "bim", 3, A4)
    pgd0 = art_run(cifar, "pgd", 3, A4)
    assert torch.equal(bim, pgd0)


def test_fgsm_matches_art_fgm(cifar):
    a, b = ours(cifar, "fgsm"), art_run(cifar, "fgm")
    assert_valid(cifar, a)
    assert_elementwise(a, b, EPS, MIN_IDENTICAL)
    assert (a - cifar.x).abs().max().item() == pytest.approx(EPS, abs=1e-6)  # the step was taken


@pytest.mark.parametrize(("steps", "alpha"), [(1, EPS), (2, A2), (3, A2), (2, A4), (3, A4)])
def test_ifgsm_matches_art_bim_and_pgd(cifar, steps, alpha):
    a = ours(cifar, "ifgsm", steps, alpha)
    assert_valid(cifar, a)
    assert torch.equal(a, ours(cifar, "bim", steps, alpha))
    assert_elementwise(a, art_run(cifar, "bim", steps, alpha), alpha, MIN_IDENTICAL)
    assert_elementwise(a, art_run(cifar, "pgd", steps, alpha), alpha, MIN_IDENTICAL)
    if steps * alpha > EPS:  # the ε-box bound somewhere: the projection was exercised
        assert bool(((a - cifar.x).abs() >= EPS - 1e-6).any())


@pytest.mark.parametrize(("steps", "alpha"), [(2, A2), (3, A2), (3, A4)])
def test_mifgsm_matches_art_pgd_with_decay(cifar, steps, alpha):
    a = ours(cifar, "mifgsm", steps, alpha)
    assert_valid(cifar, a)
    assert_elementwise(a, art_run(cifar, "mi", steps, alpha), alpha, MIN_IDENTICAL)
    # Momentum mattered: MI-FGSM is not I-FGSM here (else the test could not see a wrong normalisation).
    assert not torch.equal(a, ours(cifar, "ifgsm", steps, alpha))


@pytest.mark.parametrize(("method", "kind"), [("ifgsm", "bim"), ("mifgsm", "mi")])
def test_ten_steps_same_outcome(cifar, method, kind):
    a, b = ours(cifar, method, 10, A2), art_run(cifar, kind, 10, A2)
    assert_valid(cifar, a)
    assert_same_outcome(cifar, a, b, L2_REL_TOL)


def test_pgd_random_start_matches_art_distribution(cifar):
    """Both start uniformly in the ε-box (clipped to [0, 1]): after a negligible step δ is the start.

    Our RNG (torch, cfg.seed) and ART's (global NumPy) differ, so compare quantiles of δ/ε, with each
    other and, away from the [0, 1] clip, with the uniform distribution on [−1, 1].
    """
    tiny = 1e-9  # below float32 resolution at x ≈ 0.5: x_adv is the clipped random start
    a = ours(cifar, "pgd", 2, tiny)
    with seeded(0, torch.device("cpu")):
        b = art_run(cifar, "pgd", 1, tiny, random_init=1)
    assert_valid(cifar, a)
    q = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    qa = torch.quantile(((a - cifar.x) / EPS).flatten().double(), q)
    qb = torch.quantile(((b - cifar.x) / EPS).flatten().double(), q)
    assert (qa - qb).abs().max().item() <= 0.03, (qa, qb)
    inner = (cifar.x >= EPS) & (cifar.x <= 1 - EPS)
    qi = torch.quantile(((a - cifar.x) / EPS)[inner].double(), q)
    assert (qi - (2 * q - 1)).abs().max().item() <= 0.03, qi


def test_pgd_random_start_same_outcome(cifar):
    """10 PGD steps from different random starts: bounds and outcomes, not values.

    On this random net several images sit near a decision boundary, so whether one flips depends on
    the start (measured over 8 seed pairs: ≤ 4 of 20 images differ, success counts differ by ≤ 2,
    L2 by ≤ 2.2 %). The tolerances allow that spread, not more.
    """
    a = ours(cifar, "pgd", 10, A2)
    with seeded(0, torch.device("cpu")):
        b = art_run(cifar, "pgd", 10, A2, random_init=1)
    assert_valid(cifar, a)
    assert not torch.equal(a, ours(cifar, "ifgsm", 10, A2))  # the random start happened
    assert torch.equal(a, ours(cifar, "pgd", 10, A2))  # … and is seeded
    with torch.inference_mode():
        fa = cifar.model(a).argmax(1) != cifar.clean_pred
        fb = cifar.model(b).argmax(1) != cifar.clean_pred
    assert (fa == fb).sum().item() >= 15, (fa.tolist(), fb.tolist())
    assert abs(fa.sum().item() - fb.sum().item()) <= 3
    assert fa.sum().item() >= 4  # the attack does something on this net
    la, lb = (a - cifar.x).flatten(1).norm(dim=1), (b - cifar.x).flatten(1).norm(dim=1)
    assert ((la - lb).abs() / lb).max().item() <= L2_REL_TOL_RANDOM_START


def test_single_step_ifgsm_honours_alpha(cifar):
    a = ours(cifar, "ifgsm", 1, A2)
    assert_elementwise(a, art_run(cifar, "bim", 1, A2), A2, MIN_IDENTICAL)


# ----------------------------------------------------------------------------- EfficientNet-Lite0


@pytest.mark.slow
def test_lite0_fgsm_matches_art_fgm(imagenet_lite0):
    a = ours(imagenet_lite0, "fgsm")
    assert_valid(imagenet_lite0, a)
    assert_elementwise(a, art_run(imagenet_lite0, "fgm"), EPS, MIN_IDENTICAL)


@pytest.mark.slow
def test_lite0_ifgsm_matches_art_bim(imagenet_lite0):
    a = ours(imagenet_lite0, "ifgsm", 3, A4)
    assert_valid(imagenet_lite0, a)
    assert_elementwise(a, art_run(imagenet_lite0, "bim", 3, A4), A4, MIN_IDENTICAL)


@pytest.mark.slow
def test_lite0_mifgsm_matches_art_pgd_with_decay(imagenet_lite0):
    a = ours(imagenet_lite0, "mifgsm", 3, A2)
    assert_valid(imagenet_lite0, a)
    assert_elementwise(a, art_run(imagenet_lite0, "mi", 3, A2), A2, MIN_IDENTICAL)


@pytest.mark.slow
def test_lite0_ifgsm_ten_steps_same_outcome(imagenet_lite0):
    a, b = ours(imagenet_lite0, "ifgsm", 10, A2), art_run(imagenet_lite0, "bim", 10, A2)
    assert_valid(imagenet_lite0, a)
    assert_same_outcome(imagenet_lite0, a, b, L2_REL_TOL)
