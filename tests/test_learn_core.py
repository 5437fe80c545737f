"""The Learn page's computations (sdsgsm/experiments/learn.py): trajectory, Proposition 1, Fig. 1 and Fig. 2 helpers.

Everything calls the attack code itself; expectations are hand-checkable on tiny fixed models.
"""

import math

import numpy as np
import pytest
import torch
from helpers import WeightedSum, blob_weight

from sdsgsm.attacks import FAMILY_SPECS, METHODS, AttackConfig, run_attack
from sdsgsm.attacks.fgsm_family import input_gradient
from sdsgsm.budget import BudgetConfig
from sdsgsm.experiments import learn
from sdsgsm.models import Classifier
from sdsgsm.occlusion import ScanConfig, occlusion_scan

CFG = AttackConfig(steps=3, scan=ScanConfig(patch=8))


@pytest.mark.parametrize("method", sorted(FAMILY_SPECS))
def test_trajectory_ends_exactly_at_the_attack_result(tiny_cnn, rand_images, method):
    x = rand_images[:1]
    y = torch.tensor([3])
    plain = run_attack(tiny_cnn, x, y, CFG, method)
    rep = learn.replay(tiny_cnn, x, y, CFG, method)
    steps = CFG.steps if METHODS[method].multi_step else 1
    assert rep.states.shape == (steps + 1, 3, 32, 32)
    assert torch.equal(rep.states[-1], plain.x_adv[0])  # bit for bit, same method, parameters and seed
    assert torch.equal(rep.result.x_adv, plain.x_adv)
    if FAMILY_SPECS[method].deterministic:
        assert torch.equal(rep.states[0], x[0])  # x_0 is the clean image
    budget = plain.budget[0]
    assert bool(((rep.states - x[0]).abs() <= budget + 1e-7).all()) and rep.states.min() >= 0 and rep.states.max() <= 1


def test_trajectory_probabilities_loss_and_flip_agree_with_the_model(tiny_cnn, rand_images):
    x, y = rand_images[1:2], torch.tensor([0])
    rep = learn.replay(tiny_cnn, x, y, AttackConfig(steps=6, eps=8 / 255, budget=BudgetConfig(eps_max=8 / 255)),
                       "ifgsm")
    with torch.no_grad():
        logits = tiny_cnn(rep.states)
    probs = logits.softmax(1)
    np.testing.assert_allclose(rep.p_true, probs[:, 0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(rep.p_other, probs[:, 1:].amax(1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(rep.loss, -probs[:, 0].log().numpy(), rtol=1e-4)
    assert rep.loss[-1] > rep.loss[0]  # the attack climbs the loss
    pred = logits.argmax(1).numpy()
    flips = np.flatnonzero(pred != 0)
    assert rep.flip == (int(flips[0]) if len(flips) else None)


def test_replay_refuses_methods_outside_the_fgsm_family(tiny_cnn, rand_images):
    with pytest.raises(ValueError, match="FGSM-family"):
        learn.replay(tiny_cnn, rand_images[:1], None, CFG, "deepfool")


def test_proposition1_needs_a_gradient():
    with pytest.raises(ValueError, match="zero"):
        learn.proposition1(torch.zeros(3, 4, 4), 8 / 255, 10.0)


# ----------------------------------------------------------------------------- Proposition 1
def _linear(weight: torch.Tensor) -> Classifier:
    return Classifier(WeightedSum(weight), "linear", ["a", "b"], weight.shape[-1])


def _grad(weight: torch.Tensor) -> torch.Tensor:
    """The attack's own input gradient of the linear model: (p_0 − 1)·W for label 0, exactly ∝ W."""
    x = torch.zeros(1, *weight.shape)  # logits (0, 0): p_0 = 1/2, g = −W/2
    return input_gradient(_linear(weight), x, torch.tensor([0]))


def test_proposition1_strict_in_the_linear_regime_on_a_linear_model():
    eps = 8 / 255
    g = _grad(blob_weight())  # |W| is 1 on 2880 values and 8 on 192 (one 8×8 window × 3 channels)
    res = learn.proposition1(g, eps, omega=1e-3)  # tanh(ω·ĝ) = ω·ĝ up to 1e-6 relative (ω ≥ 1e-3 by the spec)
    l1, l2sq, n = 2880 + 192 * 8, 2880 + 192 * 64, 3 * 32 * 32
    assert res.n == n
    assert res.l2_fgsm == pytest.approx(eps * math.sqrt(n), rel=1e-12)
    assert res.l2_tanh == pytest.approx(eps * l1 / math.sqrt(l2sq), rel=1e-6)  # App. A eq. A10 by hand
    assert res.l2_tanh < 0.75 * res.l2_fgsm  # strict: the |g_i| differ
    assert res.gain_tanh == pytest.approx(res.gain_fgsm, rel=1e-9)  # gain-matched (eq. 10)


def test_proposition1_equality_when_every_gradient_magnitude_is_the_same():
    w = torch.ones(3, 8, 8)
    w[0] *= -1  # signs may differ, magnitudes may not
    res = learn.proposition1(_grad(w), 4 / 255, omega=1e-3)
    assert res.l2_tanh == pytest.approx(res.l2_fgsm, rel=1e-9)
    assert res.ratio == pytest.approx(1.0, rel=1e-9)


def test_proposition1_ratio_grows_to_one_as_tanh_saturates():
    g = _grad(blob_weight())
    ratios = learn.prop1_curve(g, 8 / 255, [1e-3, 1.0, 5.0, 50.0, 1e4])
    assert np.all(np.diff(ratios) >= -1e-12)  # monotone here: saturation pushes towards sign
    assert ratios[-1] == pytest.approx(1.0, abs=1e-9)  # ω·ĝ ≥ 1250 on every value: tanh = sign
    assert ratios[0] == pytest.approx(learn.proposition1(g, 8 / 255, 1e-3).l2_linear / (8 / 255 * math.sqrt(3072)),
                                      rel=1e-6)


# ----------------------------------------------------------------------------- Fig. 2 and eq. 6
def test_toy_example_matches_the_paper():
    t = learn.toy_example(5.0)
    np.testing.assert_allclose(t["tanh"], [-0.762, -0.245, 0.0, 0.245, 0.762], atol=5e-4)
    assert t["sign"].tolist() == [-1, -1, 0, 1, 1]


def test_tanh_path_runs_from_the_gradient_direction_to_the_vertex():
    path = learn.tanh_path([0.8, -0.2, 0.05], [1e-3, 1e6])
    small, large = path["points"]
    cos = small @ path["g_hat"] / (np.linalg.norm(small) * np.linalg.norm(path["g_hat"]))
    assert cos == pytest.approx(1.0, abs=1e-6)  # small ω: along ĝ
    np.testing.assert_array_equal(large, path["sign"])  # ω → ∞: the vertex sign(g)
    assert path["sign"].tolist() == [1, -1, 1]


def test_saturation_shares_follow_omega():
    g = torch.linspace(-1, 1, 3 * 4 * 4).view(3, 4, 4)  # 48 values, none exactly 0
    lo, hi = learn.saturation(g, 1e-3), learn.saturation(g, 1e6)
    assert lo["saturated"] == 0.0 and lo["linear"] == 1.0 and lo["n"] == 48
    assert hi["saturated"] == 1.0 and hi["counts"].sum() == 48


def test_pick_pixels_starts_with_the_largest_gradient():
    g = np.zeros((3, 4, 4), np.float32)
    g[1, 2, 3], g[0, 0, 1] = -5.0, 2.0
    first = learn.pick_pixels(g)[0]
    assert (first["value"], first["g_hat"], first["channel"], first["row"], first["col"]) == (-5.0, -1.0, 1, 2, 3)


# ----------------------------------------------------------------------------- Fig. 1 and eq. 5
def test_occluding_one_window_of_a_linear_model_moves_the_logit_by_its_weighted_sum():
    model = _linear(blob_weight())
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = learn.occlude(model, x, (8, 16, 8, 8))  # the window where W = 8
    expected = float(8 * x[0, :, 8:16, 16:24].double().sum())
    assert out["delta"] == pytest.approx(expected, rel=1e-5)  # Δ_Ω = |Σ_Ω W·x| (eq. 2)
    assert bool((out["occluded"][0, :, 8:16, 16:24] == 0).all())
    assert torch.equal(out["occluded"][0, :, :8], x[0, :, :8])  # the rest untouched
    scan = occlusion_scan(model, x, ScanConfig(patch=8, engine="batched", precision="float32"))
    assert float(scan.grid.max()) == pytest.approx(out["delta"], rel=1e-5)  # the scan's Ω* is that window


def test_budget_counts_for_the_argmax_region():
    model = _linear(blob_weight())
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    scan = occlusion_scan(model, x, ScanConfig(patch=8, engine="batched", precision="float32"))
    counts = learn.budget_counts(scan.grid, scan.boxes, (32, 32), BudgetConfig())
    assert (counts["strong"], counts["weak"], counts["between"]) == (64, 1024 - 64, 0)
    assert counts["region"].sum() == 1 and counts["region"][1, 2]  # the window at (8, 16)
