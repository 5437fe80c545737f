"""``python -m sdsgsm attack``: round trip and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sdsgsm.cli import main
from sdsgsm.experiments.report import OUTPUT_FILES
from sdsgsm.params import parse_number as number

GALLERY = "imagenet/imagenet_00_243.jpg"


def test_numbers_accept_fractions():
    assert number("8/255") == 8 / 255 and number("0.5") == 0.5 and number("1e-2") == 0.01


def test_round_trip_writes_every_file(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["attack", "--image", GALLERY, "--method", "sd-sgsm", "--patch", "32", "--steps", "3",
               "--alpha", "2/255", "--eps-weak", "1/255", "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    res = json.loads((out / "result.json").read_text())
    assert res["label"] == {"index": 243, "name": "bull mastiff", "source": "true label"}
    assert res["parameters"]["steps"] == 3 and res["parameters"]["scan"]["patch"] == 32
    assert len(res["region_boxes"]) == 1 and len(res["clean"]["top5"]) == 5
    arrays = np.load(out / "arrays.npz")
    names = ("x", "x_adv", "x_adv_8bit", "saliency", "budget")
    assert {k: arrays[k].dtype for k in arrays} == dict.fromkeys(names, np.float32)
    x, x_adv, budget = arrays["x"], arrays["x_adv"], arrays["budget"]
    assert x.shape == x_adv.shape == (1, 3, 224, 224) and arrays["saliency"].shape == (1, 7, 7)
    assert (np.abs(x_adv - x) <= budget + 1e-7).all()
    assert res["metrics"]["linf"] == pytest.approx(float(np.abs(x_adv - x).max()), rel=1e-6)
    png = np.asarray(Image.open(out / "adversarial.png"), dtype=np.float32) / 255
    assert np.abs(png - x_adv[0].transpose(1, 2, 0)).max() <= 0.5 / 255 + 1e-6
    assert Image.open(out / "saliency.png").size == (224, 224)


def test_external_image_file_uses_clean_prediction(tmp_path):
    img = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)).save(img)
    argv = ["attack", "--image", str(img), "--method", "fgsm", "--patch", "112", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    res = json.loads((tmp_path / "o" / "result.json").read_text())
    assert res["label"]["source"] == "clean prediction" and res["method"] == "fgsm"


@pytest.mark.parametrize("args, message", [
    (["--eps-strong", "abc"], "not a number"),
    (["--eps-weak", "6/255", "--eps-strong", "4/255"], "ε_weak ≤ ε_strong"),
    (["--eps-strong", "9/255"], "exceeds ε_max"),
    (["--eps", "nan"], "finite"),
    (["--patch", "-1"], "Patch size"), (["--seed", "-1"], "Seed"), (["--steps", "1001"], "outside 1 … 1000"),
    (["--patch", "300"], "larger than the image"),
    (["--steps", "0"], "Steps"),
    (["--omega", "-1"], "ω"),
    (["--method", "nope"], "invalid choice"),
    (["--label", "5000"], "outside"),
    (["--image", "does/not/exist.png"], "does not exist"),
])
def test_bad_flags_give_one_line_errors(tmp_path, capsys, args, message):
    base = {"--image": GALLERY, "--out": str(tmp_path / "o")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["attack", *[t for kv in base.items() for t in kv]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_module_entry_point_bad_image_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "fake.jpg"
    bad.write_text("this is not an image")
    proc = subprocess.run([sys.executable, "-m", "sdsgsm", "attack", "--image", str(bad), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
