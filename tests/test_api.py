"""The public Python API (sdsgsm.api, re-exported lazily by the package) and the torchattacks-style classes."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
from helpers import TinyCNN

import sdsgsm
import sdsgsm.api as api
import sdsgsm.attacks as attacks
from sdsgsm.attacks.callables import Attack, class_name

# The stable public signatures: changing one is a breaking change and must be deliberate.
SIGNATURES = {
    "load_model": "(name: 'str' = 'efficientnet_lite0', device: 'str | None' = None) -> 'Classifier'",
    "wrap_model": "(module: 'nn.Module', *, mean: 'Sequence[float]' = (0.0, 0.0, 0.0), "
                  "std: 'Sequence[float]' = (1.0, 1.0, 1.0), labels: 'Sequence[str] | None' = None, "
                  "input_size: 'int' = 224, name: 'str' = 'custom') -> 'Classifier'",
    "load_image": "(src: 'str | Path | bytes', size: 'int' = 224) -> 'torch.Tensor'",
    "config": "(**params: 'Any') -> 'AttackConfig'",
    "scan": "(model: 'nn.Module', images: 'torch.Tensor', labels: 'torch.Tensor | None' = None, "
            "**params: 'Any') -> 'ScanResult'",
    "attack": "(model: 'nn.Module', images: 'torch.Tensor', labels: 'torch.Tensor | None' = None, "
              "method: 'str' = 'sd-sgsm', **params: 'Any') -> 'AttackResult'",
    "benchmark": "(model: 'nn.Module', images: 'torch.Tensor', labels: 'torch.Tensor | None' = None, "
                 "methods: 'Sequence[str] | None' = None, *, preset: 'str | None' = None, "
                 "batch_size: 'int' = 16, **params: 'Any') -> 'BenchmarkResult'",
}


def test_every_public_name_is_reachable_from_the_package():
    assert set(sdsgsm._API) == set(api.__all__)
    for name in api.__all__:
        assert getattr(sdsgsm, name) is getattr(api, name)
    with pytest.raises(AttributeError):
        sdsgsm.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_public_functions_keep_their_signatures(name):
    assert str(inspect.signature(getattr(api, name))) == SIGNATURES[name]


def test_importing_the_package_stays_light():
    code = "import sys, sdsgsm; print('torch' in sys.modules, 'sdsgsm.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_attack_and_scan_on_a_plain_module(rand_images):
    net = TinyCNN().eval()
    x = rand_images[:2]
    result = sdsgsm.attack(net, x, method="pgd", eps=4 / 255, steps=2)
    assert (result.x_adv - x).abs().max() <= 4 / 255 + 1e-6
    assert result.adv_pred.shape == (2,)
    s = sdsgsm.scan(net, x, patch=8)
    assert s.grid.shape == (2, x.shape[2] // 8, x.shape[3] // 8)


@pytest.mark.parametrize("call, message", [
    (lambda net, x: sdsgsm.attack(net, x, method="nope"), "Unknown method 'nope'"),
    (lambda net, x: sdsgsm.attack(net, x, method="pgd", epsilon=0.1), "Unknown parameter 'epsilon'"),
    (lambda net, x: sdsgsm.attack(net, x, method="pgd", eps=1.0), "outside"),
    (lambda net, x: sdsgsm.scan(net, x, steps=3), "Unknown scan parameter 'steps'"),
])
def test_bad_arguments_give_one_line_errors(rand_images, call, message):
    with pytest.raises(ValueError, match=message) as info:
        call(TinyCNN().eval(), rand_images[:1])
    assert "\n" not in str(info.value)


def test_wrap_model_normalises_inside():
    net = TinyCNN().eval()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    wrapped = sdsgsm.wrap_model(net, mean=mean, std=std, input_size=32)
    x = torch.rand(2, 3, 32, 32)
    expected = net((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(wrapped(x), expected)
    assert wrapped.labels == [f"class {i}" for i in range(10)]


def test_benchmark_from_python(rand_images):
    result = sdsgsm.benchmark(TinyCNN().eval(), rand_images[:2], methods=["fgsm", "sd-sgsm"], eps=4 / 255, steps=1)
    assert list(result.summary["method"]) == ["fgsm", "sd-sgsm"]


def test_every_registry_method_has_a_torchattacks_style_class():
    assert set(attacks.CALLABLES) == {class_name(m.label) for m in attacks.METHODS.values()}
    for name, cls in attacks.CALLABLES.items():
        assert getattr(attacks, name) is cls and issubclass(cls, Attack)
        assert cls.method in attacks.METHODS
        assert attacks.METHODS[cls.method].label in cls.__doc__


def test_a_class_swaps_into_a_torchattacks_loop(rand_images):
    net = TinyCNN().eval()
    x = rand_images[:3]
    y = net(x).argmax(1)
    atk = attacks.PGD(net, eps=8 / 255, steps=3, alpha=2 / 255)
    adv = atk(x, y)
    expected = sdsgsm.attack(net, x, y, method="pgd", eps=8 / 255, steps=3, alpha=2 / 255).x_adv
    torch.testing.assert_close(adv, expected)  # PGD's random start is seeded by the config
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
    assert isinstance(atk.run(x, y), sdsgsm.AttackResult)


def test_class_errors():
    with pytest.raises(ValueError, match="Unknown parameter 'epsilon'"):
        attacks.SDSGSM(TinyCNN(), epsilon=0.1)
    with pytest.raises(TypeError, match="base class"):
        Attack(TinyCNN())
