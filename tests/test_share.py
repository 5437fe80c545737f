"""Shareable state: links hold the full state, result.json runs again (CLI and Explorer upload),
the Figures and Sweeps pages (AppTest), and a copied link opened on a fresh server shows the same numbers."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import page_path
from streamlit.testing.v1 import AppTest

from sdsgsm.attacks import config_values
from sdsgsm.cli import main
from sdsgsm.metrics import metric_list
from sdsgsm.params import parse_query
from sdsgsm.share import load_result, run_query

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600
IMAGE = "imagenet/imagenet_01_559.jpg"


def _attack(tmp_path, name: str, *extra) -> Path:
    out = tmp_path / name
    argv = ["attack", "--image", IMAGE, "--method", "sd-sgsm", "--patch", "56", "--steps", "2", "--omega", "5",
            "--eps-weak", "1/255", "--out", str(out), "--device", "cpu", *extra]
    assert main(argv) == 0
    return out


@pytest.mark.slow
def test_result_json_runs_again_from_the_cli_with_the_same_numbers(tmp_path, capsys):
    first = _attack(tmp_path, "a")
    saved = json.loads((first / "result.json").read_text())
    again = tmp_path / "b"
    assert main(["attack", "--from", str(first / "result.json"), "--out", str(again), "--device", "cpu"]) == 0
    redo = json.loads((again / "result.json").read_text())
    assert redo["parameters"] == saved["parameters"] and redo["method"] == "sd-sgsm" and redo["image"] == IMAGE
    for k in (m.source for m in metric_list() if m.unit != "s"):  # every registry metric but the timings
        a, b = redo["metrics"][k], saved["metrics"][k]
        assert a == b or (a != a and b != b), k  # NaN (e.g. Ω_n of no change) counts as the same
    assert np.array_equal(np.load(first / "arrays.npz")["x_adv"], np.load(again / "arrays.npz")["x_adv"])
    # flags override the saved parameters; the link of a saved run parses back to its parameters
    assert main(["attack", "--from", str(first / "result.json"), "--steps", "1", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "result.json").read_text())["parameters"]["steps"] == 1
    run = load_result(first / "result.json")
    values, warnings = parse_query(run_query(run))
    assert not warnings and values == pytest.approx(config_values(run.cfg))
    bad = tmp_path / "bad.json"
    for payload in (b"{not json", b'{"method": "fgsm"}', b'{"method": "nope", "parameters": {}, "image": "x"}'):
        bad.write_bytes(payload)
        assert main(["attack", "--from", str(bad), "--out", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def _page(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def _metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def _link(at) -> str:
    return next(c.value for c in at.code if "patch=" in c.value)


def test_explorer_link_holds_image_model_method_label_and_every_non_default_parameter():
    at = _page(page_path("Explorer"), image=IMAGE, method="fgsm", label="pred", patch="56", steps="2", eps="6")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="ex_image").value == IMAGE and at.selectbox(key="ex_method").value == "fgsm"
    assert at.selectbox(key="ex_label_mode").value == "clean prediction"
    assert _metrics(at)["L∞"] in ("6/255", "6.0/255")
    link = _link(at)
    for part in (f"image={IMAGE.replace('/', '%2F')}", "model=efficientnet_lite0", "method=fgsm", "label=pred",
                 "patch=56", "steps=2", "eps=6"):
        assert part in link, part
    assert "omega=" not in link and "seed=" not in link  # values at their defaults are left out
    assert link.startswith("http://localhost:8501/Explorer?")  # absolute: a student can open it
    at.slider(key="ex_eps").set_value(4.0).run()  # FGSM reads ε (its sidebar has no ω)
    assert "eps=4" in _link(at) and at.query_params["eps"] in ("4", ["4"])  # the URL follows the widgets
    bad = _page(page_path("Explorer"), image="nope.jpg", label="x", model="nope", patch="56", steps="2")
    assert not bad.exception and len(bad.warning) == 3 and metrics_shown(bad)


def metrics_shown(at) -> bool:
    return bool(_metrics(at))


def test_explorer_loads_a_result_json_upload(tmp_path):
    saved = _attack(tmp_path, "a") / "result.json"
    expected = json.loads(saved.read_text())["metrics"]
    at = _page(page_path("Explorer"), patch="112", steps="1")
    at.file_uploader(key="ex_saved").set_value(("result.json", saved.read_bytes(), "application/json")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Loaded sd-sgsm" in s.value for s in at.success)
    assert at.selectbox(key="ex_image").value == IMAGE and at.select_slider(key="ex_patch").value == 56
    assert _metrics(at)["L2"] == f"{expected['l2']:.3f}" and _metrics(at)["SSIM"] == f"{expected['ssim']:.4f}"
    at.file_uploader(key="ex_saved").set_value(("result.json", b"[1, 2]", "application/json")).run()
    assert not at.exception and "not a result.json" in at.error[0].value


def test_figures_page_builds_a_grid_and_charts_a_results_csv(tiny_cnn, rand_images):
    from sdsgsm.attacks import build_config
    from sdsgsm.experiments.benchmark import run_benchmark

    at = _page(page_path("Figures"), images=IMAGE, methods="fgsm", patch="112", steps="1")
    assert not at.exception and at.multiselect(key="fig_images").value == [IMAGE]
    at.button(key="fig_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["grid.pdf", "grid.png", "grid.svg", "grid.json"]
    assert any("1 rows × (2 shared + 1 methods × 2) = 4 panels" in c.value for c in at.caption)
    res = run_benchmark(tiny_cnn, rand_images, None, ["fgsm", "pgd"], build_config({"patch": 8}), criterion="all")
    at.radio(key="fig_kind").set_value("charts").run()  # radar and bars: no grid pickers
    at.file_uploader(key="fig_results").set_value(("results.csv", res.summary.to_csv(index=False).encode(),
                                                   "text/csv")).run()
    assert not at.exception and len(at.get("download_button")) == 8 and not at.sidebar.get("multiselect")
    at.file_uploader(key="fig_results").set_value(("results.csv", b"a,b\n1,2\n", "text/csv")).run()
    assert not at.exception and "not a benchmark results.csv" in at.error[0].value


def test_sweeps_page_runs_stops_and_explains_bad_values():
    at = _page(page_path("Sweeps"), param="eps", values="0,4/255", methods="fgsm", limit="1", patch="112")
    assert not at.exception and at.text_input(key="sw_values").value == "0,4/255"
    at.button(key="sw_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["method"]) == ["fgsm", "fgsm"] and list(table["eps (shown)"]) == [0.0, 4.0]
    assert table["Accuracy under attack (%)"].iloc[0] == 100.0  # ε = 0 changes nothing
    assert len(at.get("plotly_chart")) == 1 and "sweep.csv" in [b.proto.label for b in at.get("download_button")]
    at.text_input(key="sw_values").input("0:4/255").run()
    assert not at.exception and "start:stop:count" in at.error[0].value
    at.text_input(key="sw_values").input("0,4/255,8/255").run()
    at.button(key="sw_stop").click().run()  # the new point never ran: the two finished ones are shown
    assert not at.exception and any("Stopped: 2 of 3 points" in w.value for w in at.warning)


# ----------------------------------------------------------------------------- the browser: a copied link
@pytest.mark.browser
@pytest.mark.slow
def test_a_copied_link_opened_on_a_fresh_server_shows_the_same_numbers(shots):
    from helpers import CHROMIUM, FLAGS, assert_clean_page, metric, need_chromium, page_url
    from playwright.sync_api import sync_playwright

    from sdsgsm.ui.server import start_server, stop_server

    need_chromium()
    query = f"image={IMAGE}&method=sd-sgsm&patch=56&steps=2&omega=5&eps_weak=1&label=pred"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
        numbers, link = [], None
        for run in range(2):
            proc, url = start_server()  # the second server is fresh: nothing cached, no session
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                fresh = f"{url}/{page_url('Explorer')}?{query}"
                target = fresh if link is None else re.sub(r"^http://[^/]+", url, link)
                page.goto(target, timeout=120_000)
                page.get_by_text("Attack success").wait_for(timeout=600_000)
                page.wait_for_load_state("networkidle")
                numbers.append({k: metric(page, k) for k in ("L2", "L∞", "SSIM", "Attack success")})
                if link is None:
                    page.get_by_text("Share: copy link").click()
                    link = page.locator('[data-testid="stCode"]', has_text="patch=").inner_text().strip()
                    assert link.startswith(url) and f"/{page_url('Explorer')}?" in link
                assert_clean_page(page)
                page.screenshot(path=str(shots / f"share_{run}.png"), full_page=True)
                page.close()
            finally:
                stop_server(proc)
        browser.close()
    assert numbers[0] == numbers[1], numbers
    assert "image=" in link and "omega=5" in link and "eps_weak=1" in link




def test_compare_link_holds_images_and_methods():
    at = _page(page_path("Compare"), images=f"{IMAGE},nope.jpg", methods="pgd,fgsm", steps="3")
    assert not at.exception
    assert at.multiselect(key="cmp_images_imagenet_photo").value == [IMAGE]  # unknown keys dropped
    assert at.multiselect(key="cmp_methods").value == ["pgd", "fgsm"]
    link = next(c.value for c in at.code if "steps=" in c.value)
    assert "methods=pgd%2Cfgsm" in link and "steps=3" in link and f"images={IMAGE.replace('/', '%2F')}" in link


def test_benchmark_link_holds_data_preset_methods_and_its_own_numbers_over_the_preset():
    at = _page(page_path("Benchmark"), preset="table2", eps_strong="6", methods="pgd,fgsm,bogus", data="/etc",
               limit="3", batch="x")
    assert not at.exception
    assert at.selectbox(key="bench_preset").value == "table2"
    assert at.multiselect(key="bench_methods_table2").value == ["pgd", "fgsm"]
    assert at.session_state["bench_eps_strong"] == 6.0  # the link's number wins over the preset's 8
    assert at.session_state["bench_steps"] == 10  # the rest is Table 2's
    assert at.number_input(key="bench_limit").value == 3 and at.number_input(key="bench_batch").value == 8
    warned = " ".join(w.value for w in at.warning)
    assert "data='/etc'" in warned and "bogus" in warned and "batch='x'" in warned
    link = next(c.value for c in at.code if "preset=" in c.value)
    assert "data=gallery&" in link and "preset=table2" in link and "methods=pgd%2Cfgsm" in link
    assert "eps_strong=6" in link and "limit=3" in link
    plain = _page(page_path("Benchmark"), steps="3")  # numbers without a preset: over the default preset
    assert plain.selectbox(key="bench_preset").value == "table1" and plain.session_state["bench_steps"] == 3
    assert plain.session_state["bench_eps_weak"] == 4.0  # Table 1's fair-cap ε_weak
