"""AppTest: the Learn page, every station with the real model, its links with the Explorer, and the Home hero."""

import io
from pathlib import Path

import numpy as np
import pytest
from helpers import APP_DIR, nav_page
from PIL import Image
from streamlit.testing.v1 import AppTest

from sdsgsm.ui.learn import STATIONS

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600
FAST = {"patch": "56", "steps": "2"}  # 16 windows, two steps: quick on 2 CPU cores
pytestmark = pytest.mark.slow


def learn_page(**query) -> AppTest:
    at = AppTest.from_file(str(APP_DIR / "pages" / "4_Learn.py"), default_timeout=TIMEOUT)
    for k, v in {**FAST, **query}.items():
        at.query_params[k] = v
    return at.run()


def go(at: AppTest, number: int) -> AppTest:
    at.radio(key="ln_station").set_value(STATIONS[number - 1]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def hero_captions(at) -> str:
    """Captions of the st.image elements in the main area (AppTest has no typed image element)."""
    return " ".join(img.caption for el in at.main.get("image") for img in el.proto.imgs)


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def expected_prop1(model, omega: float) -> float:
    """‖δ_tanh‖₂ of the mastiff's gradient at ω with the default ``max`` normalisation, ε = 8/255."""
    import torch

    from sdsgsm.data import gallery_item, load_image
    from sdsgsm.experiments import learn

    x = load_image(gallery_item("imagenet/imagenet_00_243.jpg").path, 224)[None]
    return learn.proposition1(learn.image_gradient(model, x, torch.tensor([243]))[0], 8 / 255, omega).l2_tanh


def test_every_station_on_a_gallery_image(lite0):
    at = learn_page()
    assert not at.exception and not at.error
    # 1: the prediction
    assert at.header[0].value.startswith("1.") and at.dataframe[0].value.iloc[0, 0] == "bull mastiff"
    # 2: one window zeroed out, Ω* first, then a window the user picks
    go(at, 2)
    first = metrics(at)
    assert first["Rank among windows"] == "1 of 16" and float(first["Δ_Ω (logit distance)"]) > 0
    assert len(at.dataframe) == 2  # top-5 before and after
    at.selectbox(key="ln_row").select(0).run()
    at.selectbox(key="ln_col").select(0).run()
    picked = metrics(at)
    assert picked["Δ_Ω (logit distance)"] != first["Δ_Ω (logit distance)"] and picked["Rank among windows"] != "1 of 16"
    at.button(key="ln_best").click().run()
    assert metrics(at)["Rank among windows"] == "1 of 16"
    # 3: saliency map and region R
    go(at, 3)
    assert any("R holds 1 of 16 windows" in c.value for c in at.caption)
    at.selectbox(key="ln_region").select("topk").run()
    at.number_input(key="ln_topk").set_value(4).run()
    assert any("R holds 4 of 16 windows" in c.value for c in at.caption)
    # 4: the budget map E: pixel counts follow R, a bad combination gets one line
    go(at, 4)
    assert metrics(at)["Pixels at ε_strong"].startswith(f"{4 * 56 * 56:,}")
    at.slider(key="ln_eps_weak").set_value(12.0).run()
    assert not at.exception and "ε_weak ≤ ε_strong" in at.error[0].value
    at.slider(key="ln_eps_weak").set_value(2.0).run()
    assert not at.error
    # 5: sign versus tanh: the cube, the paper's toy, saturation and Proposition 1 on this image
    go(at, 5)
    assert len(at.get("plotly_chart")) == 4  # 2-D cube, 3-D cube, histogram, Proposition 1 curve
    toy = at.dataframe[0].value
    assert list(toy["g1"]) == ["-0.200", "-1.000", "-0.762"] and list(toy["g5"]) == ["+0.200", "+1.000", "+0.762"]
    prop = metrics(at)
    assert float(prop["‖δ_tanh‖₂ at ω = 10"]) < float(prop["‖δ_FGSM‖₂"])
    assert prop["‖δ_tanh‖₂ at ω = 10"] == f"{expected_prop1(lite0, 10.0):.3f}"  # the page's ĝ is the attack's
    at.select_slider(key="ln_omega").set_value(1e6).run()
    assert float(metrics(at)["‖δ_tanh‖₂ at ω = 1e+06"]) == pytest.approx(float(prop["‖δ_FGSM‖₂"]), rel=2e-3)
    assert any("saturated" in m.value and "linear regime" in m.value for m in at.markdown)
    at.radio(key="ln_gsource").set_value("your own numbers").run()
    at.number_input(key="ln_g1").set_value(0.5).run()
    assert not at.exception and any(c.value.startswith("tanh(ω·ĝ) =") for c in at.caption)
    at.select_slider(key="ln_omega").set_value(10.0).run()
    # 6: the iterations replayed, the step slider, another method
    go(at, 6)
    assert at.slider(key="ln_t").value == 0
    step0 = next(m.value for m in at.markdown if m.value.startswith("Step 0:"))
    at.slider(key="ln_t").set_value(2).run()
    assert not at.exception and any(m.value.startswith("Step 2:") for m in at.markdown)
    assert next(m.value for m in at.markdown if m.value.startswith("Step 2:")) != step0
    at.selectbox(key="ln_method").select("pgd").run()
    assert not at.exception and any("Step size α" in c.value for c in at.caption)
    at.select_slider(key="ln_steps").set_value(100).run()
    assert "T ≤ 50" in at.error[0].value
    at.select_slider(key="ln_steps").set_value(2).run()
    # 7: try it yourself: the link carries image, method and changed parameters
    go(at, 7)
    link = at.code[0].value
    assert link.startswith("/Explorer?image=imagenet/imagenet_00_243.jpg&method=pgd") and "patch=56" in link
    at.button(key="ln_back").click().run()
    assert at.header[0].value.startswith("6.")


def test_upload_good_and_bad_images():
    at = learn_page()
    at.radio(key="ln_source").set_value("Upload").run()
    assert not at.exception and at.info
    rgb = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    at.file_uploader(key="ln_upload").set_value(("noise.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error and len(at.dataframe) == 1
    assert any("the model's own top-1" in m.value for m in at.markdown)
    for n in (2, 6, 7):
        go(at, n)
        assert not at.error
    assert any("upload the same file again" in c.value for c in at.caption)
    at.file_uploader(key="ln_upload").set_value(("broken.png", b"not an image", "image/png")).run()
    assert not at.exception and at.error


def test_links_open_a_station_and_bad_values_are_explained():
    at = learn_page(station="5", omega="2", image="photos/chelsea.png")
    assert not at.exception and at.header[0].value.startswith("5.")
    assert at.select_slider(key="ln_omega").value == 2.0
    bad = learn_page(station="99", omega="nan", image="nope.png")
    warnings = " ".join(w.value for w in bad.warning)
    assert not bad.exception and "station=" in warnings and "omega=" in warnings and "image=" in warnings
    assert bad.header[0].value.startswith("1.")


def test_explorer_takes_an_image_from_the_link():
    at = AppTest.from_file(str(APP_DIR / "pages" / "1_Explorer.py"), default_timeout=TIMEOUT)
    for k, v in {**FAST, "image": "imagenet/imagenet_02_438.jpg"}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception and at.selectbox(key="ex_image").value == "imagenet/imagenet_02_438.jpg"


def test_home_hero_and_learn_explorer_share_image_and_parameters():
    at = AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert hero_captions(at) and "Adversarial:" in hero_captions(at)
    text = " ".join(m.value for m in at.markdown)
    assert "**Learn** walks a class" in text
    # Explorer first: its image and ω travel to Learn in the same session …
    at.switch_page(nav_page("Explorer").path)
    for k, v in FAST.items():
        at.query_params[k] = v
    at.run()
    at.selectbox(key="ex_image").select("imagenet/imagenet_01_559.jpg").run()
    at.select_slider(key="ex_omega").set_value(5.0).run()
    at.switch_page(nav_page("Learn").path).run()
    assert not at.exception
    assert at.selectbox(key="ln_image").value == "imagenet/imagenet_01_559.jpg"
    assert at.session_state["ln_omega"] == 5.0  # its widget is on stations 5 and 6
    # … and "Try it yourself" hands Learn's back to the Explorer
    at.radio(key="ln_station").set_value(STATIONS[6]).run()
    at.session_state["ln_omega"] = 20.0
    at.button(key="ln_open").click().run()
    assert not at.exception
    assert at.select_slider(key="ex_omega").value == 20.0
    assert at.selectbox(key="ex_image").value == "imagenet/imagenet_01_559.jpg"
    assert at.metric  # the Explorer ran its attack
