"""Every registered method through the one attack wrapper: shape, range, budget, seeds, batching, timing."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch

from sdsgsm.attacks import METHODS, AttackConfig, run_attack
from sdsgsm.attacks import fgsm_family as family_module
from sdsgsm.budget import BudgetConfig
from sdsgsm.occlusion import ScanConfig, occlusion_scan

CFG = AttackConfig(steps=2, seed=3, scan=ScanConfig(patch=8),
                   budget=BudgetConfig(eps_strong=8 / 255, eps_weak=2 / 255))


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_keeps_the_contract(tiny_cnn, rand_images, name):
    """Shape, [0, 1], |x_adv − x| ≤ E for bounded methods, same seed ⇒ same x_adv, and for the
    deterministic ones batch == single runs. The flag itself is checked: a deterministic method ignores
    the seed, a random one that moved x does not."""
    m, x = METHODS[name], rand_images[:2]  # (2, 3, 32, 32)
    r = m.fn(tiny_cnn, x, None, CFG, scan=None)
    assert r.x_adv.shape == x.shape and r.budget.shape == (2, 1, 32, 32)
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    if m.bounded:
        assert ((r.x_adv - x).abs() <= r.budget + 1e-6).all()
    assert torch.equal(r.x_adv, m.fn(tiny_cnn, x, None, CFG, scan=None).x_adv)
    other_seed = m.fn(tiny_cnn, x, None, replace(CFG, seed=4), scan=None).x_adv
    if m.deterministic or not torch.equal(r.x_adv, x):  # a failed AutoAttack returns x whatever the seed
        assert torch.equal(r.x_adv, other_seed) == m.deterministic
    if m.deterministic:
        single = torch.cat([m.fn(tiny_cnn, x[i:i + 1], None, CFG, scan=None).x_adv for i in range(2)])
        torch.testing.assert_close(r.x_adv, single, atol=1e-5, rtol=0)


def test_spatial_times_split_into_scan_and_attack(tiny_cnn, rand_images):
    x = rand_images[:2]
    fresh = run_attack(tiny_cnn, x, None, CFG, "sd-sgsm")
    scan = occlusion_scan(tiny_cnn, x, CFG.scan)
    cached = run_attack(tiny_cnn, x, None, CFG, "sd-sgsm", scan=scan)
    assert scan.seconds > 0 and cached.scan_time_s == scan.seconds
    for r in (fresh, cached):
        assert r.scan_time_s > 0 and r.attack_time_s > 0
        assert r.time_s == r.attack_time_s + r.scan_time_s
    plain = run_attack(tiny_cnn, x, None, CFG, "fgsm", scan=scan)  # non-spatial: the scan's time is not its cost
    assert plain.scan_time_s == 0.0 and plain.time_s == plain.attack_time_s > 0


def test_scan_computed_inside_the_attack_is_not_attack_time(tiny_cnn, rand_images, monkeypatch):
    """A slow scan (2 s more) must land in scan_time_s and stay out of attack_time_s: the attack's own time
    fits in the call's wall time less the 2 s, however loaded the machine is."""
    def slow_scan(*args, **kwargs):
        scan = occlusion_scan(*args, **kwargs)
        time.sleep(2.0)
        return replace(scan, seconds=scan.seconds + 2.0)

    monkeypatch.setattr(family_module, "occlusion_scan", slow_scan)
    t0 = time.perf_counter()
    r = run_attack(tiny_cnn, rand_images[:2], None, CFG, "sd-fgsm")
    wall = time.perf_counter() - t0
    assert r.scan_time_s >= 2.0 and 0 < r.attack_time_s <= wall - 2.0


def test_scan_of_another_batch_is_refused(tiny_cnn, rand_images):
    scan = occlusion_scan(tiny_cnn, rand_images[:3], CFG.scan)
    with pytest.raises(ValueError, match="cached scan holds 3 images"):
        run_attack(tiny_cnn, rand_images[:2], None, CFG, "sd-sgsm", scan=scan)
