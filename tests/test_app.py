"""AppTest: every page runs with defaults and with changed widgets, and bad input stays friendly."""

import io
from pathlib import Path

import numpy as np
import pytest
from helpers import APP_DIR, page_path
from PIL import Image
from streamlit.testing.v1 import AppTest

import sdsgsm.ui
from sdsgsm.attacks import method_label

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
    at = AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Device:" in text and "efficientnet_lite0" in text
    assert len(at.main.get("page_link")) == len(sdsgsm.ui.nav.PAGES) - 1
    assert [link.proto.label for link in at.sidebar.get("page_link")] == [p.label for p in sdsgsm.ui.nav.PAGES]


@pytest.fixture
def scan_counter(monkeypatch):
    calls = []
    real = sdsgsm.ui.cache.occlusion_scan

    def counting(*args, **kwargs):
        calls.append((args[2], kwargs.get("y")))
        return real(*args, **kwargs)

    monkeypatch.setattr(sdsgsm.ui.cache, "occlusion_scan", counting)
    sdsgsm.ui.cache.scan.clear()
    sdsgsm.ui.cache.attack.clear()
    return calls


def test_explorer_defaults_then_omega_change_reuses_cached_scan(scan_counter):
    at = page(page_path("Explorer"))
    assert not at.exception and not at.error
    first = metrics(at)
    assert set(first) == {"Attack success", "L2", "L∞", "SSIM", "Attack time", "Scan time"}
    assert any("label" in m.value for m in at.markdown)
    assert len(scan_counter) == 1
    at.select_slider(key="ex_omega").set_value(1.0).run()
    second = metrics(at)
    assert not at.exception and second["L2"] != first["L2"]  # the attack really changed
    assert len(scan_counter) == 1  # …but the zero-out scan was not recomputed
    at.select_slider(key="ex_patch").set_value(112).run()
    assert len(scan_counter) == 2  # a new patch size is a new scan


def test_explorer_scan_scores_the_attacked_label_for_confidence_drop(scan_counter):
    at = page(page_path("Explorer"), score="confidence_drop")
    assert not at.exception and scan_counter[-1][1].tolist() == [243]  # the gallery's true label, as the CLI
    at.selectbox(key="ex_label_mode").select("choose…").run()
    at.selectbox(key="ex_label").select(7).run()
    assert not at.exception and scan_counter[-1][1].tolist() == [7]


def test_explorer_preset_reset_method_and_label():
    at = page(page_path("Explorer"))
    at.button(key="ex_preset_table2").click().run()
    assert at.select_slider(key="ex_steps").value == 10 and at.slider(key="ex_alpha").value == 4.0
    at.button(key="ex_preset_table1-paper").click().run()
    assert at.slider(key="ex_eps_strong").value == 14.0 and at.slider(key="ex_eps_max").value == 14.0
    assert not at.exception and any("fairness cap" in c.value for c in at.caption)
    at.button(key="ex_preset_reset").click().run()
    assert at.select_slider(key="ex_steps").value == 5 and at.select_slider(key="ex_patch").value == 0
    at.selectbox(key="ex_method").select("fgsm").run()
    assert not at.exception and metrics(at)["L∞"] in ("8/255", "8.0/255")  # one sign step of size ε everywhere
    at.selectbox(key="ex_label_mode").select("clean prediction").run()
    assert not at.exception and any("clean prediction" in c.value for c in at.caption)


def test_explorer_bad_parameters_and_query_values_are_explained():
    at = page(page_path("Explorer"), omega="nan", eps_strong="inf", eps_weak="99", region="blob", method="nope")
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    for name in ("omega", "eps_strong", "eps_weak", "region", "method"):
        assert f"{name}=" in warnings
    at.slider(key="ex_eps_weak").set_value(12.0).run()
    assert not at.exception and "ε_weak ≤ ε_strong" in at.error[0].value
    at.slider(key="ex_eps_weak").set_value(2.0).run()
    at.slider(key="ex_eps_strong").set_value(12.0).run()
    assert "exceeds ε_max" in at.error[0].value
    at.slider(key="ex_eps_strong").set_value(8.0).run()
    assert not at.error and metrics(at)


def test_explorer_links_beyond_the_old_slider_ranges_work_and_stay_in_their_session():
    at = page(page_path("Explorer"), steps="200", eps_strong="20", eps_max="24", omega="7", patch="28")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.select_slider(key="ex_steps").value == 200 and at.slider(key="ex_eps_strong").value == 20.0
    assert at.select_slider(key="ex_omega").value == 7.0 and metrics(at)["L∞"] not in ("8/255", "8.0/255")
    other = page(page_path("Explorer"))  # a second session: its sliders are the spec's, not the link's
    assert "7" not in other.select_slider(key="ex_omega").options and "200" not in other.select_slider(
        key="ex_steps").options


def test_explorer_threshold_region_reports_delta_range_and_warns():
    at = page(page_path("Explorer"), region="threshold")
    assert not at.exception
    assert any("selects every window" in w.value for w in at.warning)
    assert any(c.value.startswith("Δ ranges") and "R holds 16 of 16 windows" in c.value for c in at.caption)
    at.number_input(key="ex_tau").set_value(20.0).run()
    assert not any("every window" in w.value for w in at.warning)


def _png(arr: np.ndarray, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_explorer_uploads_good_and_bad_images():
    at = page(page_path("Explorer"))
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
    at = page(page_path("Explorer"))
    at.selectbox(key="ex_model").select("own checkpoint").run()
    assert not at.exception and at.info
    at.file_uploader(key="ex_ckpt").set_value(("evil.pt", b"\x80\x04garbage", "application/octet-stream")).run()
    assert not at.exception and at.error and "checkpoint" in at.error[0].value.lower()


def test_compare_page_has_a_row_per_method():
    at = page(page_path("Compare"))
    assert not at.exception and at.info  # waits for the Run button
    at.multiselect(key="cmp_images_imagenet_photo").set_value(["imagenet/imagenet_00_243.jpg"]).run()
    at.multiselect(key="cmp_methods").set_value(["fgsm", "sd-sgsm", "pgd"]).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["Method"]) == [method_label(m) for m in ("fgsm", "sd-sgsm", "pgd")]  # display names
    assert {"Scan time (s)", "Attack time (s)", "Total time (s)"} <= set(table.columns)
    assert table.loc[table["Method"] == method_label("fgsm"), "Scan time (s)"].item() == "0.000"
    assert float(table.loc[table["Method"] == method_label("sd-sgsm"), "Scan time (s)"].item()) > 0  # the scan counts
    assert len(at.get("plotly_chart")) == 2


def _widget_keys(at) -> set[str]:
    return {w.key for kind in ("slider", "select_slider", "selectbox", "number_input") for w in at.get(kind)}


def test_compare_shows_only_the_parameters_of_the_chosen_methods():
    at = page(page_path("Compare"))
    at.multiselect(key="cmp_methods").set_value(["fgsm", "pgd"]).run()
    keys = _widget_keys(at)
    assert "cmp_eps" in keys and not {"cmp_sigma_g", "cmp_patch_size", "cmp_eps_strong"} & keys
    at.multiselect(key="cmp_methods").set_value(["sd-sgsm", "smoothfool"]).run()
    keys = _widget_keys(at)
    assert {"cmp_sigma_g", "cmp_eps_strong", "cmp_patch"} <= keys and "cmp_patch_size" not in keys
    assert not at.exception


def test_compare_runs_on_an_uploaded_cifar_checkpoint():
    import torch

    from sdsgsm.models import cifar_resnet18

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(cifar_resnet18(10).state_dict(), buf)  # the paper's architecture, 44.8 MB in float32
    at = page(page_path("Compare"), patch="0", steps="1")
    at.selectbox(key="cmp_model").select("own checkpoint").run()
    at.file_uploader(key="cmp_ckpt").set_value(("resnet18_cifar.pt", buf.getvalue(), "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    images = at.multiselect(key="cmp_images_cifar10").value
    assert len(images) == 2 and all(k.startswith("cifar10/") for k in images)
    at.multiselect(key="cmp_methods").set_value(["fgsm", "sd-fgsm"]).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert list(at.dataframe[0].value["Method"]) == [method_label("fgsm"), method_label("sd-fgsm")]
    assert any("32 px" in c.value for c in at.caption)


def test_benchmark_page_runs_table1_stops_keeping_finished_methods_and_explains_bad_paths(tmp_path):
    at = page(page_path("Benchmark"))
    assert not at.exception and any("Table 1" in i.value for i in at.info)
    assert at.slider(key="bench_eps_weak").value == 4.0  # the preset's numbers are in the sidebar
    at.number_input(key="bench_limit").set_value(2).run()
    at.button(key="bench_run").click().run()
    assert not at.exception and not at.error
    table = next(m.value for m in at.markdown if m.value.startswith("| Method"))
    assert all(f"| {name} |" in table for name in ("FGSM", "SGSM", "SD-FGSM", "SD-SGSM"))
    assert "ASR criterion" in table and len(at.get("plotly_chart")) == 2
    assert len(at.get("download_button")) == 5
    at.session_state["bench_finished"] = ["fgsm", "sgsm"]  # as if Stop came during the third method
    at.button(key="bench_stop").click().run()
    assert not at.exception and any("Stopped: 2 of 4" in w.value for w in at.warning)
    table = next(m.value for m in at.markdown if m.value.startswith("| Method"))
    assert "| FGSM |" in table and "| SGSM |" in table and "| SD-SGSM |" not in table
    at.selectbox(key="bench_data").select("folder on disk").run()
    at.text_input(key="bench_path").input(str(tmp_path / "missing")).run()
    assert not at.exception and at.error
    at.text_input(key="bench_path").input(str(tmp_path)).run()  # exists but holds no images
    assert not at.exception and at.error


def test_explorer_refuses_more_smoothfool_iterations_than_the_app_allows_only_for_smoothfool():
    from sdsgsm.ui.limits import APP_MAX_SF_ITER

    at = page(page_path("Explorer"), method="smoothfool", sf_max_iter=str(APP_MAX_SF_ITER + 1))
    assert not at.exception and not at.error  # a link above the limit: ignored with one warning, the page shows
    assert sum("sf_max_iter=" in w.value for w in at.warning) == 1
    over = next(v for v in at.select_slider(key="ex_sf_max_iter").options if int(v) > APP_MAX_SF_ITER)
    at.select_slider(key="ex_sf_max_iter").set_value(int(over)).run()  # chosen on the page: refused
    assert any(f"above this app's limit of {APP_MAX_SF_ITER}" in e.value and f"--sf-max-iter {over}" in e.value
               for e in at.error)
    other = page(page_path("Explorer"), method="fgsm", sf_max_iter=str(APP_MAX_SF_ITER + 1))
    assert not other.exception and not any("app's limit" in e.value for e in other.error)
