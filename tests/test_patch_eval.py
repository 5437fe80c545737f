"""The patch experiments: chunked training with its curve, the shipped patches' records, and the accuracy /
target-hit table by kind, side and placement (real EfficientNet-Lite0 and gallery, a few images)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sdsgsm.attacks.patch import PATCH_DIR, SHIPPED_SIZES, TARGET, patch_info
from sdsgsm.cli import main
from sdsgsm.experiments.patch_eval import PatchEval, _pairs, placement_sentence, run_patch_eval
from sdsgsm.experiments.patch_train import PatchTraining, train_universal_patch
from sdsgsm.experiments.runner import UnitStore
from sdsgsm.params import PATCH_MODES, PLACEMENTS


def test_chunked_training_gives_the_same_patch_and_records_the_curve(tiny_cnn, rand_images):
    """The curve is read between chunks of one ART run: the patch does not depend on how often it is read."""
    run = PatchTraining(size=8, steps=3, batch_size=2, target=1, repeats=2)
    whole, info_whole = train_universal_patch(tiny_cnn, rand_images[:2], run, verbose=False)
    seen = []
    chunked, info = train_universal_patch(tiny_cnn, rand_images[:2], run, verbose=False, every=1,
                                          on_chunk=lambda done, p: seen.append(done) or {"mean": float(p.mean())})
    assert np.array_equal(whole, chunked)
    assert seen == [1, 2, 3] and [p["iteration"] for p in info["curve"]] == [1, 2, 3]
    assert info["iterations"] == 3 and info_whole["curve"] == []
    assert info["optimisation_steps"] == 3 * 2  # 2 images × 2 repeats at batch 2: two steps per iteration


def test_a_stop_ends_training_at_the_end_of_the_current_iteration(tiny_cnn, rand_images):
    run = PatchTraining(size=8, steps=5, batch_size=2, target=1, repeats=1)
    asked = []
    _, info = train_universal_patch(tiny_cnn, rand_images[:2], run, verbose=False,
                                    should_stop=lambda: asked.append(1) or len(asked) >= 2)
    assert info["iterations"] == 2 and info["optimisation_steps"] == 2


def test_shipped_patches_match_their_recorded_sha256_and_training_record():
    info = patch_info()
    for s in SHIPPED_SIZES:
        entry = info["patches"][f"toaster_{s}.png"]
        assert hashlib.sha256((PATCH_DIR / f"toaster_{s}.png").read_bytes()).hexdigest() == entry["sha256"]
        assert entry["iterations"] == entry["steps"] and entry["target"] == TARGET
        assert {"learning_rate", "repeats", "data", "seed", "command"} <= set(entry)
        if entry.get("curve"):
            assert [p["iteration"] for p in entry["curve"]] == sorted(p["iteration"] for p in entry["curve"])


def test_pasted_pairs_take_every_other_class_and_the_universal_patch_its_target():
    y = torch.tensor([5, 7, 5, 9])
    keys = [f"imagenet/imagenet_0{i}_{int(c)}.jpg" for i, c in enumerate(y)]
    pairs = _pairs("paste", y, keys)
    assert all(int(y[i]) != t for i, _, t in pairs)
    assert len(pairs) == sum(int((y != c).sum()) for c in y)
    assert _pairs("universal", y, keys) == [(i, None, TARGET) for i in range(4)]


@pytest.fixture(scope="module")
def small_eval(lite0, imagenet_batch):
    x, y, keys = imagenet_batch
    spec = PatchEval(sizes=(32,), seeds=2)
    with torch.inference_mode(False):
        return run_patch_eval(lite0, x[:3], y[:3], keys[:3], spec), spec


def test_patch_eval_table_counts_and_rates_follow_from_its_rows(small_eval):
    res, spec = small_eval
    s, per = res.summary, res.per_sample
    assert len(s) == len(spec.kinds) * len(spec.sizes) * len(spec.placements)
    for _, r in s.iterrows():
        part = per[(per["kind"] == r["kind"]) & (per["size"] == r["size"]) & (per["placement"] == r["placement"])]
        assert r["n"] == len(part)
        assert r["accuracy"] == pytest.approx(100 * (part["pred"] == part["label"]).mean())
        assert r["target_hit"] == pytest.approx(100 * (part["pred"] == part["target"]).mean())
        assert part["seed"].nunique() == (spec.seeds if r["placement"] == "random" else 1)
    uni = per[per["kind"] == "universal"]
    assert (uni["target"] == TARGET).all() and (per[per["kind"] == "paste"]["target"] != per[per["kind"] == "paste"]
                                                ["label"]).all()


def test_a_stopped_patch_eval_keeps_its_units_and_resumes_to_the_same_table(lite0, imagenet_batch, tmp_path,
                                                                             small_eval):
    x, y, keys = imagenet_batch
    full, spec = small_eval
    calls = iter(range(100))
    store = UnitStore(tmp_path / "u")
    with torch.inference_mode(False):
        part = run_patch_eval(lite0, x[:3], y[:3], keys[:3], spec, units=store, should_stop=lambda: next(calls) >= 2)
    store.close()
    assert part.stopped and len(part.summary) == 2
    store = UnitStore(tmp_path / "u")
    with torch.inference_mode(False):
        again = run_patch_eval(lite0, x[:3], y[:3], keys[:3], spec, units=store)
    store.close()
    pd.testing.assert_frame_equal(again.summary.drop(columns=[]), full.summary)


def test_the_placement_sentence_names_the_placements_from_the_numbers():
    rows = pd.DataFrame({"kind": "universal", "size": 64, "placement": list(PLACEMENTS),
                         "accuracy": [20.0, 80.0, 50.0, 60.0], "target_hit": 0.0})
    text = placement_sentence(rows, "universal", 64)
    assert "most at Ω*" in text and "(top-1 20 %)" in text and "least at the least sensitive window (80 %)" in text
    rows["accuracy"] = [70.0, 80.0, 30.0, 60.0]
    text = placement_sentence(rows, "universal", 64)
    assert "most at the centre" in text and "at Ω* it leaves 70 %" in text


@pytest.mark.parametrize("kwargs, words", [({"kinds": ("pasted",)}, "Unknown patch kind 'pasted'"),
                                           ({"placements": ("middle",)}, "choose from " + ", ".join(PLACEMENTS)),
                                           ({"sizes": (0,)}, "1 … 1024"), ({"seeds": 0}, "seeds")])
def test_a_bad_patch_eval_spec_is_one_line_naming_the_valid_values(kwargs, words):
    with pytest.raises(ValueError, match=words) as exc:
        PatchEval(**kwargs)
    assert "\n" not in str(exc.value)
    if "kinds" in kwargs:
        assert ", ".join(PATCH_MODES) in str(exc.value)


def test_cli_patch_eval_writes_tables_and_figure(tmp_path, capsys):
    out = tmp_path / "pe"
    assert main(["patch-eval", "--kinds", "universal", "--sizes", "48", "--placements", "omega-star,centre",
                 "--limit", "2", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| 48 |" in printed and "Ω*" in printed
    names = {p.name for p in out.iterdir()}
    assert {"patch_eval.csv", "patch_eval.md", "patch_eval.json", "patch_eval_placement.pdf",
            "patch_eval_placement.png"} <= names
    assert json.loads((out / "patch_eval.json").read_text())["n_images"] == 2


@pytest.mark.parametrize("argv, words", [(["--kinds", "sticker"], "Unknown patch kind"), (["--sizes", "a"], "integers"),
                                         (["--seeds", "0"], "seeds")])
def test_cli_patch_eval_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, words):
    assert main(["patch-eval", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err


def test_the_explorer_shows_where_a_patch_hurts_with_a_sentence_from_the_shipped_table():
    """The patch method's Explorer view carries the shipped placement table and the sentence computed from it."""
    from helpers import page_path
    from streamlit.testing.v1 import AppTest

    from sdsgsm.ui.patches import shipped_results

    summary, info = shipped_results()
    root = Path(__file__).resolve().parent.parent
    at = AppTest.from_file(str(root / page_path("Explorer")), default_timeout=900)
    for k, v in {"method": "patch", "patch_size": "64", "patch": "56"}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception and not at.error
    assert any(e.label.startswith("Where a patch hurts") for e in at.expander)
    sentence = placement_sentence(summary, "universal", 64)
    assert sentence and sentence in [m.value for m in at.markdown]
    shown = at.dataframe[-1].value
    assert len(shown) == len(summary.groupby(["kind", "size"]))
