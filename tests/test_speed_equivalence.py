"""The fast paths give the numbers of the code they replace.

* DeepFool: :func:`sdsgsm.attacks.deepfool.deepfool` (one forward pass per iteration) against IBM ART's
  ``DeepFool.generate`` (a forward pass per class gradient) with the registry's parameters: the same
  x_adv bit for bit, on the small 10-class CNN (ART's all-classes path) and on EfficientNet-Lite0 (its
  ``nb_grads`` subset path, one image at a time as the benchmark runs it).
* CW and EAD: ART's attacks on :func:`~sdsgsm.attacks.art_baselines.shared_pass_classifier` (class
  gradients from the forward pass of the last prediction) against ART's plain PyTorchClassifier: the
  same x_adv bit for bit.
* SmoothFool: the core (label checks, candidate gradients and w from shared passes) against a plain
  per-image Algorithm 2 (a pass for every check, the gradients from a batch of copies): the same x_adv
  up to float rounding and the same labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdsgsm.attacks import AttackConfig
from sdsgsm.attacks.art_baselines import art_classifier, baseline_params, seeded, shared_pass_classifier
from sdsgsm.attacks.deepfool import deepfool
from sdsgsm.attacks.smoothfool import smoothfool_core

art_evasion = pytest.importorskip("art.attacks.evasion", reason="needs adversarial-robustness-toolbox (ART)")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _art_deepfool(model, x: torch.Tensor, cfg: AttackConfig, k: int) -> np.ndarray:
    params = {key: v for key, v in baseline_params("deepfool", cfg).items() if key != "art_class"}
    clf = art_classifier(model, tuple(x.shape[1:]), k)
    attack = art_evasion.DeepFool(clf, batch_size=len(x), verbose=False, **params)
    return attack.generate(x=x.numpy())


def _ours(model, x: torch.Tensor, cfg: AttackConfig, k: int) -> np.ndarray:
    p = baseline_params("deepfool", cfg)
    return deepfool(model, x.numpy(), max_iter=p["max_iter"], epsilon=p["epsilon"], nb_grads=p["nb_grads"],
                    nb_classes=k)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_deepfool_equals_art_on_the_small_cnn(tiny_cnn, rand_images, steps):
    cfg = AttackConfig(steps=steps)
    ref = _art_deepfool(tiny_cnn, rand_images, cfg, 10)
    ours = _ours(tiny_cnn, rand_images, cfg, 10)
    assert np.abs(ref - rand_images.numpy()).max() > 0  # it moved
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.slow
def test_deepfool_equals_art_on_lite0(lite0):
    from sdsgsm.data import load_gallery

    x, _, _ = load_gallery("imagenet", lite0.input_size, 2)
    cfg = AttackConfig(steps=10)
    for i in range(len(x)):
        xi = x[i:i + 1]
        ref = _art_deepfool(lite0, xi, cfg, 1000)
        with torch.no_grad():
            moved = lite0(torch.from_numpy(ref)).argmax(1) != lite0(xi).argmax(1)
        np.testing.assert_array_equal(_ours(lite0, xi, cfg, 1000), ref)
        assert bool(moved)


def _art_run(name: str, classifier, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig, **over) -> np.ndarray:
    params = {key: v for key, v in baseline_params(name, cfg).items() if key != "art_class"} | over
    attack = getattr(art_evasion, baseline_params(name, cfg)["art_class"])(classifier, batch_size=len(x),
                                                                            verbose=False, **params)
    with seeded(cfg.seed, x.device):
        return attack.generate(x=x.numpy(), y=y.numpy())


@pytest.mark.parametrize("name", ["cw", "ead"])
def test_shared_pass_classifier_gives_arts_numbers_on_the_small_cnn(tiny_cnn, rand_images, name):
    cfg = AttackConfig(steps=6)
    y = tiny_cnn(rand_images).argmax(1)
    over = {"initial_const": 20.0, "learning_rate": 0.2}  # so that the small CNN's images move in 6 steps
    ref = _art_run(name, art_classifier(tiny_cnn, (3, 32, 32), 10), rand_images, y, cfg, **over)
    ours = _art_run(name, shared_pass_classifier(tiny_cnn, (3, 32, 32), 10), rand_images, y, cfg, **over)
    assert np.abs(ref - rand_images.numpy()).max() > 0  # it moved
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.slow
def test_shared_pass_cw_gives_arts_numbers_on_lite0(lite0):
    from sdsgsm.data import load_gallery

    x, y, _ = load_gallery("imagenet", lite0.input_size, 1)
    cfg = AttackConfig(steps=10)
    ref = _art_run("cw", art_classifier(lite0, (3, 224, 224), 1000), x, y, cfg)
    ours = _art_run("cw", shared_pass_classifier(lite0, (3, 224, 224), 1000), x, y, cfg)
    assert np.abs(ref - x.numpy()).max() > 0
    np.testing.assert_array_equal(ours, ref)


def _reference_smoothfool(model, x: torch.Tensor, y: int, cfg: AttackConfig) -> torch.Tensor:
    """Algorithm 2 of Dabouei et al. (WACV 2020) for one image, written plainly: a separate pass for every
    label check, the candidates' gradients from a batch of copies, w from its own pass."""
    from sdsgsm.attacks.smoothfool import DEEPFOOL, smooth_clip, smoothing_kernel
    from sdsgsm.smoothing import blur

    def diff_grads(xp, classes):
        xs = xp.detach().expand(len(classes), *xp.shape[1:]).clone().requires_grad_(True)
        logits = model(xs).float()
        idx = torch.arange(len(classes))
        d = logits[idx, classes] - logits[idx, y]
        return d.detach(), torch.autograd.grad(d.sum(), xs)[0]

    g1d = smoothing_kernel(cfg)
    xi = x.clone()
    for _ in range(cfg.sf_max_iter):
        with torch.no_grad():
            if int(model(xi).argmax(1)) != y:
                break
            logits = model(xi).float()[0].clone()
        logits[y] = float("-inf")
        cand = logits.topk(DEEPFOOL["nb_candidates"] if len(logits) > DEEPFOOL["nb_candidates"] else
                           len(logits) - 1).indices
        r_tot, target = torch.zeros_like(xi), int(cand[0])
        for _ in range(DEEPFOOL["max_iter"]):
            xp = (xi + (1 + DEEPFOOL["overshoot"]) * r_tot).clamp(0.0, 1.0)
            with torch.no_grad():
                pred = int(model(xp).argmax(1))
            if pred != y:
                target = pred
                break
            diff, grads = diff_grads(xp, cand)
            norms = grads.flatten(1).norm(dim=1).clamp_min(1e-12)
            best = int((diff.abs() / norms).argmin())
            target = int(cand[best])
            r_tot = r_tot + (diff[best].abs() + 1e-4) / norms[best] ** 2 * grads[best:best + 1]
        _, w = diff_grads(xp, torch.tensor([target]))
        w_s = blur(w, g1d)
        r = float((w * (xp - xi)).sum()) / float((w * w_s).sum()) * w_s
        xi = xi + smooth_clip(xi, r, g1d, cfg.sf_clip_eps)
    return xi


@pytest.mark.parametrize("sigma_g", [1.0, 2.0])
def test_smoothfool_equals_the_plain_algorithm(tiny_cnn, rand_images, sigma_g):
    cfg = AttackConfig(sigma_g=sigma_g, sf_max_iter=5)
    y = tiny_cnn(rand_images).argmax(1)
    ours = smoothfool_core(tiny_cnn, rand_images, y, None, cfg).x_adv
    ref = torch.cat([_reference_smoothfool(tiny_cnn, rand_images[i:i + 1], int(y[i]), cfg) for i in range(len(y))])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert torch.equal(tiny_cnn(ours).argmax(1), tiny_cnn(ref).argmax(1))
    assert (ours - rand_images).abs().amax() > 1e-3  # it moved
