"""Random resize-and-pad (Xie et al. 2018) and EOT in the FGSM family (Athalye et al. 2018): EOT's gradient is
the mean of the gradients of the sampled draws, the loop uses it, a deterministic model is unchanged, the
randomisation experiment's table."""

import pytest
import torch
import torch.nn.functional as F

from sdsgsm.attacks import build_config, run_attack
from sdsgsm.attacks.fgsm_family import input_gradient, project
from sdsgsm.defences import DEFENCES, DefenceConfig, Defended, resize_pad, transform
from sdsgsm.experiments.randomisation import MODES, run_randomisation


@pytest.fixture
def x():
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(11))


CFG = DefenceConfig(resize_min=0.5, resize_seed=7)


# ----------------------------------------------------------------------------- the random defence
def test_resize_pad_is_random_per_call_reproducible_and_the_identity_at_scale_one(tiny_cnn, x):
    d = DEFENCES["resize"]
    assert d.random and not d.bpda
    a, b = transform(x, "resize", CFG), transform(x, "resize", CFG)
    assert torch.equal(a, b) and a.shape == x.shape  # a fresh generator seeded resize_seed: the same draws
    defended = Defended(tiny_cnn, "resize", CFG)
    with torch.no_grad():
        first, second = defended(x), defended(x)
    assert not torch.equal(first, second)  # every forward pass draws afresh
    with torch.no_grad():
        again = Defended(tiny_cnn, "resize", CFG)(x)
    assert torch.equal(first, again)  # ... from a generator seeded once: reproducible
    with torch.no_grad():
        assert torch.equal(first, tiny_cnn(transform(x, "resize", CFG)))  # the first draw is transform's
    assert torch.equal(transform(x, "resize", DefenceConfig(resize_min=1.0)), x)  # r = H, offset 0
    out = transform(x, "resize", CFG)
    for img, src in zip(out, x):  # the nearest-resized image sits in a zero frame
        rows, cols = img.abs().sum((0, 2)) > 0, img.abs().sum((0, 1)) > 0
        r = int(rows.sum())
        assert 8 <= r <= 16 and int(cols.sum()) == r
        top, left = int(rows.float().argmax()), int(cols.float().argmax())
        crop = img[:, top:top + r, left:left + r]
        assert torch.equal(crop, F.interpolate(src[None], size=(r, r), mode="nearest")[0])


# ----------------------------------------------------------------------------- EOT
def test_eot_gradient_equals_the_mean_of_the_sampled_gradients(tiny_cnn, x):
    """g_EOT = (1/n) Σ_i ∇_x Σ CE(f(T_i(x)), y) with T_i the i-th draw of the model's generator; the reference
    takes the n draws by hand from a generator seeded the same way and differentiates each one."""
    y, n = torch.tensor([1, 4, 7]), 5
    g_eot = input_gradient(Defended(tiny_cnn, "resize", CFG), x, y, samples=n)
    gen = torch.Generator().manual_seed(CFG.resize_seed)
    grads = []
    for _ in range(n):
        xg = x.clone().requires_grad_(True)
        loss = F.cross_entropy(tiny_cnn(resize_pad(xg, CFG, gen)), y, reduction="sum")
        grads.append(torch.autograd.grad(loss, xg)[0])
    assert torch.allclose(g_eot, torch.stack(grads).mean(0), rtol=1e-5, atol=1e-7)
    assert not torch.allclose(grads[0], grads[1])  # the draws differ, so the mean is not one of them
    assert not torch.allclose(g_eot, grads[0])
    g_one = input_gradient(Defended(tiny_cnn, "resize", CFG), x, y)
    assert torch.equal(g_one, grads[0])  # n = 1 is the plain gradient of one draw


def test_eot_leaves_a_deterministic_model_alone(tiny_cnn, x):
    y = torch.tensor([0, 2, 5])
    assert torch.equal(input_gradient(tiny_cnn, x, y, samples=7), input_gradient(tiny_cnn, x, y))
    plain = Defended(tiny_cnn, "jpeg")
    assert not plain.random and torch.equal(input_gradient(plain, x, y, samples=3), input_gradient(plain, x, y))


def test_the_fgsm_loop_steps_along_the_eot_gradient(tiny_cnn, x):
    """FGSM through the random defence with eot_samples = 4: x_adv = clip(x + ε·sign(g_EOT)), where the wrapper
    first spends one draw on the clean logits and the step averages the next four."""
    cfg = build_config({"eps": 8 / 255, "eot_samples": 4})
    res = run_attack(Defended(tiny_cnn, "resize", CFG), x, None, cfg, "fgsm")
    ref = Defended(tiny_cnn, "resize", CFG)
    with torch.no_grad():
        y = ref(x).argmax(1)  # the clean draw
    g = input_gradient(ref, x, y, samples=4)
    want = project(x, x + cfg.eps * g.sign(), torch.full_like(x[:, :1], cfg.eps))
    assert torch.equal(res.x_adv, want)
    single = run_attack(Defended(tiny_cnn, "resize", CFG), x, None, build_config({"eps": 8 / 255}), "fgsm")
    assert not torch.equal(single.x_adv, res.x_adv)


def test_eot_samples_is_checked():
    with pytest.raises(ValueError, match="EOT samples"):
        build_config({"eot_samples": 0})


# ----------------------------------------------------------------------------- the experiment
def test_randomisation_table_has_the_three_modes(tiny_cnn, x):
    cfg = build_config({"eps": 16 / 255, "eps_max": 16 / 255, "steps": 2})
    res = run_randomisation(tiny_cnn, x, None, "fgsm,ifgsm", cfg, CFG, eot_samples=3, eval_draws=2, batch_size=2)
    assert list(res.table().columns) == ["no defence", *MODES]
    assert list(res.summary["eot_samples"]) == [1, 1, 3, 1, 1, 3]
    assert res.summary["asr"].between(0, 1).all() and len(res.per_sample) == 6 * len(x)
    assert (res.summary["asr_min"] <= res.summary["asr"]).all() and (res.summary["asr"] <= res.summary["asr_max"]).all()
    assert "| fgsm |" in res.markdown()
    with pytest.raises(ValueError, match="not a random defence"):
        run_randomisation(tiny_cnn, x, None, "fgsm", cfg, CFG, defence="jpeg")
    with pytest.raises(ValueError, match="FGSM family"):
        run_randomisation(tiny_cnn, x, None, "deepfool", cfg, CFG)
