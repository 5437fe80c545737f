"""Issue 14: the bad-input corpus (tests/corpus.py) through every entry point.

- Python API: ``decode_image`` raises ImageError, ``load_checkpoint`` raises ModelError,
  ``parse_shown`` raises ValueError (all ValueErrors, with a one-line message);
- CLI (``python -m sdsgsm attack``, in process): exit 2 and one line on stderr, never a traceback;
- AppTest: the Explorer shows an error box naming the upload, never an exception, and works again
  after a good upload; query strings (hypothesis) never raise on any page.
The real-browser subset is in tests/test_reliability_browser.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import checkpoint_cases, image_cases, materialise, parameter_cases, raises_on_one, seven_classes
from helpers import page_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from sdsgsm.cli import main
from sdsgsm.data import ImageError, decode_image
from sdsgsm.models import ModelError, load_checkpoint
from sdsgsm.params import PARAMS, check, parse_query, parse_shown

ROOT = Path(__file__).resolve().parent.parent
GALLERY = "imagenet/imagenet_00_243.jpg"
CIFAR = "cifar10/cifar10_00_3.png"
IMAGES = image_cases()
PARAMETERS = parameter_cases()


def _one_line(err: str) -> str:
    err = err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


# ----------------------------------------------------------------------------- Python API
@pytest.mark.parametrize("case", IMAGES, ids=lambda c: c.name)
def test_image_case_through_the_api(case, tmp_path):
    path = materialise(case, tmp_path)
    if case.ok:
        im = decode_image(path)
        assert im.mode == "RGB" and min(im.size) >= 8
    else:
        with pytest.raises(ImageError) as err:
            decode_image(path)
        _one_line(str(err.value))


def test_exif_rotation_and_animation_are_read_as_shown(tmp_path):
    by_name = {c.name: c for c in IMAGES}
    assert decode_image(by_name["rotated.jpg"].data).size == (60, 100)  # stored 100×60, shown upright
    assert decode_image(by_name["animated.gif"].data).size == (64, 64)  # the first of 60 frames


def test_checkpoint_cases_through_the_api_never_run_code(tmp_path):
    marker = tmp_path / "marker"
    for name, data, word in checkpoint_cases(marker):
        with pytest.raises(ModelError) as err:
            load_checkpoint(data)
        assert word in str(err.value), (name, str(err.value))
        _one_line(str(err.value))
        assert str(tmp_path) not in str(err.value)
    assert not marker.exists()  # the pickle's open(marker, "w") never ran
    assert load_checkpoint(seven_classes()).labels[-1] == "class 6"  # an unusual class count is fine


def test_a_checkpoint_that_fails_only_when_attacked_gives_a_model_error():
    import torch

    from sdsgsm.attacks import AttackConfig, run_attack

    model = load_checkpoint(raises_on_one(), input_size=32)
    with pytest.raises(ModelError, match="batch of one is not supported"):
        run_attack(model, torch.rand(1, 3, 32, 32), None, AttackConfig(), "fgsm")


def test_every_parameter_case_through_the_api():
    assert len(PARAMETERS) >= 10 * len(PARAMS) // 2
    for name, text, ok in PARAMETERS:
        if ok:
            check(name, parse_shown(name, text))
        else:
            with pytest.raises(ValueError) as err:
                parse_shown(name, text)
            assert len(_one_line(str(err.value))) < 400, (name, text[:20])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*PARAMS, "method", "image", "zzz"]), st.text(max_size=60), max_size=6))
def test_parse_query_never_raises_and_keeps_only_valid_values(query):
    values, warnings = parse_query(query)
    for name, value in values.items():
        check(name, value)
    assert len(values) + len(warnings) == len([k for k in query if k in PARAMS])
    assert all("\n" not in w for w in warnings)


# ----------------------------------------------------------------------------- CLI
def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_image_corpus_through_the_cli(tmp_path, capsys):
    for case in IMAGES:
        path = materialise(case, tmp_path)
        code, out, err = _cli(capsys, "attack", "--image", path, "--out", tmp_path / f"out_{case.name}",
                              "--method", "fgsm")
        if case.ok:
            assert code == 0 and (tmp_path / f"out_{case.name}" / "adversarial.png").is_file(), (case.name, err)
        else:
            assert code == 2, (case.name, err)
            _one_line(err)


def test_checkpoint_corpus_through_the_cli(tmp_path, capsys):
    marker = tmp_path / "marker"
    cases = [*checkpoint_cases(marker), ("fails_when_attacked.pt", raises_on_one(), "batch of one")]
    for name, data, word in cases:
        ckpt = tmp_path / name
        ckpt.write_bytes(data)
        code, _, err = _cli(capsys, "attack", "--image", CIFAR, "--checkpoint", ckpt, "--out", tmp_path / "o",
                            "--method", "fgsm")
        assert code == 2 and word in err, (name, err)
        _one_line(err)
    assert not marker.exists()


def test_parameter_corpus_through_the_cli(tmp_path, capsys):
    for name, text, ok in PARAMETERS:
        if ok:
            continue
        code, _, err = _cli(capsys, "attack", "--image", GALLERY, "--out", tmp_path / "o", PARAMS[name].flag, text)
        assert code == 2, (name, text[:20], err)
        assert len(_one_line(err)) < 400


def test_out_pointing_at_a_file_and_seed_minus_one(tmp_path, capsys):
    existing = tmp_path / "taken.txt"
    existing.write_text("keep me")
    for argv in (["attack", "--image", GALLERY], ["benchmark", "--data", "gallery", "--methods", "fgsm"],
                 ["sweep", "--param", "eps", "--values", "0.01,0.02", "--methods", "fgsm", "--data", "gallery"]):
        code, _, err = _cli(capsys, *argv, "--out", existing)  # refused before any work
        assert code == 2 and "is an existing file" in _one_line(err) and existing.read_text() == "keep me", argv
    code, _, err = _cli(capsys, "attack", "--image", GALLERY, "--out", tmp_path / "o", "--seed", "-1")
    assert code == 2 and "seed" in _one_line(err).lower()


# ----------------------------------------------------------------------------- AppTest
def _explorer(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / page_path("Explorer")), default_timeout=600)
    for k, v in {"patch": "56", "steps": "2", **query}.items():
        at.query_params[k] = v
    return at.run()


def test_image_corpus_through_the_explorer_upload():
    at = _explorer(method="fgsm")
    at.radio(key="ex_source").set_value("Upload").run()
    for case in [c for c in IMAGES if c.kind == "file"]:
        at.file_uploader(key="ex_upload").set_value((case.name, case.data, "application/octet-stream")).run()
        assert not at.exception, case.name
        if case.ok:
            assert not at.error and any(m.label == "L2" for m in at.metric), case.name
        else:
            assert len(at.error) == 1 and case.name in at.error[0].value, (case.name, [e.value for e in at.error])
            assert "/" not in at.error[0].value.replace("1/255", "")  # no server path


def test_checkpoint_corpus_through_the_explorer_upload(tmp_path):
    at = _explorer(method="fgsm")
    at.selectbox(key="ex_model").select("own checkpoint").run()
    marker = tmp_path / "marker"
    for name, data, word in checkpoint_cases(marker):
        at.file_uploader(key="ex_ckpt").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception and len(at.error) == 1 and word in at.error[0].value, (name, at.error)
        assert str(ROOT) not in at.error[0].value
    at.file_uploader(key="ex_ckpt").set_value(("attack_fails.pt", raises_on_one(), "application/octet-stream")).run()
    assert not at.exception and any("batch of one" in e.value for e in at.error)
    assert not marker.exists()


def test_work_limits_of_the_app():
    at = _explorer(steps="999")  # over the app's limit in a link: ignored with one warning, the page shows
    assert not at.exception and not at.error and any("steps=" in w.value for w in at.warning)
    at = _explorer(patch="1")
    assert not at.exception and "windows to scan" in at.error[0].value


_PAGES = [page_path("Explorer"), page_path("Compare"), page_path("Benchmark")]


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=st.sampled_from(_PAGES),
       query=st.dictionaries(st.sampled_from([*PARAMS, "method"]),
                             st.one_of(st.text(max_size=30), st.floats(allow_nan=True).map(str),
                                       st.integers(-10**6, 10**6).map(str)), max_size=4))
def test_any_query_string_renders_every_page_without_an_exception(page, query):
    at = AppTest.from_file(str(ROOT / page), default_timeout=600)
    for k, v in {"patch": "56", "steps": "2", **query}.items():  # FAST first, the drawn values override
        at.query_params[k] = v
    at.run()
    assert not at.exception, (page, query, [e.value for e in at.exception])
