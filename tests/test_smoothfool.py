"""SmoothFool (Dabouei et al. 2020), SmoothClip, the kernels and the roughness metrics Ω / Ω_n."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sdsgsm.attacks import METHODS, AttackConfig, run_attack
from sdsgsm.attacks.smoothfool import CLIP_TOL, smooth_clip
from sdsgsm.experiments.benchmark import run_benchmark
from sdsgsm.experiments.report import attack_tensor
from sdsgsm.metrics import METRICS, per_sample_metrics, summarise
from sdsgsm.params import SF_KERNELS
from sdsgsm.smoothing import gaussian_width, kernel_1d, roughness, roughness_normalised

CFG = AttackConfig(sigma_g=1.0, sf_max_iter=50)


def _fooled(r) -> list[bool]:
    return (r.adv_pred != r.y).tolist()


# ----------------------------------------------------------------------------- kernels and roughness
def test_kernels_sum_to_one_and_have_the_papers_shapes():
    assert gaussian_width(1.0) == 5 and gaussian_width(2.0) == 11 and len(kernel_1d("gaussian", 2.0)) == 11
    for kind in SF_KERNELS:
        k = kernel_1d(kind, 3.0, 9)
        assert k.sum().item() == pytest.approx(1.0) and torch.equal(k, k.flip(0))
    lin = kernel_1d("linear", size=25)
    assert lin[0] == 0 and lin[-1] == 0 and lin.argmax() == 12  # 0 at the edges, peak at the centre
    assert torch.allclose(kernel_1d("uniform", size=4), torch.full((4,), 0.25))
    with pytest.raises(ValueError, match="Unknown kernel"):
        kernel_1d("box")


def test_roughness_of_a_constant_is_zero_and_of_a_checkerboard_large():
    const = torch.full((2, 3, 16, 16), 0.3)
    assert roughness(const).abs().max() < 1e-20
    idx = torch.arange(16)
    board = ((idx[:, None] + idx[None]) % 2 * 2 - 1).float().expand(1, 3, 16, 16) * 0.1
    assert roughness_normalised(board).item() > 0.95  # nearly all power above σ_h = 1's pass band
    smooth = torch.sin(idx / 16 * math.pi).expand(1, 3, 16, 16)  # half a period across the width
    assert roughness_normalised(smooth).item() < 0.05
    assert roughness_normalised(torch.zeros(1, 3, 8, 8)).item() == 0.0  # nothing moved: defined as 0, not NaN


# ----------------------------------------------------------------------------- SmoothClip
def test_smoothclip_lands_in_range_and_is_a_no_op_inside(rand_images):
    x = rand_images[:2]
    g = kernel_1d("gaussian", 2.0)
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 0.5
    rc = smooth_clip(x, r, g, 0.1)
    assert (x + rc).min() >= 0 and (x + rc).max() <= 1
    assert (rc - r).abs().max() > 0.1  # it did clip
    inside = (0.9 * (0.5 - x)) * 0.1  # x + r stays in [0, 1]
    assert torch.equal(smooth_clip(x, inside, g, 0.1), (x + inside).clamp(0, 1) - x)
    assert torch.allclose(smooth_clip(x, inside, g, 0.1), inside, atol=1e-7)


def test_smoothclip_moves_pixels_by_the_blurred_violation_not_per_pixel(rand_images):
    """A single violating pixel: SmoothClip (eq. 11) also moves its neighbours, a plain clip does not."""
    x = torch.full((1, 1, 9, 9), 0.5)
    r = torch.zeros_like(x)
    r[0, 0, 4, 4] = 0.6  # x + r = 1.1 at the centre only
    rc = smooth_clip(x, r, kernel_1d("gaussian", 1.0), 1.0)
    assert (x + rc).max() <= 1 and rc[0, 0, 4, 5] < 0 and rc[0, 0, 0, 0] == 0
    assert rc[0, 0, 4, 4] > 0.5 - CLIP_TOL - 1e-6  # clipped down to about 1, not zeroed


# ----------------------------------------------------------------------------- the attack
@pytest.mark.slow
def test_loop_stops_at_the_first_label_change(tiny_cnn, rand_images):
    """With cap i* (the first iteration count that fools) the result equals the uncapped run,
    and with cap i* − 1 the label has not changed yet (Algorithm 2's while condition)."""
    x = rand_images[:1]
    full = run_attack(tiny_cnn, x, None, CFG, "smoothfool")
    assert all(_fooled(full))
    for i in range(1):
        xi = x[i:i + 1]
        first = next(n for n in range(1, 51)
                     if _fooled(run_attack(tiny_cnn, xi, None, replace(CFG, sf_max_iter=n), "smoothfool"))[0])
        capped = run_attack(tiny_cnn, xi, None, replace(CFG, sf_max_iter=first), "smoothfool")
        assert torch.equal(capped.x_adv, full.x_adv[i:i + 1])
        if first > 1:
            before = run_attack(tiny_cnn, xi, None, replace(CFG, sf_max_iter=first - 1), "smoothfool")
            assert not _fooled(before)[0]


@pytest.mark.slow
def test_larger_sigma_gives_a_smoother_perturbation(tiny_cnn, rand_images):
    x = rand_images[:2]
    rough = {}
    for sigma in (0.5, 1.0):
        r = run_attack(tiny_cnn, x, None, replace(CFG, sigma_g=sigma), "smoothfool")
        assert all(_fooled(r)) and r.x_adv.min() >= 0 and r.x_adv.max() <= 1
        rough[sigma] = roughness_normalised(r.x_adv - x)
    assert (rough[1.0] < rough[0.5]).all(), rough


@pytest.mark.parametrize("kind", ["uniform", "linear"])
def test_uniform_and_linear_kernels_run(tiny_cnn, rand_images, kind):
    """Both kernels move the image inside [0, 1] (the tiny CNN is not always fooled within the cap with them)."""
    x = rand_images[:1]
    r = run_attack(tiny_cnn, x, None, replace(CFG, sf_kernel=kind, sf_size=3, sf_max_iter=5), "smoothfool")
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1 and (r.x_adv - x).abs().max() > 1e-3


def test_budget_is_the_realised_linf_and_failure_is_reported(tiny_cnn, rand_images):
    assert not METHODS["smoothfool"].bounded
    x = rand_images[:1]
    r = run_attack(tiny_cnn, x, None, CFG, "smoothfool")
    assert r.budget.max().item() == pytest.approx((r.x_adv - x).abs().max().item())
    rep = attack_tensor(tiny_cnn, x, replace(CFG, sigma_g=500.0, sf_max_iter=1), "smoothfool")
    assert not rep.summary["metrics"]["success"]
    assert any("not fool the model within 1 iterations" in w for w in rep.summary["warnings"])
    ok = attack_tensor(tiny_cnn, x, CFG, "smoothfool")
    assert ok.summary["metrics"]["success"] and ok.summary["warnings"] == []


# ----------------------------------------------------------------------------- metrics and benchmark
def test_roughness_metrics_are_registry_entries_over_successful_samples(tiny_cnn, rand_images):
    assert METRICS["roughness"].over == METRICS["roughness_n"].over == "successful"
    x = rand_images[:2]
    r = run_attack(tiny_cnn, x, None, CFG, "smoothfool")
    df = per_sample_metrics(x, r, "all")
    assert torch.allclose(torch.tensor(df["roughness"].to_numpy()), roughness(r.x_adv - x))
    rows = df.assign(success=[True, False])
    s = summarise(rows)
    assert s["roughness_n_mean"] == pytest.approx(df["roughness_n"].iloc[0])  # the failed one is left out


def test_benchmark_accepts_smoothfool_and_patch(tiny_cnn, rand_images):
    res = run_benchmark(tiny_cnn, rand_images[:2], None, ["smoothfool", "patch"],
                        replace(CFG, patch_size=8, placement="centre"), criterion="all")
    assert res.summary["method"].tolist() == ["smoothfool", "patch"]
    assert "Ω_n ×1e3" in res.markdown() and res.summary.loc[0, "asr"] == 1.0
    assert res.summary.loc[0, "roughness_n_mean"] > 0 and math.isnan(res.summary.loc[0, "eps"])
