"""Model registry, offline behaviour and safe checkpoint loading."""

import copy
import io
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sdsgsm.models import (
    ModelError,
    available_models,
    cifar_resnet18,
    default_device,
    lite_forward,
    load_checkpoint,
    load_model,
)


def test_embedded_model_is_frozen_and_described(lite0):
    assert lite0.name == "efficientnet_lite0" and lite0.input_size == 224 and lite0.num_classes == 1000
    assert lite0.labels[243] == "bull mastiff"
    assert not lite0.training and not any(p.requires_grad for p in lite0.parameters())
    assert available_models()[0].name == "efficientnet_lite0" and available_models()[0].available


def test_gallery_top1_at_least_80_percent(lite0, imagenet_batch):
    x, y, _ = imagenet_batch
    with torch.inference_mode():
        pred = torch.cat([lite0(x[i:i + 10]).argmax(1) for i in range(0, len(x), 10)])
    acc = (pred == y).float().mean().item()
    assert len(y) == 20 and acc >= 0.8, f"top-1 {acc:.2f}"


def test_torchvision_model_without_cached_weights_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    info = {m.name: m for m in available_models()}
    assert not info["resnet18"].available and "torch cache" in info["resnet18"].reason
    with pytest.raises(ModelError, match="not available offline"):
        load_model("resnet18")


def test_torchvision_model_loads_from_local_cache(monkeypatch, tmp_path):
    from torchvision.models import resnet18

    (tmp_path / "checkpoints").mkdir()
    torch.save(resnet18().state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = load_model("resnet18", device="cpu")
    assert model.num_classes == 1000 and model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_unknown_model_and_device():
    with pytest.raises(ModelError, match="Unknown model"):
        load_model("vit_giant")
    with pytest.raises(ModelError, match="device"):
        default_device("tpu:0")


def _bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_paper_cifar_resnet18_state_dict_loads_with_prefixes_and_kuangliu_names():
    net = cifar_resnet18()
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and isinstance(net.maxpool, nn.Identity)
    sd = {"module." + k.replace("downsample", "shortcut").replace("fc.", "linear."): v
          for k, v in net.state_dict().items()}
    model = load_checkpoint(_bytes({"state_dict": sd}), arch="cifar_resnet18", device="cpu")
    assert model.input_size == 32 and model.labels[3] == "cat"
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(model(x), net.eval()(x))  # [0, 1] inputs, no normalisation


def test_torchscript_checkpoint(tmp_path):
    net = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)))
    path = tmp_path / "ts.pt"
    torch.jit.save(net, str(path))
    model = load_checkpoint(path, input_size=8, labels=["a", "b", "c", "d"], device="cpu")
    assert model.name == "torchscript" and model(torch.rand(3, 3, 8, 8)).shape == (3, 4)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/sdsgsm_pwned_marker",))


def test_pickle_with_code_is_refused_and_not_executed(tmp_path):
    import os

    marker = "/tmp/sdsgsm_pwned_marker"
    if os.path.exists(marker):
        os.remove(marker)
    for payload in (_bytes({"w": _Evil()}), pickle.dumps(_Evil())):
        with pytest.raises(ModelError, match="safely"):
            load_checkpoint(payload)
    assert not os.path.exists(marker)


def test_wrong_architecture_wrong_class_count_and_bad_output(tmp_path):
    with pytest.raises(ModelError, match="do not fit"):
        load_checkpoint(_bytes(nn.Linear(4, 10).state_dict() | {"fc.weight": torch.zeros(10, 512)}))
    with pytest.raises(ModelError, match="4 classes but 10"):
        load_checkpoint(_bytes(cifar_resnet18(4).state_dict()), labels=[str(i) for i in range(10)])
    four_d = torch.jit.script(nn.Conv2d(3, 5, 3))
    buf = io.BytesIO()
    torch.jit.save(four_d, buf)
    with pytest.raises(ModelError, match=r"\(N, K\)"):
        load_checkpoint(buf.getvalue(), input_size=8)
    with pytest.raises(ModelError, match="empty"):
        load_checkpoint(b"")
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ModelError, match="Unknown architecture"):
        load_checkpoint(_bytes(cifar_resnet18().state_dict()), arch="vgg99")


# ----------------------------------------------------------------------------- fast path
def _logits_and_input_grad(fn, x: torch.Tensor, y: torch.Tensor):
    x = x.clone().requires_grad_(True)
    logits = fn(x)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    return logits.detach(), grad


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max())


def test_prepared_lite_network_is_the_plain_module_in_float64(lite0, imagenet_batch):
    """Batch norm folded into the convolutions, channels last (Classifier's CPU fast path):
    the same function. In float64 no ReLU6 kink is crossed by rounding, so logits and input
    gradient must agree to ~1e-14; a wrong pad, fold or residual is off by far more."""
    from sdsgsm.incremental import compile_lite

    plain = copy.deepcopy(lite0).double()
    plain.fast = False
    net = compile_lite(plain.net, plain.mean, plain.std, torch.float64)
    x = F.interpolate(imagenet_batch[0][:2], size=(80, 80), mode="bilinear", antialias=True).double()
    y = imagenet_batch[1][:2]
    got_logits, got_grad = _logits_and_input_grad(lambda t: lite_forward(net, t), x, y)
    want_logits, want_grad = _logits_and_input_grad(plain, x, y)
    assert got_grad.dtype == torch.float64 and want_grad.abs().max() > 0
    assert _rel(got_logits, want_logits) < 1e-10
    assert _rel(got_grad, want_grad) < 1e-10


def test_fast_path_runs_in_float32_and_matches_the_plain_module(lite0, imagenet_batch):
    """What Classifier.forward runs on CPU in float32: logits within float rounding (1e-5 of the
    largest), input gradient close (rounding can cross a ReLU6 kink, which moves single
    entries by up to ~1e-2 relative in either float32 path; see bench/attack.py --step)."""
    x, y = imagenet_batch[0][:2], imagenet_batch[1][:2]
    net = lite0._fast_net(x)
    assert net is not None
    fast_logits, fast_grad = _logits_and_input_grad(lite0, x, y)
    assert torch.equal(fast_logits, lite_forward(net, x).detach())  # the fast path is what ran
    lite0.fast = False
    try:
        plain_logits, plain_grad = _logits_and_input_grad(lite0, x, y)
    finally:
        lite0.fast = True
    assert _rel(fast_logits, plain_logits) < 1e-5
    assert float((fast_grad - plain_grad).norm() / plain_grad.norm()) < 5e-2


def test_fast_path_only_where_it_is_the_same_function(lite0, tiny_cnn):
    x = torch.rand(1, 3, 64, 64)
    assert lite0._fast_net(x) is not None
    assert lite0._fast_net(x.double()) is None and tiny_cnn._fast_net(torch.rand(1, 3, 32, 32)) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert lite0._fast_net(x) is None
    model = copy.deepcopy(lite0)
    model.net._fc.weight.requires_grad_(True)  # someone wants parameter gradients
    assert model._fast_net(x) is None
    model.net._fc.weight.requires_grad_(False)
    with torch.no_grad():  # an in-place change (as load_state_dict makes) rebuilds the network
        model.net._bn1.bias.add_(0.5)
        model.net._fc.bias.sub_(1.0)
    fast = model(x)
    model.fast = False
    torch.testing.assert_close(fast, model(x), rtol=1e-5, atol=1e-4)
    assert not torch.allclose(fast, lite0(x), atol=1e-2)
    model.fast = True
    model.net._fc = nn.Linear(1280, 1000).requires_grad_(False)  # a replaced layer, too
    fast = model(x)
    model.fast = False
    torch.testing.assert_close(fast, model(x), rtol=1e-5, atol=1e-4)
