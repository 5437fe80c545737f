"""Feature-squeezing detection (Xu et al. 2018): the score against an independent computation, the threshold's
false-positive rate, the adaptive attack (Carlini & Wagner 2017) lowering the detection rate, files, the CLI."""

import io
import json

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import torch
from torch import nn

from sdsgsm.attacks import build_config
from sdsgsm.cli import COMMANDS, main
from sdsgsm.cli import detect as detect_cli
from sdsgsm.defences import DefenceConfig
from sdsgsm.detection import (
    ADAPTIVE_NAME,
    DetectionConfig,
    adaptive_attack,
    flagged,
    margin,
    scores,
    threshold_at,
)
from sdsgsm.experiments.detection import detection_files, roc_curves, run_detection
from sdsgsm.models import Classifier


# ----------------------------------------------------------------------------- the score and the threshold
def test_score_is_the_max_l1_distance_of_the_softmaxes(tiny_cnn):
    """Independent reference: numpy rint for the bit depth and scipy's median filter (reflect) for the median."""
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    cfg = DetectionConfig(defence=DefenceConfig(bit_depth=3, median_window=3))
    a = x.numpy()
    squeezed = [np.rint(a * 7) / 7, scipy.ndimage.median_filter(a, size=(1, 1, 3, 3), mode="reflect")]
    with torch.no_grad():
        p = torch.softmax(tiny_cnn(x), 1)
        want = torch.stack([(p - torch.softmax(tiny_cnn(torch.from_numpy(s.astype(np.float32))), 1)).abs().sum(1)
                            for s in squeezed], 1).amax(1)
    got = scores(tiny_cnn, x, cfg, batch_size=2)
    assert torch.allclose(got, want, atol=1e-6) and (got >= 0).all() and (got <= 2).all()
    assert cfg.defence.bit_depth == 3 and DetectionConfig().defence.bit_depth == 5  # Xu et al.'s ImageNet setting


@pytest.mark.parametrize("n", [1, 7, 20, 41])
@pytest.mark.parametrize("fpr", [0.0, 0.05, 0.1, 0.5])
def test_threshold_keeps_the_false_positive_rate_on_its_clean_images(n, fpr):
    """Why it holds: t is the (k+1)-th largest clean score, k = ⌊fpr·N⌋, and only scores strictly above t are
    flagged, so at most k ≤ fpr·N of these N images are. It is also the lowest such threshold among the scores:
    at least k + 1 of them reach t. Ties (rounded scores) included."""
    s = torch.round(torch.rand(n, generator=torch.Generator().manual_seed(n)) * 20) / 20
    t = threshold_at(s, fpr)
    assert int(flagged(s, t).sum()) <= fpr * n + 1e-9
    assert int((s >= t).sum()) >= min(n, int(np.floor(fpr * n + 1e-9)) + 1)


def test_detection_config_is_checked():
    for kwargs, match in [({"fpr": 0.7}, "outside"), ({"squeezers": ("resize",)}, "cannot be a squeezer"),
                          ({"squeezers": ()}, "at least one"), ({"detect_lambda": -1.0}, "outside")]:
        with pytest.raises(ValueError, match=match):
            DetectionConfig(**kwargs)
    with pytest.raises(ValueError, match="Unknown defence"):
        DetectionConfig(squeezers=("blur",))


def test_margin_is_positive_exactly_when_misclassified():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    assert torch.equal(margin(logits, torch.tensor([0, 0])), torch.tensor([-2.0, 2.0]))


# ----------------------------------------------------------------------------- the adaptive attack
def _linear_setup():
    """A 10-class linear softmax classifier on smooth 16-px images (upsampled 4-px noise): fixed weights, fixed
    images, no random draw anywhere in the adaptive loop (PGD's random start is seeded), so the outcome below is
    the same on every run."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(768, 10))
    with torch.no_grad():
        net[1].weight.mul_(20)
    model = Classifier(net, "linear", [f"c{i}" for i in range(10)], 16)
    x = torch.rand(16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    return model, torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)


def test_adaptive_attack_lowers_the_detection_rate():
    model, x = _linear_setup()
    cfg = build_config({"eps": 16 / 255, "eps_max": 16 / 255, "steps": 20})
    det = DetectionConfig(detect_lambda=5.0)
    res = run_detection(model, x, None, "fgsm,pgd", cfg, det, batch_size=16)
    rows = res.summary.set_index("method")
    assert res.config["clean_fpr"] <= det.fpr  # on the clean images the threshold was set on
    na = rows.loc["pgd", "detection_rate"]
    ad = rows.loc[ADAPTIVE_NAME, "detection_rate"]
    assert rows.loc["pgd", "n_success"] > 0 and rows.loc[ADAPTIVE_NAME, "n_success"] > 0
    assert ad < na and ad < rows.loc["fgsm", "detection_rate"]
    assert rows.loc[ADAPTIVE_NAME, "score_mean"] < rows.loc["pgd", "score_mean"]
    # the λ = 0 baseline is the same loop without the detector term
    assert rows.loc[f"{ADAPTIVE_NAME} (λ = 0)", "mode"] == "non-adaptive"
    # per sample: flagged = score above the threshold; success = misclassified among the clean-correct
    per = res.per_sample
    assert (per["flagged"] == (per["adv_score"] > res.config["threshold"])).all()
    assert not (per["success"] & ~per["clean_correct"]).any()
    # the adaptive result stays inside the ε-box and in [0, 1]
    y = model(x).argmax(1)
    adv = adaptive_attack(model, x, y, cfg, det, res.config["threshold"])
    assert (adv.x_adv - x).abs().max() <= cfg.eps + 1e-6 and adv.x_adv.min() >= 0 and adv.x_adv.max() <= 1
    curves = roc_curves(res)
    assert {c["name"] for c in curves} >= {"pgd (non-adaptive)", f"{ADAPTIVE_NAME} (adaptive)"}
    for c in curves:
        assert c["fpr"][0] == 0 and c["tpr"][-1] == 1 and 0 <= c["auc"] <= 1


def test_detection_files(tiny_cnn, rand_images):
    res = run_detection(tiny_cnn, rand_images, None, "fgsm", build_config({"steps": 1}), batch_size=4, baseline=False)
    files = detection_files(res)
    assert list(files) == ["detection.csv", "detection_per_sample.csv", "detection.json", "detection_roc.pdf",
                           "detection_roc.png", "detection_roc.svg", "detection_roc.json"]
    back = pd.read_csv(io.BytesIO(files["detection.csv"]))
    assert list(back["method"]) == ["fgsm", ADAPTIVE_NAME]
    config = json.loads(files["detection.json"])
    assert config["clean_fpr"] <= config["fpr"] and config["squeezers"] == ["bitdepth", "median"]


# ----------------------------------------------------------------------------- the CLI
def test_detect_is_a_registered_command():
    assert detect_cli in COMMANDS


@pytest.mark.parametrize("argv, message", [(["--squeezers", "resize"], "cannot be a squeezer"),
                                           (["--fpr", "0.9"], "outside"), (["--bit-depth", "0"], "Bit depth = 0"),
                                           (["--methods", "nope"], "Unknown method 'nope'")])
def test_detect_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    assert main(["detect", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_cli_detect_on_three_gallery_images(tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(["detect", "--methods", "fgsm", "--squeezers", "bitdepth", "--data", "gallery", "--limit", "3",
               "--steps", "1", "--no-baseline", "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "| fgsm | non-adaptive |" in captured.out and f"| {ADAPTIVE_NAME} | adaptive |" in captured.out
    config = json.loads((out / "detection.json").read_text())
    assert config["n_total"] == 3 and config["squeezer_params"] == {"bitdepth": {"bit_depth": 5}}
    assert config["clean_fpr"] <= config["fpr"] and "--squeezers bitdepth" in config["command"]
    assert (out / "detection_roc.pdf").stat().st_size > 0 and len(pd.read_csv(out / "detection.csv")) == 2
