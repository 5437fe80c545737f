"""AppTest: every page runs with defaults and with changed widgets, and bad input stays friendly."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import sdsgsm.ui

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600
FAST = {"patch": "56", "steps": "2"}  # 16 windows, two steps: keeps CI quick on 2 CPU cores


def page(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
    for key, value in {**FAST, **query}.items():
        at.query_params[key] = value
    return at.run()


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_landing_page_shows_links_device_and_model():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Device:" in text and "efficientnet_lite0" in text
    assert len(at.get("page_link")) == 3


@pytest.fixture
def scan_counter(monkeypatch):
    calls = []
    real = sdsgsm.ui.occlusion_scan

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(sdsgsm.ui, "occlusion_scan", counting)
    sdsgsm.ui.scan.clear()
    sdsgsm.ui.attack.clear()
    return calls


def test_explorer_defaults_then_omega_change_reuses_cached_scan(scan_counter):
    at = page("views/1_Explorer.py")
    assert not at.exception and not at.error
    first = metrics(at)
    assert set(first) == {"Attack success", "L2", "L∞", "SSIM", "Attack time"}
    assert any("label" in m.value for m in at.markdown)
    assert len(scan_counter) == 1
    at.select_slider(key="ex_omega").set_value(1.0).run()
    second = metrics(at)
    assert not at.exception and second["L2"] != first["L2"]  # the attack really changed
    assert len(scan_counter) == 1  # …but the zero-out scan was not recomputed
    at.select_slider(key="ex_patch").set_value(112).run()
    assert len(scan_counter) == 2  # a new patch size is a new scan


def test_explorer_preset_reset_method_and_label():
    at = page("views/1_Explorer.py")
    at.button(key="ex_preset_Table 2").click().run()
    assert at.slider(key="ex_steps").value == 10 and at.slider(key="ex_alpha").value == 4.0
    at.button(key="ex_preset_Reset").click().run()
    assert at.slider(key="ex_steps").value == 5
    at.selectbox(key="ex_method").select("fgsm").run()
    assert not at.exception and metrics(at)["L∞"] == "8.00/255"  # one sign step of size ε everywhere
    at.selectbox(key="ex_label_mode").select("clean prediction").run()
    assert not at.exception and any("clean prediction" in c.value for c in at.caption)


def test_explorer_bad_parameters_and_query_values_are_explained():
    at = page("views/1_Explorer.py", omega="nan", eps_strong="inf")
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "omega" in warnings and "eps_strong" in warnings
    at.slider(key="ex_eps_weak").set_value(12.0).run()
    assert not at.exception and "ε_weak ≤ ε_strong" in at.error[0].value
    at.slider(key="ex_eps_weak").set_value(2.0).run()
    at.slider(key="ex_eps_strong").set_value(12.0).run()
    assert "exceeds ε_max" in at.error[0].value
    at.slider(key="ex_eps_strong").set_value(8.0).run()
    assert not at.error and metrics(at)


def _png(arr: np.ndarray, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_explorer_uploads_good_and_bad_images():
    at = page("views/1_Explorer.py")
    at.radio(key="ex_source").set_value("Upload").run()
    assert not at.exception and at.info  # asks for an upload
    rgba = np.random.default_rng(0).integers(0, 255, (120, 90, 4), dtype=np.uint8)
    at.file_uploader(key="ex_upload").set_value(("photo.png", _png(rgba), "image/png")).run()
    assert not at.exception and not at.error and metrics(at)
    for name, payload in [("broken.png", b"not an image at all"), ("empty.png", b""),
                          ("tiny.png", _png(np.zeros((1, 1, 3), np.uint8)))]:
        at.file_uploader(key="ex_upload").set_value((name, payload, "image/png")).run()
        assert not at.exception and at.error, name


def test_explorer_checkpoint_upload_with_wrong_architecture_is_explained():
    at = page("views/1_Explorer.py")
    at.selectbox(key="ex_model").select("own checkpoint").run()
    assert not at.exception and at.info
    at.file_uploader(key="ex_ckpt").set_value(("evil.pt", b"\x80\x04garbage", "application/octet-stream")).run()
    assert not at.exception and at.error and "checkpoint" in at.error[0].value.lower()


def test_compare_page_has_a_row_per_method():
    at = page("views/2_Compare.py")
    assert not at.exception and at.info  # waits for the Run button
    at.multiselect(key="cmp_images").set_value(["imagenet/imagenet_00_243.jpg"]).run()
    at.multiselect(key="cmp_methods").set_value(["fgsm", "sd-sgsm", "pgd"]).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["method"]) == ["fgsm", "sd-sgsm", "pgd"]
    assert len(at.get("plotly_chart")) == 2


def test_benchmark_page_runs_table1_and_explains_bad_paths(tmp_path):
    at = page("views/3_Benchmark.py")
    assert not at.exception and any("table1" in i.value for i in at.info)
    at.number_input(key="bench_limit").set_value(2).run()
    at.button(key="bench_run").click().run()
    assert not at.exception and not at.error
    table = next(m.value for m in at.markdown if m.value.startswith("| Method"))
    assert all(f"| {name} |" in table for name in ("FGSM", "SGSM", "SD-FGSM", "SD-SGSM"))
    assert "ASR criterion" in table and len(at.get("plotly_chart")) == 2
    assert len(at.get("download_button")) == 5
    at.selectbox(key="bench_data").select("folder on disk").run()
    at.text_input(key="bench_path").input(str(tmp_path / "missing")).run()
    assert not at.exception and at.error
    at.text_input(key="bench_path").input(str(tmp_path)).run()  # exists but holds no images
    assert not at.exception and at.error
