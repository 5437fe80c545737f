"""The adversarial patch attack: exact pasting, placements tied to the zero-out scan, shipped patches, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from sdsgsm.attacks import METHODS, AttackConfig, run_attack
from sdsgsm.attacks.patch import PATCH_DIR, SHIPPED_SIZES, TARGET, load_universal, paste_crop, patch_info
from sdsgsm.cli import main
from sdsgsm.data import gallery
from sdsgsm.experiments.report import OUTPUT_FILES
from sdsgsm.occlusion import ScanConfig, occlusion_scan
from sdsgsm.params import PASTE_IMAGES

CFG = AttackConfig(scan=ScanConfig(patch=8), patch_size=8)


def _box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = torch.nonzero(mask, as_tuple=True)
    return int(rows.min()), int(cols.min()), int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_pasted_region_holds_exactly_the_patch_and_the_rest_is_unchanged(tiny_cnn, rand_images):
    x = rand_images[:2]
    r = run_attack(tiny_cnn, x, None, replace(CFG, placement="centre", patch_size=16), "patch")
    patch = load_universal(16)
    for i in range(2):
        assert torch.equal(r.x_adv[i, :, 8:24, 8:24], patch)
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[8:24, 8:24] = False
        assert torch.equal(r.x_adv[i][:, outside], x[i][:, outside])
        assert _box(r.budget[i, 0] > 0) == (8, 8, 16, 16)  # the budget map marks the box


def test_shipped_patches_load_at_the_stated_sizes_with_their_recipe():
    info = patch_info()
    assert info["target"]["index"] == TARGET == 859
    for s in SHIPPED_SIZES:
        assert (PATCH_DIR / f"toaster_{s}.png").exists()
        p = load_universal(s)
        assert p.shape == (3, s, s) and 0 <= p.min() and p.max() <= 1 and p.std() > 0.05  # trained, not flat
        entry = info["patches"][f"toaster_{s}.png"]
        assert entry["size"] == s and entry["command"].startswith("python -m sdsgsm train-patch")
        assert {"seed", "steps", "data", "seconds", "art"} <= set(entry)
    assert load_universal(40).shape == (3, 40, 40)  # other sides: resized from a shipped one


def test_omega_star_uses_the_scan_argmax_window(weighted_sum_model):
    """The weighted-sum model's most sensitive 8×8 window is (8, 16); least sensitive is elsewhere."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 32, generator=g) * 0.5 + 0.25
    scan = occlusion_scan(weighted_sum_model, x, CFG.scan)
    top, left, h, w = scan.boxes[int(scan.grid.flatten().argmax())].tolist()
    assert (top, left) == (8, 16)
    r = run_attack(weighted_sum_model, x, None, replace(CFG, placement="omega-star"), "patch", scan=scan)
    assert _box(r.budget[0, 0] > 0) == (8, 16, 8, 8)
    assert r.region is not None and r.region[0].flatten().nonzero().flatten().tolist() == [
        int(scan.grid.flatten().argmax())]
    big = run_attack(weighted_sum_model, x, None, replace(CFG, placement="omega-star", patch_size=16), "patch")
    assert _box(big.budget[0, 0] > 0) == (4, 12, 16, 16)  # centred on Ω*, computed scan when none is given
    low = run_attack(weighted_sum_model, x, None, replace(CFG, placement="least-sensitive"), "patch", scan=scan)
    lt, ll, _, _ = scan.boxes[int(scan.grid.flatten().argmin())].tolist()
    assert _box(low.budget[0, 0] > 0) == (lt, ll, 8, 8) != (8, 16, 8, 8)


def test_random_placement_is_seeded_and_inside(tiny_cnn, rand_images):
    x = rand_images[:3]
    cfg = replace(CFG, placement="random")
    a, b = run_attack(tiny_cnn, x, None, cfg, "patch"), run_attack(tiny_cnn, x, None, cfg, "patch")
    c = run_attack(tiny_cnn, x, None, replace(cfg, seed=7), "patch")
    assert torch.equal(a.x_adv, b.x_adv) and not torch.equal(a.x_adv, c.x_adv)
    assert all(_box(a.budget[i, 0] > 0)[2:] == (8, 8) for i in range(3))


def test_paste_mode_pastes_a_crop_of_the_chosen_gallery_image(tiny_cnn, rand_images):
    cfg = replace(CFG, placement="centre", patch_mode="paste", paste_image="imagenet_13_471", patch_size=10)
    r = run_attack(tiny_cnn, rand_images[:1], None, cfg, "patch")
    crop = paste_crop("imagenet_13_471", 10)
    assert torch.equal(r.x_adv[0, :, 11:21, 11:21], crop)
    assert sorted(PASTE_IMAGES) == sorted(g.key.split("/")[1].rsplit(".", 1)[0] for g in gallery("imagenet"))


def test_a_patch_larger_than_the_image_is_cut_to_the_image(tiny_cnn, rand_images):
    r = run_attack(tiny_cnn, rand_images[:1], None, replace(CFG, patch_size=64, placement="centre"), "patch")
    assert (r.budget > 0).all() and not METHODS["patch"].bounded


@pytest.mark.slow
def test_cli_attack_patch_and_smoothfool_write_the_usual_files(tmp_path, capsys):
    """The real model at 224 px: the patch at Ω* and SmoothFool (iteration cap 2 to stay quick)."""
    key = "imagenet/imagenet_04_949.jpg"
    assert main(["attack", "--image", key, "--method", "patch", "--patch-size", "48", "--placement", "omega-star",
                 "--out", str(tmp_path / "p")]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted(OUTPUT_FILES)
    summary = json.loads((tmp_path / "p" / "result.json").read_text())
    assert summary["parameters"]["patch_size"] == 48 and summary["method"] == "patch"
    assert len(summary["region_boxes"]) == 1  # Ω*, the window the patch is centred on
    assert main(["attack", "--image", key, "--method", "smoothfool", "--sf-max-iter", "2",
                 "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(OUTPUT_FILES)
    assert "roughness_n" in json.loads((tmp_path / "s" / "result.json").read_text())["metrics"]
    capsys.readouterr()
    assert main(["attack", "--image", key, "--method", "patch", "--placement", "corner", "--out",
                 str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "placement" in err


# ----------------------------------------------------------------------------- train-patch: the spec table
def test_patch_training_spec_gives_the_defaults_flags_and_checks():
    from sdsgsm.cli.common import Parser
    from sdsgsm.cli.train_patch import add_parser
    from sdsgsm.experiments.patch_train import PatchTraining
    from sdsgsm.params import PATCH_TRAIN_PARAMS

    run = PatchTraining()
    assert {n: getattr(run, n) for n in PATCH_TRAIN_PARAMS} == {n: p.default for n, p in PATCH_TRAIN_PARAMS.items()}
    assert (run.size, run.steps, run.seed, run.batch_size, run.target) == (48, 30, 0, 8, TARGET)
    sub = Parser(prog="t").add_subparsers(parser_class=Parser)  # a throwaway parser with the command's flags
    add_parser(sub)
    parsed = sub.choices["train-patch"].parse_args([])
    assert (parsed.sizes, parsed.steps, parsed.seed, parsed.batch_size, parsed.target) == ("48", 30, 0, 8, 859)
    for kwargs, words in [({"steps": 0}, "ART iterations = 0 is outside"), ({"size": 2000}, "Patch side"),
                          ({"batch_size": 1.5}, "integer"), ({"target": -1}, "Target class")]:
        with pytest.raises(ValueError, match=words):
            PatchTraining(**kwargs)


@pytest.mark.parametrize("argv, words", [
    (["--sizes", "abc"], "comma-separated integers"), (["--sizes", "32,0"], "Patch side (px) = 0 is outside"),
    (["--steps", "0"], "ART iterations = 0"), (["--target", "-3"], "Target class"), (["--seed", "1.5"], "seed"),
])
def test_train_patch_bad_flags_exit_2_with_one_line_before_any_work(tmp_path, capsys, argv, words):
    assert main(["train-patch", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "o").exists()


def test_a_target_the_model_lacks_is_refused(tiny_cnn, rand_images):
    from sdsgsm.experiments.patch_train import PatchTraining, train_universal_patch

    with pytest.raises(ValueError, match="not a class of this model"):
        train_universal_patch(tiny_cnn, rand_images[:2], PatchTraining(size=8, steps=1, batch_size=2), verbose=False)
