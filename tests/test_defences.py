"""Input-transform defences: transforms equal ART's / independent references, BPDA's gradient is
the identity's, adaptive ≥ non-adaptive where it is certain, the grid, the CLI, the page, bad input."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from helpers import page_path
from PIL import Image
from streamlit.testing.v1 import AppTest
from torch import nn

import sdsgsm.experiments.defence_grid
from sdsgsm.attacks import build_config
from sdsgsm.cli import main
from sdsgsm.defences import DEFENCES, DefenceConfig, Defended, defend, parse_defences, transform
from sdsgsm.experiments.defence_grid import MODES, defence_files, run_defence_grid
from sdsgsm.models import Classifier
from sdsgsm.params import DEFENCE_NAMES, DEFENCE_PARAMS, parse_query
from sdsgsm.smoothing import gaussian_width

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


# ----------------------------------------------------------------------------- the transforms
def test_jpeg_median_bitdepth_equal_art_and_an_independent_reference(images):
    from art.defences.preprocessor import FeatureSqueezing, JpegCompression, SpatialSmoothing

    a = images.numpy()
    cfg = DefenceConfig(jpeg_quality=50, median_window=5, bit_depth=3)
    art_jpeg = JpegCompression(clip_values=(0.0, 1.0), quality=50, channels_first=True)(a)[0]
    assert np.array_equal(transform(images, "jpeg", cfg).numpy(), art_jpeg)
    for i, img in enumerate(a):  # PIL directly, with ART's cast x·255 -> uint8
        buf = io.BytesIO()
        Image.fromarray((img.transpose(1, 2, 0) * 255).astype(np.uint8)).save(buf, format="jpeg", quality=50)
        ref = np.asarray(Image.open(buf), dtype=np.float32).transpose(2, 0, 1) / 255.0
        assert np.allclose(transform(images[i:i + 1], "jpeg", cfg).numpy()[0], ref, atol=1e-7)
    art_median = SpatialSmoothing(window_size=5, channels_first=True, clip_values=(0.0, 1.0))(a)[0]
    ours = transform(images, "median", cfg).numpy()
    assert np.array_equal(ours, art_median)
    assert np.array_equal(ours, scipy.ndimage.median_filter(a, size=(1, 1, 5, 5), mode="reflect"))
    art_bits = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=3)(a)[0]
    ours = transform(images, "bitdepth", cfg).numpy()
    assert np.allclose(ours, art_bits, atol=1e-7) and np.allclose(ours, np.rint(a * 7) / 7, atol=1e-7)
    assert len(np.unique(ours)) <= 8
    assert torch.equal(transform(images, "none"), images)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 0.5])
def test_gaussian_equals_scipy_gaussian_filter(images, sigma):
    """Our kernel (width 5σ rounded up to odd, replicate padding) is scipy's with mode 'nearest' and the
    same radius; both normalise the kernel to sum 1."""
    radius = (gaussian_width(sigma) - 1) // 2
    ref = scipy.ndimage.gaussian_filter(images.double().numpy(), sigma=(0, 0, sigma, sigma), mode="nearest",
                                        truncate=radius / sigma)
    ours = transform(images.double(), "gaussian", DefenceConfig(gaussian_sigma=sigma)).numpy()
    assert ours.dtype == np.float64 and np.allclose(ours, ref, rtol=0, atol=1e-12)


def test_tvm_equals_art_with_the_fixed_mask_and_does_not_depend_on_the_batch():
    from art.defences.preprocessor import TotalVarMin

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    cfg = DefenceConfig(tvm_iter=3)
    ours = transform(x, "tvm", cfg)
    art = TotalVarMin(prob=0.3, norm=2, lamb=0.5, max_iter=3, clip_values=(0.0, 1.0))
    for i in range(2):
        np.random.seed(0)
        ref = art(x[i:i + 1].numpy().transpose(0, 2, 3, 1).copy())[0][0].transpose(2, 0, 1)
        assert np.array_equal(ours[i].numpy(), ref)
    assert torch.equal(transform(x[1:], "tvm", cfg)[0], ours[1])  # the same image alone: the same output
    assert not torch.equal(ours, x)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", [name for name, d in DEFENCES.items() if d.bpda])
def test_bpda_gradient_equals_the_identity_gradient_at_t_of_x(tiny_cnn, name):
    """Athalye et al. 2018 §4.1: ∇_x L(f(T(x))) through BPDA is ∇_z L(f(z)) at z = T(x)."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    y = torch.tensor([1, 4])
    cfg = DefenceConfig(tvm_iter=2)
    xg = x.clone().requires_grad_(True)
    (g_bpda,) = torch.autograd.grad(F.cross_entropy(Defended(tiny_cnn, name, cfg)(xg), y), xg)
    z = transform(x, name, cfg).requires_grad_(True)
    (g_id,) = torch.autograd.grad(F.cross_entropy(tiny_cnn(z), y), z)
    assert torch.equal(g_bpda, g_id) and g_id.abs().sum() > 0
    assert DEFENCES[name].bpda


def test_gaussian_is_attacked_with_its_exact_gradient(tiny_cnn):
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    model = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(192, 3)), "lin", ["a", "b", "c"], 8).double()
    f = lambda t: F.cross_entropy(model(defend(t, "gaussian")), torch.tensor([2]))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(True),))
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xg), xg)
    z = transform(x, "gaussian").requires_grad_(True)
    (g_id,) = torch.autograd.grad(F.cross_entropy(model(z), torch.tensor([2])), z)
    assert not torch.allclose(g, g_id)  # not the identity backward: the blur's adjoint


class Margin(nn.Module):
    """Two classes, logits (0, w·x + b): linear, so its cross-entropy gradient has the sign of ±w."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.register_buffer("w", w)
        self.b = b

    def forward(self, x):
        m = (x * self.w).flatten(1).sum(1) + self.b
        return torch.stack([torch.zeros_like(m), m], 1)


def test_adaptive_asr_is_at_least_non_adaptive_where_it_is_certain():
    """Why it is certain here: f is linear with two classes and the Gaussian defence T is linear, so the
    defended margin is m(T x) = (Tᵀw)·x + b, and the cross-entropy gradient of f∘T is a positive multiple of
    ∓Tᵀw. One FGSM step through the defence, δ = ∓ε·sign(Tᵀw), therefore minimises the defended margin of
    the true class over the whole ε-box (the images lie in [0.25, 0.75], so the [0, 1] clip never acts).
    The non-adaptive δ = ∓ε·sign(w) lies in the same box, so wherever it flips the defended prediction the
    adaptive one does too: per sample, success non-adaptive ⇒ success adaptive, hence ASR ≥. w is a weak
    smooth pattern plus a strong checkerboard that the blur removes, so the inequality is strict here.

    With a BPDA defence (bit depth) the same linear f has a constant gradient, so BPDA's adaptive FGSM is
    exactly the non-adaptive one (equal x_adv, equal ASR)."""
    side = 16
    i, j = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    checker = ((i + j) % 2 * 2 - 1).float()
    smooth = torch.where(j < side // 2, 1.0, -1.0) * 0.05
    w = (checker + smooth).expand(3, side, side).clone()
    model = Classifier(Margin(w, 0.0), "margin", ["a", "b"], side)
    x = 0.25 + 0.5 * torch.rand(24, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = Defended(model, "gaussian")(x).argmax(1)  # every sample is defended-clean-correct
    grid = run_defence_grid(model, x, y, ["fgsm"], ["gaussian", "bitdepth"], build_config({"eps": 8 / 255}),
                            batch_size=24)
    per = grid.per_sample.set_index(["defence", "mode", "index"]).sort_index()
    na, ad = (per.loc[("gaussian", m)]["success"].to_numpy(bool) for m in MODES)
    assert (ad | ~na).all()  # success non-adaptive ⇒ success adaptive, sample by sample
    cells = grid.cells.set_index(["defence", "mode"]).sort_index()
    assert cells.loc[("gaussian", "adaptive"), "asr"] > cells.loc[("gaussian", "non-adaptive"), "asr"]
    assert cells.loc[("gaussian", "non-adaptive"), "n"] == 24
    bits = [per.loc[("bitdepth", m)]["success"].to_numpy(bool) for m in MODES]
    assert np.array_equal(*bits)


# ----------------------------------------------------------------------------- the grid
@pytest.fixture
def attack_calls(monkeypatch):
    calls = []
    real = sdsgsm.experiments.defence_grid.run_attack

    def counting(model, x, y, cfg, method="sd-sgsm", scan=None):
        calls.append((getattr(model, "defence", "bare"), method))
        return real(model, x, y, cfg, method, scan)

    monkeypatch.setattr(sdsgsm.experiments.defence_grid, "run_attack", counting)
    return calls


def test_grid_crafts_each_non_adaptive_attack_once_and_writes_its_files(tiny_cnn, rand_images, attack_calls):
    cfg = build_config({"patch": 8, "steps": 2})
    store = {}
    grid = run_defence_grid(tiny_cnn, rand_images, None, "fgsm,sd-fgsm", "jpeg,bitdepth", cfg, batch_size=4,
                            store=store)
    assert sorted(attack_calls) == sorted([(d, m) for m in ("fgsm", "sd-fgsm") for d in ("bare", "jpeg", "bitdepth")])
    assert len(grid.cells) == 2 * 3 * 2 and len(grid.per_sample) == 12 * 4
    assert grid.config["defences"] == ["none", "jpeg", "bitdepth"]
    for key in ("method", "defence", "mode", "params", "clean_acc", "n", "asr", "acc_all", "l2_mean", "ssim_mean",
                "note"):
        assert key in grid.cells.columns
    assert grid.matrix("adaptive").shape == (2, 3) and list(grid.matrix("adaptive").columns) == grid.config["defences"]
    none = grid.cells[grid.cells["defence"] == "none"].set_index(["method", "mode"])
    assert none.loc[("fgsm", "adaptive"), "asr"] == none.loc[("fgsm", "non-adaptive"), "asr"]
    # a non-adaptive cell classifies T(x_adv) of the bare-model attack with the defended model
    craft = store[("craft", "fgsm")]
    with torch.no_grad():
        want = Defended(tiny_cnn, "jpeg")(craft.x_adv).argmax(1).numpy()
    rows = grid.per_sample.query("method == 'fgsm' and defence == 'jpeg' and mode == 'non-adaptive'")
    assert np.array_equal(rows["adv_pred"].to_numpy(), want)
    files = defence_files(grid)
    assert list(files) == ["defences.csv", "defences_per_sample.csv", "defences.json", "defences_asr.pdf",
                           "defences_asr.png", "defences_asr.svg", "defences_asr.json"]
    back = pd.read_csv(io.BytesIO(files["defences.csv"]))
    assert len(back) == 12 and {"asr", "clean_acc", "l2_mean", "ssim_mean"} <= set(back.columns)
    assert "defended model classifies correctly" in json.loads(files["defences.json"])["criterion_text"]
    attack_calls.clear()
    again = run_defence_grid(tiny_cnn, rand_images, None, "fgsm,sd-fgsm", "jpeg,bitdepth", cfg, batch_size=4,
                             store=store)
    assert attack_calls == [] and again.cells["asr"].equals(grid.cells["asr"])  # the store keeps every attack


def test_stop_keeps_finished_cells_and_tvm_skips_the_adaptive_scan(tiny_cnn, attack_calls):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    cfg = build_config({"patch": 8, "steps": 1})
    polls = []
    grid = run_defence_grid(tiny_cnn, x, None, ["fgsm", "pgd"], ["bitdepth"], cfg,
                            should_stop=lambda: polls.append(1) or len(polls) > 2)
    assert grid.stopped and set(grid.cells["method"]) == {"fgsm"} and len(grid.cells) == 4
    slow = run_defence_grid(tiny_cnn, x, None, ["sd-fgsm"], ["tvm"], cfg, DefenceConfig(tvm_iter=1))
    row = slow.cells.set_index(["defence", "mode"]).loc[("tvm", "adaptive")]
    assert np.isnan(row["asr"]) and "zero-out scan" in row["note"]
    assert ("tvm", "sd-fgsm") not in attack_calls


def test_art_baselines_attack_through_a_defence(tiny_cnn, rand_images):
    from sdsgsm.attacks import run_attack

    d = Defended(tiny_cnn, "jpeg")
    assert (d.labels, d.input_size, d.num_classes, d.device) == (tiny_cnn.labels, 32, 10, tiny_cnn.device)
    res = run_attack(d, rand_images[:2], None, build_config({"steps": 2}), "deepfool")
    with torch.no_grad():
        assert torch.equal(res.clean_logits, d(rand_images[:2]))
    assert torch.isfinite(res.x_adv).all() and res.x_adv.min() >= 0 and res.x_adv.max() <= 1


# ----------------------------------------------------------------------------- spec, bad input, CLI
def test_defence_spec_and_registry_agree():
    assert tuple(DEFENCES) == DEFENCE_NAMES
    for p in DEFENCE_PARAMS.values():
        assert set(p.show_if[1]) <= set(DEFENCES) and p.group == "defence"
    assert DefenceConfig().params_of("jpeg") == {"jpeg_quality": 75}


def test_bad_defence_values_give_one_line_errors():
    for kwargs, match in [({"jpeg_quality": 0}, "outside 1 … 100"), ({"median_window": 4}, "must be odd"),
                          ({"bit_depth": 9}, "outside 1 … 8"), ({"gaussian_sigma": float("nan")}, "finite"),
                          ({"tvm_prob": 0.0}, "outside")]:
        with pytest.raises(ValueError, match=match) as info:
            DefenceConfig(**kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="Unknown defence 'jpg'; choose one of none, jpeg"):
        parse_defences("median,jpg")
    values, warnings = parse_query({"jpeg_quality": "50", "median_window": "4", "bit_depth": "nan", "eps": "3"},
                                   DEFENCE_PARAMS)
    assert values == {"jpeg_quality": 50} and len(warnings) == 2 and "must be odd" in warnings[0]


@pytest.mark.parametrize("argv, message", [
    (["--defences", "jpeg,foo"], "Unknown defence 'foo'"), (["--jpeg-quality", "0"], "JPEG quality = 0"),
    (["--median-window", "4"], "must be odd"), (["--bit-depth", "0"], "Bit depth = 0"),
    (["--methods", "fgsm,nope"], "Unknown method 'nope'"), (["--limit", "0"], "--limit must be at least 1")])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    assert main(["defend", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_cli_defend_on_two_gallery_images(tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(["defend", "--methods", "fgsm", "--defences", "jpeg,gaussian", "--data", "gallery", "--limit", "2",
               "--batch-size", "2", "--jpeg-quality", "50", "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert re.search(r"^\[1/3\] .*\| fgsm · crafted on the bare model$", captured.err, re.M), captured.err
    assert "| FGSM | jpeg (quality 50) |" in captured.out  # the display name (method_label)
    cells = pd.read_csv(out / "defences.csv")
    assert len(cells) == 1 * 3 * 2 and set(cells["mode"]) == set(MODES)
    config = json.loads((out / "defences.json").read_text())
    assert config["n_total"] == 2 and config["defence_params"]["jpeg"] == {"jpeg_quality": 50}
    assert config["defence_code"]["jpeg"] == "ART JpegCompression" and "--jpeg-quality 50" in config["command"]
    assert (out / "defences_asr.pdf").stat().st_size > 0 and len(pd.read_csv(out / "defences_per_sample.csv")) == 12


# ----------------------------------------------------------------------------- the page (AppTest)
def test_defences_page_runs_from_a_link_and_explains_bad_values():
    at = AppTest.from_file(str(ROOT / page_path("Defences")), default_timeout=600)
    for k, v in {"methods": "fgsm", "defences": "jpeg,bitdepth,bogus", "limit": "1", "jpeg_quality": "50",
                 "median_window": "4"}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    assert at.multiselect(key="def_defences").value == ["jpeg", "bitdepth"]  # unknown names dropped
    assert any("median_window" in w.value and "odd" in w.value for w in at.warning)
    assert any("defences 'bogus'" in w.value for w in at.warning)
    assert at.session_state["def_jpeg_quality"] == 50
    at.button(key="def_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert list(table["defence"]) == ["none", "jpeg", "bitdepth"] and "ASR adaptive (%)" in table
    assert {b.proto.label for b in at.get("download_button")} == {
        "defences.csv", "defences_per_sample.csv", "defences.json", *(f"defences_asr.{e}" for e in ("pdf", "png", "svg",
                                                                                                      "json"))}
    assert any("the jpeg output (quality 50)" in c.value for c in at.caption)  # the one-image panel
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert len(captions) == 4 and captions[0].startswith("clean → ") and "defended" in captions[3]
    link = next(c.value for c in at.code if "defences=" in c.value)
    assert "jpeg_quality=50" in link and "methods=fgsm" in link
    at.multiselect(key="def_defences").set_value(["tvm"]).run()
    at.number_input(key="def_limit").set_value(5).run()
    assert not at.exception and "at most 4 images" in at.error[0].value
