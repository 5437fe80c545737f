"""Issue 14, numerical safety: no NaN or inf reaches x_adv or a metric, and every bounded method keeps
x_adv ∈ [0, 1] and |x_adv − x| ≤ E (eq. 12–15) for any valid configuration (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TinyCNN, tiny_classifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from sdsgsm.attacks import METHODS, build_config, run_attack
from sdsgsm.metrics import METRICS, per_sample_metrics
from sdsgsm.models import Classifier, ModelError
from sdsgsm.params import GRAD_NORMS, REGIONS

BOUNDED = [name for name, m in METHODS.items() if m.bounded]
FAMILY = [name for name, m in METHODS.items() if m.backend == "sdsgsm"]
TINY = tiny_classifier()
X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([3, 7])


@st.composite
def configs(draw):
    strong = draw(st.integers(0, 32)) / 2  # shown units 1/255, half steps as the slider
    weak = draw(st.integers(0, int(strong * 2))) / 2
    eps = draw(st.integers(0, 32)) / 2
    values = {
        "eps_strong": strong / 255, "eps_weak": weak / 255, "eps_max": max(strong, eps, 8.0) / 255,
        "eps": eps / 255,
        "omega": 10 ** draw(st.floats(-3, 9)),
        "grad_norm": draw(st.sampled_from(GRAD_NORMS)),
        "region": draw(st.sampled_from(REGIONS)),
        "patch": draw(st.sampled_from([4, 8, 16])),
        "steps": draw(st.integers(1, 4)),
        "seed": draw(st.integers(0, 2**31 - 1)),
        "tau": draw(st.floats(0, 5)),
    }
    if draw(st.booleans()):
        values["alpha"] = draw(st.integers(1, 64)) / 2 / 255
    return build_config(values)


@pytest.mark.parametrize("method", BOUNDED)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_bounded_methods_stay_in_the_box_for_any_config(method, cfg):
    res = run_attack(TINY, X, Y, cfg, method)
    x_adv = res.x_adv
    assert torch.isfinite(x_adv).all() and torch.isfinite(res.adv_logits).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert ((x_adv - X).abs() <= res.budget + 1e-6).all(), float(((x_adv - X).abs() - res.budget).max())
    per = per_sample_metrics(X, res)
    if res.queries is None:  # a white-box method asks no queries: its `queries` column is blank by design
        per = per.drop(columns=[METRICS["queries"].source])
    table = per.select_dtypes("number").to_numpy(dtype=float)
    assert np.isfinite(table).all(), table


class Constant(nn.Module):
    """Logits that do not depend on the input: every input gradient is exactly zero."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 10, device=x.device) + x.sum() * 0 + torch.arange(10.0, device=x.device)


class Saturated(nn.Module):
    """TinyCNN's logits × 1e4: the softmax is one-hot in float32 and the loss gradient underflows."""

    def __init__(self):
        super().__init__()
        self.net = TinyCNN()

    def forward(self, x):
        return self.net(x) * 1e4


@pytest.mark.parametrize("net", [Constant(), Saturated()], ids=["zero_gradient", "saturated_softmax"])
@pytest.mark.parametrize("method", FAMILY)
def test_zero_and_underflowing_gradients_give_finite_results(net, method):
    model = Classifier(net, "odd", [f"c{i}" for i in range(10)], 32)
    cfg = build_config({"omega": 1e9, "steps": 3, "patch": 8})
    res = run_attack(model, X, Y, cfg, method)
    assert torch.isfinite(res.x_adv).all() and res.x_adv.min() >= 0 and res.x_adv.max() <= 1


class NaNOut(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 10), float("nan"), device=x.device)


@pytest.mark.parametrize("method", ["fgsm", "sd-sgsm", "pgd"])
def test_a_model_with_nan_output_gives_a_clear_message(method):
    model = Classifier(NaNOut(), "nan", [f"c{i}" for i in range(10)], 32)
    with pytest.raises(ModelError, match="NaN or infinite logits"):
        run_attack(model, X, Y, build_config({"patch": 8}), method)
