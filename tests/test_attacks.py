"""The FGSM/SGSM family: bounds, limits, batching, the paper's toy example and Proposition 1."""

import math

import pytest
import torch

from sdsgsm.attacks import FAMILY_SPECS, METHODS, AttackConfig, get_method, run_attack
from sdsgsm.attacks.fgsm_family import FamilySpec, direction, input_gradient, normalise_gradient, step_size
from sdsgsm.budget import BudgetConfig
from sdsgsm.occlusion import ScanConfig, occlusion_scan

SMALL = dict(scan=ScanConfig(patch=8), budget=BudgetConfig(eps_strong=8 / 255, eps_weak=2 / 255))
ALL = list(FAMILY_SPECS)  # the FGSM/SGSM family, aliases (bim) included


def test_registry_has_every_named_method():
    assert set(ALL) <= set(METHODS) and {"fgsm", "sgsm", "sd-fgsm", "sd-sgsm"} <= set(ALL)  # the paper's four
    assert {m for m in METHODS if METHODS[m].spatial} == {m for m in METHODS if m.startswith("sd-")}
    assert all(METHODS[m].spatial == FAMILY_SPECS[m].spatial for m in ALL)
    with pytest.raises(ValueError, match="Unknown method"):
        get_method("deepfoo")
    for wrong in (AttackConfig(), "x" * 500):  # arguments swapped, or a pasted essay: one short line
        with pytest.raises(ValueError) as info:
            get_method(wrong)
        assert len(str(info.value).split(";")[0]) < 80


def test_paper_toy_example_tanh_5g():
    g = torch.tensor([-0.2, -0.05, 0.0, 0.05, 0.2]).view(1, 5, 1, 1)
    d = direction(g, FamilySpec(direction="tanh"), AttackConfig(omega=5.0, grad_norm="none"))
    torch.testing.assert_close(d.flatten(), torch.tensor([-0.762, -0.245, 0.0, 0.245, 0.762]), atol=5e-4, rtol=0)
    assert direction(g, FamilySpec(), AttackConfig()).flatten().tolist() == [-1, -1, 0, 1, 1]


def test_gradient_normalisations():
    g = torch.tensor([3e-5, -1.2e-4, 7e-6]).view(1, 3, 1, 1)
    assert normalise_gradient(g, "max").abs().max().item() == pytest.approx(1.0)
    ratio = (normalise_gradient(g, "pow10") / normalise_gradient(g, "max")).flatten()
    assert torch.allclose(ratio, ratio[0]) and 1.0 <= ratio[0].item() < 10.0
    assert torch.equal(normalise_gradient(g, "none"), g)


@pytest.mark.parametrize("method", ALL)
def test_bounds_hold_everywhere(tiny_cnn, rand_images, method):
    cfg = AttackConfig(steps=5, alpha=3 / 255, **SMALL)
    r = run_attack(tiny_cnn, rand_images, None, cfg, method)
    delta = (r.x_adv - rand_images).abs()
    assert (delta <= r.budget + 1e-7).all()
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    if METHODS[method].spatial:
        background = r.budget[:, 0] == cfg.budget.eps_weak
        assert background.float().mean() > 0.9
        assert (delta.amax(1)[background] <= cfg.budget.eps_weak + 1e-7).all()
        assert (r.budget[:, 0][~background] == cfg.budget.eps_strong).all()
    else:
        assert (r.budget == cfg.eps).all()
    assert delta.amax() > 0  # the attack moved something


def test_bounds_on_gallery_image_with_real_model(lite0, imagenet_batch):
    x, y, _ = imagenet_batch
    cfg = AttackConfig(steps=2, alpha=4 / 255, scan=ScanConfig(patch=56),
                       budget=BudgetConfig(eps_strong=8 / 255, eps_weak=1 / 255, region="topk", topk=2))
    r = run_attack(lite0, x[:1], y[:1], cfg, "sd-sgsm")
    delta = (r.x_adv - x[:1]).abs()
    assert (delta <= r.budget + 1e-7).all() and r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    assert (r.budget[0, 0] == 8 / 255).sum() == 2 * 56 * 56
    assert r.label_source == "true label" and r.saliency.shape == (1, 4, 4)


@pytest.mark.parametrize("pair", [("sd-sgsm", "sd-fgsm"), ("sgsm", "fgsm")])
def test_omega_to_infinity_equals_sign(tiny_cnn, rand_images, pair):
    cfg = AttackConfig(omega=1e6, steps=1, **SMALL)
    a, b = (run_attack(tiny_cnn, rand_images, None, cfg, m) for m in pair)
    assert torch.equal(a.x_adv, b.x_adv)
    small = AttackConfig(omega=1.0, steps=1, **SMALL)  # and a finite ω really is different
    assert not torch.equal(run_attack(tiny_cnn, rand_images, None, small, pair[0]).x_adv, b.x_adv)


@pytest.mark.parametrize("method", ["sd-sgsm", "sgsm", "ifgsm", "mifgsm", "nifgsm", "tifgsm", "sd-fgsm"])
def test_batch_of_four_equals_four_single_runs(tiny_cnn, rand_images, method):
    cfg = AttackConfig(steps=10, alpha=2 / 255, **SMALL)
    batch = run_attack(tiny_cnn, rand_images, None, cfg, method)
    single = torch.cat([run_attack(tiny_cnn, rand_images[i:i + 1], None, cfg, method).x_adv for i in range(4)])
    # summed loss: a sample's step never depends on the batch; batched convolutions may round
    # differently in the last bit, which the continuous tanh direction passes on unamplified
    torch.testing.assert_close(batch.x_adv, single, atol=1e-6, rtol=0)


def test_random_methods_are_reproducible_by_seed(tiny_cnn, rand_images):
    for method in ("pgd", "rfgsm"):
        a, b = (run_attack(tiny_cnn, rand_images, None, AttackConfig(steps=3, seed=7), method) for _ in range(2))
        c = run_attack(tiny_cnn, rand_images, None, AttackConfig(steps=3, seed=8), method)
        assert torch.equal(a.x_adv, b.x_adv) and not torch.equal(a.x_adv, c.x_adv)


def test_proposition_1_linear_regime_tanh_step_has_lower_l2(lite0, imagenet_batch):
    """Gain-matched α·tanh(ωg) has a smaller L2 norm than ε·sign(g) (paper §3.5, eq. 8–10)."""
    x, y, _ = imagenet_batch
    g = input_gradient(lite0, x[:2], y[:2])
    eps = 8 / 255
    for n in range(2):
        gn = g[n].flatten().double()
        s = torch.tanh(1e-3 * gn / gn.abs().max())  # ω small: linear regime
        alpha = eps * gn.abs().sum() / (gn * s).sum()  # ⟨g, α s⟩ = ⟨g, ε sign g⟩ (eq. 10)
        assert torch.isclose((gn * alpha * s).sum(), (gn * eps * gn.sign()).sum())
        l2_tanh, l2_fgsm = (alpha * s).norm().item(), eps * math.sqrt(int((gn != 0).sum()))
        assert l2_tanh < l2_fgsm
        # in the linear regime the ratio equals ‖g‖₁ / (√n ‖g‖₂) (Cauchy–Schwarz)
        assert l2_tanh / l2_fgsm == pytest.approx((gn.abs().sum() / (math.sqrt(gn.numel()) * gn.norm())).item(),
                                                  rel=1e-3)


def test_cached_scan_is_reused_and_gives_the_same_result(tiny_cnn, rand_images):
    cfg = AttackConfig(steps=3, **SMALL)
    scan = occlusion_scan(tiny_cnn, rand_images, cfg.scan)
    a = run_attack(tiny_cnn, rand_images, None, cfg, "sd-sgsm")
    b = run_attack(tiny_cnn, rand_images, None, cfg, "sd-sgsm", scan=scan)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.saliency, b.saliency)
    assert b.scan_time_s == scan.seconds > 0 and a.scan_time_s > 0  # cached: the scan's own seconds


def test_labels_true_predicted_and_mixed(tiny_cnn, rand_images):
    cfg = AttackConfig()
    pred = tiny_cnn(rand_images).argmax(1)
    assert run_attack(tiny_cnn, rand_images, None, cfg, "fgsm").label_source == "clean prediction"
    y = (pred + 1) % 10
    r = run_attack(tiny_cnn, rand_images, y, cfg, "fgsm")
    assert r.label_source == "true label" and torch.equal(r.y, y)
    y_mixed = y.clone()
    y_mixed[0] = -1
    r = run_attack(tiny_cnn, rand_images, y_mixed, cfg, "fgsm")
    assert r.label_source.startswith("true label where known") and r.y[0] == pred[0] and r.y[1] == y[1]


def test_step_size_rules():
    sd, multi = FamilySpec(spatial=True), FamilySpec(multi_step=True)
    assert step_size(AttackConfig(steps=10), sd, 8 / 255) == (8 / 255, 1)  # single-step: α = ε_strong
    assert step_size(AttackConfig(steps=10, alpha=4 / 255), multi, 8 / 255) == (4 / 255, 10)
    assert step_size(AttackConfig(steps=10), multi, 8 / 255) == pytest.approx((2 / 255, 10))
    assert step_size(AttackConfig(steps=1), FamilySpec(multi_step=True, rand_prestep=True), 8 / 255) == (4 / 255, 1)
    assert step_size(AttackConfig(steps=1, alpha=2 / 255), multi, 8 / 255) == (2 / 255, 1)  # α honoured at T = 1
    assert step_size(AttackConfig(steps=1, alpha=2 / 255), sd, 8 / 255) == (8 / 255, 1)  # FGSM-style: α = ε


def test_attacks_run_inside_inference_mode(tiny_cnn, rand_images):
    with torch.inference_mode():
        r = run_attack(tiny_cnn, rand_images, None, AttackConfig(steps=2), "sd-sgsm")
    assert (r.x_adv != rand_images).any()


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "Steps"), ({"steps": 10**6}, "Steps"), ({"steps": 2.5}, "Steps"),
    ({"omega": 0.0}, "ω"), ({"omega": -1.0}, "ω"), ({"omega": float("nan")}, "finite"),
    ({"alpha": float("inf")}, "finite"), ({"alpha": -0.1}, "α"), ({"eps": 9 / 255}, "ε_max"),
    ({"grad_norm": "l2"}, "grad_norm"), ({"ti_kernel": 4}, "odd"),
])
def test_attack_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttackConfig(**kwargs)
