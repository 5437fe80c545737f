"""Randomised smoothing's maths (sdsgsm/certify.py, Cohen, Rosenfeld & Kolter 2019) against hand-computed cases,
and the lab's certificates on the digits (a small run)."""

import math

import pytest
import torch

from sdsgsm import certify as C
from sdsgsm.experiments import lab


def test_clopper_pearson_lower_bound_matches_the_closed_forms():
    # all n successes: B(α; n, 1) has CDF p^n, so the bound is α^(1/n)
    assert C.clopper_pearson_lower(100, 100, 0.001) == pytest.approx(0.001 ** (1 / 100), rel=1e-9)
    # one success: B(α; 1, n) has CDF 1 − (1 − p)^n, so the bound is 1 − (1 − α)^(1/n)
    assert C.clopper_pearson_lower(1, 10, 0.05) == pytest.approx(1 - 0.95 ** (1 / 10), rel=1e-9)
    assert C.clopper_pearson_lower(0, 10, 0.05) == 0.0
    # more samples at the same share give a tighter (higher) bound, all below the share itself
    assert C.clopper_pearson_lower(90, 100, 0.001) < C.clopper_pearson_lower(900, 1000, 0.001) < 0.9
    with pytest.raises(ValueError):
        C.clopper_pearson_lower(11, 10, 0.05)


def test_radius_is_sigma_times_the_normal_quantile_of_the_lower_bound():
    # hand-computed: Φ⁻¹(0.975) = 1.959964…, so σ = 0.5 gives R = 0.979982
    assert C.radius(0.975, 0.5) == pytest.approx(0.979982, abs=1e-6)
    # Φ⁻¹(0.8413447) = 1 (one standard deviation), so R = σ
    assert C.radius(0.8413447460685429, 0.25) == pytest.approx(0.25, abs=1e-9)
    assert C.radius(0.5, 1.0) == 0.0 and C.radius(0.3, 1.0) == 0.0 and C.radius(1.0, 0.1) == math.inf
    # the full chain: 1000 of 1000 votes at α = 0.001 bound p_A by 0.001^(1/1000) = 0.993116…, Φ⁻¹ of it 2.46326…
    p = C.clopper_pearson_lower(1000, 1000, 0.001)
    assert p == pytest.approx(0.99311605, abs=1e-7)
    assert C.radius(p, 0.25) == pytest.approx(0.25 * 2.46326, abs=1e-5)


def test_predict_abstains_on_a_tie_and_answers_a_clear_majority():
    assert C.predict_from_counts(torch.tensor([50, 50, 0]), 0.001) == C.ABSTAIN
    assert C.predict_from_counts(torch.tensor([3, 90, 7]), 0.001) == 1
    assert C.predict_from_counts(torch.tensor([0, 0, 0]), 0.001) == C.ABSTAIN


def test_certify_of_a_constant_classifier_certifies_its_class_with_the_closed_form_radius():
    base = lambda x: torch.tensor([[0.0, 5.0, 0.0]]).expand(len(x), 3)  # noqa: E731 - always class 1
    gen = torch.Generator().manual_seed(0)
    c = C.certify(base, torch.zeros(1, 4, 4), 0.5, 10, 200, 0.01, gen, 3)
    assert c.prediction == 1 and c.n_a == 200
    # p̲_A = 0.01^(1/200) = 0.977237, Φ⁻¹ of it = 1.999766, times σ = 0.5
    assert c.p_lower == pytest.approx(0.977237, abs=1e-6) and c.radius == pytest.approx(0.999883, abs=1e-6)


def test_certified_accuracy_counts_correct_digits_with_radius_at_least_r():
    radii = torch.tensor([0.0, 0.3, 0.6, 1.2])
    correct = torch.tensor([False, True, False, True])
    assert C.certified_accuracy(radii, correct, 0.0) == 0.5
    assert C.certified_accuracy(radii, correct, 0.5) == 0.25
    assert C.certified_accuracy(radii, correct, 2.0) == 0.0


@pytest.mark.slow
def test_the_lab_certificate_is_below_the_empirical_accuracy_and_is_deterministic():
    split = lab.load_split(0)
    cfg = lab.TrainConfig(epochs=3)
    ccfg = lab.CertifyConfig(sigmas=(0.25,), n0=20, n=200, limit=30, radii=(0.0, 0.25, 0.5), attack_steps=5,
                             attack_noise=4)
    first = lab.certify_lab(split, cfg, ccfg)
    again = lab.certify_lab(split, cfg, ccfg)
    assert first.weights == again.weights and first.digits.equals(again.digits)
    curve = first.curve.set_index("radius")
    assert curve.loc[0.0, "certified"] > 0.5  # a noise-trained model certifies most digits at r = 0
    assert (curve["certified"] <= curve["empirical"] + 0.1).all()  # a lower bound, up to n = 200's sampling error
    assert curve["certified"].is_monotonic_decreasing
    bound = C.radius(C.clopper_pearson_lower(200, 200, ccfg.alpha), 0.25)
    assert (first.digits["radius"] <= bound + 1e-12).all()  # no radius beyond what n samples can certify


def test_certify_config_is_checked_against_the_spec():
    with pytest.raises(ValueError, match="outside"):
        lab.CertifyConfig(sigmas=(5.0,))
    with pytest.raises(ValueError):
        lab.CertifyConfig(radii=(-1.0,))


def test_smoothing_the_embedded_imagenet_model_keeps_its_class_at_tiny_noise_and_counts_abstentions():
    r = lab.imagenet_smoothing(sigma=0.01, n=16, alpha=0.01, limit=1)
    photo = r["photos"][0]
    assert photo["smoothed_prediction"] == photo["clean_prediction"] and not photo["abstained"]
    assert r["abstentions"] == sum(p["abstained"] for p in r["photos"]) == 0
    assert "never seen Gaussian noise" in r["note"]
    with pytest.raises(ValueError, match="outside"):
        lab.imagenet_smoothing(sigma=0.0)


def test_the_certified_curve_of_the_figure_falls_at_each_correct_digits_radius():
    import pandas as pd

    from sdsgsm.render.certify import certified_steps

    digits = pd.DataFrame({"radius": [0.0, 0.2, 0.5, 0.9], "correct": [False, True, True, False]})
    r, acc = certified_steps(digits, 1.0)
    assert r.tolist() == [0.0, 0.2, 0.5, 1.0] and acc.tolist() == [0.5, 0.25, 0.0, 0.0]
    for v, a in zip(r, acc):  # the value just after each corner
        assert a == C.certified_accuracy(torch.tensor(digits["radius"].to_numpy()),
                                         torch.tensor(digits["correct"].to_numpy()), float(v) + 1e-9)
