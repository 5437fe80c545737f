"""Links: absolute, only non-default values, a QR code; every bad link value or key said in one
warning line and never hiding the page; unknown pages named."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from sdsgsm.params import PARAMS, PRESETS, parse_query
from sdsgsm.share import absolute_link, link_base, param_query, qr_png
from sdsgsm.ui.limits import APP_MAX_STEPS
from sdsgsm.ui.nav import PAGES, unknown_page, url_name
from tests.helpers import ROOT, page_path

TIMEOUT = 300


def _defaults() -> dict:
    return {n: p.default for n, p in PARAMS.items()}


def test_a_link_holds_only_the_values_that_differ_from_where_it_starts():
    values = {**_defaults(), "steps": 7, "omega": 2.0}
    assert param_query(values, link_base()) == {"steps": "7", "omega": "2"}
    name, preset = next(iter(PRESETS.items()))
    over = preset.apply()
    assert param_query(over, link_base(name)) == {}  # a preset's own numbers need no repeating
    assert set(param_query(over, link_base())) == {n for n, v in preset.values if PARAMS[n].shown(v)
                                                   != PARAMS[n].shown(PARAMS[n].default)}
    # what is left out comes back as the default when the link is read
    back, warnings = parse_query(param_query(values, link_base()))
    assert not warnings and {**_defaults(), **back} == values
    assert len(param_query(values)) == len(PARAMS)  # without a base: every parameter (result.json's run_query)


def test_absolute_link_and_qr_code():
    assert absolute_link("http://localhost:8501/", "Explorer", {"steps": "7", "image": "a/b.jpg"}) == \
        "http://localhost:8501/Explorer?steps=7&image=a%2Fb.jpg"
    assert absolute_link("http://h:1/base", "", {}) == "http://h:1/base"
    pytest.importorskip("segno")
    png = qr_png("http://localhost:8501/Explorer?steps=7")
    assert png is not None and png.startswith(b"\x89PNG")


def test_unknown_pages_are_named_and_known_ones_are_not():
    names = [url_name(p.path) for p in PAGES]
    assert names[0] == "" and "Explorer" in names and "Robust_training" in names
    for name in names:
        assert unknown_page(f"http://localhost:8501/{name}") is None
        assert unknown_page(f"http://h/app/{name}/", "/app") is None
    assert unknown_page("http://localhost:8501/Explorr") == "Explorr"
    assert unknown_page("http://h/app/Nope", "app") == "Nope"
    assert unknown_page(None) is None


def _page(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def test_out_of_range_and_over_limit_link_values_are_ignored_alike_and_the_page_shows():
    at = _page(page_path("Explorer"), steps=str(APP_MAX_STEPS + 799), omega="-1", patch="112")
    assert not at.exception and not at.error, [e.value for e in at.error]
    warnings = [w.value for w in at.warning]
    assert sum("steps=" in w for w in warnings) == 1 and sum("omega=" in w for w in warnings) == 1
    assert at.session_state["ex_steps"] == PARAMS["steps"].default  # ignored: the default stays
    assert at.session_state["ex_omega"] == PARAMS["omega"].default
    assert at.metric  # the page's numbers are shown, not hidden behind the limit's error


def test_a_link_key_the_page_does_not_read_is_said_in_one_line():
    at = _page(page_path("Transfer"), models="nonexistent")
    assert not at.exception
    said = [w.value for w in at.warning if "models=" in w.value]
    assert len(said) == 1 and "nonexistent" in said[0]
    link = next(c.value for c in at.code if c.value.startswith("http"))
    assert link.startswith("http://localhost:8501/Transfer") and "models=" not in link
    assert not at.image
    at.toggle(key="tr_qr").set_value(True).run()  # the classroom QR code, on request
    if qr_png("x") is not None:
        assert len(at.image) == 1 and "Scan" in at.image[0].proto.imgs[0].caption
