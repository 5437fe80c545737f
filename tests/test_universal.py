"""Universal perturbations: the UAP loop with DeepFool or SmoothFool inside, its projection, the two-fold
experiment and its unit store, the shipped perturbations, the CLI, bad input and the Transfer page's view."""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import APP_DIR, tiny_classifier

import sdsgsm.attacks.universal as uap
from sdsgsm.attacks.smoothfool import smoothing_kernel
from sdsgsm.attacks.universal import (
    INNER,
    UniversalConfig,
    fooling_rate,
    load_universal_perturbation,
    project,
    shipped_names,
    shipped_recipe,
    universal_perturbation,
)
from sdsgsm.cli import main
from sdsgsm.experiments.runner import UnitStore
from sdsgsm.experiments.universal import SUMMARY_COLUMNS, fold_indices, run_universal, setting_label, settings
from sdsgsm.params import SF_KERNELS

TOL = 1e-6


def _images(n: int = 8, size: int = 32, seed: int = 1) -> torch.Tensor:
    """Mid-grey random images (0.3–0.7), so SmoothClip has room to move."""
    return 0.3 + 0.4 * torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("inner", INNER)
def test_loop_reaches_its_target_fooling_rate_within_the_xi_ball(inner):
    model, x = tiny_classifier(), _images()
    cfg = UniversalConfig(inner=inner, xi=0.2, tau=0.75, max_passes=5, sigma_g=1.0, sf_max_iter=5)
    v, info = universal_perturbation(model, x, None, cfg)
    rate, fooled = fooling_rate(model, x, v)
    assert info["reached_tau"] and rate >= cfg.tau and info["train_fooling_rate"] == pytest.approx(rate)
    assert info["fooling_per_pass"][-1] == pytest.approx(rate) and info["passes"] == len(info["fooling_per_pass"])
    assert info["updates"] >= 1 and fooled.sum() >= 6
    assert v.shape == x.shape[1:] and float(v.abs().max()) <= cfg.xi + TOL and float(v.abs().max()) > 0


def test_loop_is_deterministic():
    model, x = tiny_classifier(), _images()
    cfg = UniversalConfig(inner="deepfool", xi=0.2, tau=1.0, max_passes=1)
    v1, i1 = universal_perturbation(model, x, None, cfg)
    v2, i2 = universal_perturbation(model, x, None, cfg)
    assert torch.equal(v1, v2) and i1["fooling_per_pass"] == i2["fooling_per_pass"]


def test_stop_returns_the_v_reached_so_far():
    model, x = tiny_classifier(), _images()
    calls = []
    v, info = universal_perturbation(model, x, None, UniversalConfig(inner="deepfool", xi=0.2),
                                     should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert info["stopped"] and info["passes"] == 0 and float(v.abs().max()) <= 0.2 + TOL


@pytest.mark.parametrize("sigma", [1.0, 5.0])
def test_smoothclip_projection_keeps_the_xi_ball_and_moves_in_range_v_not_at_all(sigma):
    cfg = UniversalConfig(inner="smoothfool", xi=10 / 255, sigma_g=sigma)
    g = smoothing_kernel(cfg.attack_config())
    big = torch.randn(3, 40, 40, generator=torch.Generator().manual_seed(0)) * 0.2
    out = project(big, cfg, g)
    assert float(out.abs().max()) <= cfg.xi + TOL
    small = big.clamp(-cfg.xi / 2, cfg.xi / 2)
    assert torch.allclose(project(small, cfg, g), small, atol=1e-6)
    clip = project(big, UniversalConfig(inner="deepfool"))
    assert torch.equal(clip, big.clamp(-10 / 255, 10 / 255))


@pytest.mark.parametrize(("field", "value", "names"), [("inner", "nope", INNER), ("kernel", "box", SF_KERNELS)])
def test_bad_names_are_one_line_errors_listing_the_valid_names(field, value, names):
    with pytest.raises(ValueError) as exc:
        UniversalConfig(**{field: value})
    text = str(exc.value)
    assert "\n" not in text and all(n in text for n in names)


@pytest.mark.parametrize(("field", "value"), [("xi", 0.0), ("xi", 2.0), ("tau", 0.0), ("tau", 1.5), ("max_passes", 0),
                                              ("sigma_g", -1.0), ("sf_clip_eps", 0.0), ("sf_max_iter", 0)])
def test_bad_values_are_one_line_errors(field, value):
    with pytest.raises(ValueError) as exc:
        UniversalConfig(**{field: value})
    assert "\n" not in str(exc.value) and field in str(exc.value)


def test_two_folds_summary_and_unit_store_resume(tmp_path):
    model, x = tiny_classifier(), _images(6)
    cfgs = settings(["deepfool", "smoothfool"], [1.0], UniversalConfig(xi=0.2, tau=0.75, max_passes=2, sf_max_iter=5))
    assert [c.name for c in cfgs] == ["deepfool", "smoothfool_sigma1"]
    assert list(fold_indices(6, "A")) == [0, 2, 4] and list(fold_indices(6, "B")) == [1, 3, 5]
    store = UnitStore(tmp_path / "p")
    res = run_universal(model, [("twin", tiny_classifier())], x, cfgs, units=store)
    store.close()
    s = res.summary
    assert set(SUMMARY_COLUMNS) <= set(s.columns) and "fooling_twin" in s.columns
    assert list(s["fold"]) == ["A", "B", "mean"] * 2
    for _, g in s.groupby("setting"):
        assert g.loc[g["fold"] == "mean", "test_fooling"].item() == pytest.approx(g["test_fooling"][:2].mean())
        assert (g["linf_255"] <= 0.2 * 255 + 1e-3).all()
        # the same model under another label fools exactly as the source does
        assert g["fooling_twin"].tolist() == pytest.approx(g["test_fooling"].tolist())
    held = res.per_sample[(res.per_sample["model"] == "source") & (res.per_sample["setting"] == "deepfool")]
    assert sorted(held.loc[held["fold"] == "A", "index"]) == [1, 3, 5]
    again = run_universal(model, [("twin", tiny_classifier())], x, cfgs, units=UnitStore(tmp_path / "p"))
    pd.testing.assert_frame_equal(again.summary.drop(columns=["seconds"]), s.drop(columns=["seconds"]))
    for k, v in res.perturbations.items():  # read back from float16: within half a float16 step
        assert torch.allclose(again.perturbations[k], v, atol=2e-4)


# ----------------------------------------------------------------------------- shipped perturbations
def test_shipped_perturbations_load_and_match_their_sha256():
    recipe = shipped_recipe()
    names = shipped_names()
    assert "deepfool" in names and any(n.startswith("smoothfool") for n in names)
    for name in names:
        entry = recipe["perturbations"][name]
        data = (uap.UNIVERSAL_DIR / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        v, got = load_universal_perturbation(name)
        assert got == entry and v.shape == (3, 224, 224) and v.dtype == torch.float32
        assert 0 < float(v.abs().max()) <= entry["xi"] + 1e-3
        for key in ("inner", "xi", "seed", "passes", "seconds", "train_fold"):
            assert key in entry
    assert recipe["command"].startswith("python -m sdsgsm universal")
    assert {r["setting"] for r in recipe["results"]} == set(names)


def test_a_changed_shipped_file_or_unknown_name_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="choose one of") as exc:
        load_universal_perturbation("nope")
    assert all(n in str(exc.value) for n in shipped_names())
    copy = tmp_path / "universal"
    shutil.copytree(uap.UNIVERSAL_DIR, copy)
    name = shipped_names()[0]
    f = copy / shipped_recipe()["perturbations"][name]["file"]
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    monkeypatch.setattr(uap, "UNIVERSAL_DIR", copy)
    with pytest.raises(ValueError, match="sha256"):
        load_universal_perturbation(name)


# ----------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_universal_runs_end_to_end_on_two_images(tmp_path, capsys):
    out = tmp_path / "u"
    code = main(["universal", "--limit", "2", "--inner", "deepfool,smoothfool", "--sigmas", "5", "--max-passes", "1",
                 "--sf-max-iter", "2", "--targets", "", "--threads", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"universal.csv", "universal_per_sample.csv", "universal.md", "universal.json", "universal_figure.png",
            "universal_figure.pdf", "universal_figure.svg", "assets"} <= names
    summary = pd.read_csv(out / "universal.csv")
    assert list(summary["setting"]) == ["deepfool"] * 3 + ["smoothfool_sigma5"] * 3
    recipe = json.loads((out / "assets" / "universal.json").read_text())
    assert set(recipe["perturbations"]) == {"deepfool", "smoothfool_sigma5"}
    for entry in recipe["perturbations"].values():
        data = (out / "assets" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        v = np.load(out / "assets" / entry["file"])
        assert v.dtype == np.float16 and np.abs(v.astype(np.float32)).max() <= 10 / 255 + 1e-3
    assert not (out / ".partial").exists()


@pytest.mark.parametrize(("extra", "match"), [(["--inner", "nope"], "deepfool, smoothfool"),
                                              (["--xi", "0"], "xi"), (["--sigmas", ""], "--sigmas"),
                                              (["--kernel", "box"], "invalid choice"),
                                              (["--max-passes", "0"], "--max-passes"),
                                              (["--targets", "nope"], "nope")])
def test_cli_universal_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, match):
    code = main(["universal", "--limit", "2", *extra, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- the page
@pytest.mark.slow
def test_transfer_page_universal_view_shows_shipped_perturbations_and_applies_one():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP_DIR / "pages" / "9_Transfer.py"), default_timeout=600).run()
    assert not at.exception
    at.radio(key="tr_view").set_value("Universal perturbations").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [i.caption for el in at.main.get("image") for i in el.proto.imgs]
    labels = [setting_label(n) for n in shipped_names()]
    assert len(captions) == len(labels) + 2  # every v, then the original and original + v
    assert all(lab in c for lab, c in zip(labels, captions)) and captions[len(labels)] == "Original"
    table = at.dataframe[1].value  # the predictions first, then the results table
    assert len(table) == 3 * len(shipped_names()) and "Held-out fooling (%)" in table.columns
    assert any("On held-out images" in m.value and "fooled the most" in m.value for m in at.markdown)
    preds = at.dataframe[0].value
    assert list(preds["image"])[0] == "original" and len(preds) == 2
    at.selectbox(key="tr_uap_name").set_value(shipped_names()[-1]).run()
    assert not at.exception and not at.error
    assert setting_label(shipped_names()[-1]) in at.dataframe[0].value["image"].iloc[1]
