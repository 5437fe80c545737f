"""The 8-bit image: every method's result, saved as PNG and reloaded, is classified as the result says;
the quantisation-aware finish of the minimum-norm methods restores a success that rounding undid."""

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sdsgsm.attacks import METHODS, AttackConfig
from sdsgsm.attacks.base import CoreOutput, finish_8bit, join_results, quantise, run_method, scalar_budget
from sdsgsm.budget import BudgetConfig
from sdsgsm.experiments.report import attack_tensor, image_files, image_record
from sdsgsm.models import Classifier
from sdsgsm.occlusion import ScanConfig

CFG = AttackConfig(steps=3, scan=ScanConfig(patch=8), budget=BudgetConfig(eps_strong=8 / 255, eps_weak=2 / 255),
                   patch_size=8, sf_max_iter=30)
MINIMUM_NORM = {"cw", "deepfool", "fab", "ead", "smoothfool"}


def test_minimum_norm_flag_is_the_registry_and_reaches_the_wrapper():
    assert {name for name, m in METHODS.items() if m.minimum_norm} == MINIMUM_NORM
    for name, m in METHODS.items():
        assert m.fn.keywords["minimum_norm"] == m.minimum_norm, name
        assert m.fn.keywords["bounded"] == m.bounded, name


@pytest.mark.parametrize("method", list(METHODS))
def test_saved_png_is_classified_as_the_result_says(tiny_cnn, rand_images, method):
    x = quantise(rand_images[:1])  # a clean image as a PNG holds it (k/255)
    report = attack_tensor(tiny_cnn, x, CFG, method)
    r, s = report.result, report.summary
    files = image_files(image_record(report))
    png = np.asarray(Image.open(io.BytesIO(files["adversarial.png"])).convert("RGB"), dtype=np.float32) / 255.0
    reloaded = torch.from_numpy(png).permute(2, 0, 1)[None]  # (1, 3, H, W)
    with torch.no_grad():
        pred = int(tiny_cnn(reloaded).argmax(1))
    assert pred == s["adversarial_8bit"]["index"] == int(r.adv_pred_8bit[0])
    m = s["metrics"]
    assert m["success_8bit"] == (pred != s["clean"]["index"])
    arrays = np.load(io.BytesIO(files["arrays.npz"]))
    assert np.array_equal(arrays["x_adv_8bit"][0], png.transpose(2, 0, 1))  # the PNG is the 8-bit array
    assert np.array_equal(arrays["x_adv"], r.x_adv.numpy())  # the float output is kept as it was
    saved = json.loads(files["result.json"])
    assert saved["adversarial_8bit"]["index"] == pred and "adversarial.png" in saved["eight_bit"]
    eta = float(r.overshoot_8bit[0])
    if not METHODS[method].minimum_norm:
        assert eta == 0.0  # bounded methods: x_adv untouched, only rounded for the file
        torch.testing.assert_close(r.x_adv_8bit, quantise(r.x_adv), atol=0, rtol=0)
    elif m["success"] and not math.isnan(eta):
        assert m["success_8bit"]  # the finish keeps a float success in the file


class SumModel(nn.Module):
    """Two classes: logit_0 = s0 − Σx, logit_1 = 0 (class 1 once the pixel sum passes s0)."""

    def __init__(self, s0: float):
        super().__init__()
        self.s0 = s0

    def forward(self, x):
        s = x.double().flatten(1).sum(1)
        return torch.stack([self.s0 - s, torch.zeros_like(s)], 1).float()


def _case():
    """Clean image of 48 pixels at 100/255 (class 0); δ = +0.3/255 everywhere fools as float (sum up
    14.4/255 past a threshold 10/255 away), but rounds back to the clean image."""
    x = torch.full((1, 3, 4, 4), 100 / 255)
    model = SumModel(float(x.double().sum()) + 10 / 255)
    x_adv = x + 0.3 / 255
    return model, x, x_adv, model(x_adv), torch.tensor([0])


def test_finish_restores_a_success_that_rounding_undid():
    model, x, x_adv, adv, y = _case()
    assert int(adv.argmax(1)) == 1 and int(model(quantise(x_adv)).argmax(1)) == 0  # rounding undoes it
    x8, logits8, eta = finish_8bit(model, x, x_adv, adv, y)
    # (1+η)·0.3/255 first rounds to 1/255 at η = 1.28 (0.02 doubled six times: 0.3·1.64 < 0.5 ≤ 0.3·2.28)
    assert float(eta[0]) == pytest.approx(1.28) and int(logits8.argmax(1)) == 1
    torch.testing.assert_close(x8, x + 1 / 255, atol=1e-7, rtol=0)
    assert torch.equal(quantise(x8), x8)  # on the 8-bit grid
    plain, plain_logits, none = finish_8bit(model, x, x_adv, adv, y, finish=False)
    assert int(plain_logits.argmax(1)) == 0 and float(none[0]) == 0.0  # without the finish: only rounding


def test_finish_gives_up_within_its_bound():
    model, x, x_adv, adv, y = _case()
    x8, logits8, eta = finish_8bit(model, x, x_adv, adv, y, tries=5)  # η ≤ 0.32: never reaches the grid
    assert math.isnan(float(eta[0])) and int(logits8.argmax(1)) == 0 and torch.equal(x8, quantise(x_adv))
    bound = torch.full((1, 1, 4, 4), 0.4 / 255)  # a budget below half a grey level: clipped, rounds back
    _, logits8, eta = finish_8bit(model, x, x_adv, adv, y, bound=bound)
    assert math.isnan(float(eta[0])) and int(logits8.argmax(1)) == 0


def test_wrapper_runs_the_finish_for_minimum_norm_methods_only():
    model, x, x_adv, _, _ = _case()
    clf = Classifier(model, "sum", ["a", "b"], 4)
    core = lambda model, x, y, clean, cfg, scan: CoreOutput(x_adv, scalar_budget(x, 0.3 / 255))  # noqa: E731
    plain = run_method("toy", core, clf, x, None, AttackConfig())
    finished = run_method("toy", core, clf, x, None, AttackConfig(), minimum_norm=True, bounded=False)
    for r in (plain, finished):
        assert int(r.adv_pred[0]) == 1 and torch.equal(r.x_adv, x_adv) and r.finish_time_s > 0
    assert int(plain.adv_pred_8bit[0]) == 0 and int(finished.adv_pred_8bit[0]) == 1
    assert float(finished.overshoot_8bit[0]) == pytest.approx(1.28)
    joined = join_results([finished, finished])  # memory-split parts join with their 8-bit images and times
    assert joined.x_adv_8bit.shape[0] == 2 and joined.overshoot_8bit.shape == (2,)
    assert joined.finish_time_s == pytest.approx(2 * finished.finish_time_s)


def test_the_finish_follows_the_success_metric_on_an_image_the_model_already_gets_wrong():
    """The label says class 1, the model says 0: the float attack moves the prediction to 1 (a success by the
    metric: the prediction changed), rounding brings 0 back, and the finish must restore 1, as it does for a
    clean-correct image (it once compared with the label, which the float result equals here)."""
    model, x, x_adv, _, _ = _case()
    clf = Classifier(model, "sum", ["zero", "one"], 4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

    def core(model_, x_, y_, clean_, cfg_, scan_):
        return CoreOutput(x_adv.to(x_), scalar_budget(x_, 1.0))

    r = run_method("toy", core, clf, x, torch.tensor([1]), AttackConfig(), minimum_norm=True, bounded=False)
    assert int(r.clean_pred[0]) == 0 and int(r.y[0]) == 1 and int(r.adv_pred[0]) == 1
    assert int(r.adv_pred_8bit[0]) == 1 and float(r.overshoot_8bit[0]) > 0
