"""Issue 14 in the real browser: a representative subset of the bad-input corpus.

A truncated JPEG and a file that is text, uploaded through the Explorer's file input, then a
hand-typed link with NaN, a huge step count and a non-number: each gives one message on the page,
no exception box, no traceback and no server path, and the session goes on working.
"""

from __future__ import annotations

import re

import pytest
from corpus import image_cases
from helpers import IDLE, LONG, ROOT, assert_clean_page, page_url

pytestmark = pytest.mark.browser


def _alerts(page) -> str:
    return " | ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())


def test_bad_uploads_and_an_odd_link_in_chromium(server, browser, tmp_path):
    cases = {c.name: c for c in image_cases()}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{page_url('Explorer')}?patch=56&steps=2", timeout=120_000)
    page.get_by_text("Attack success").wait_for(timeout=LONG)
    page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
    uploader = page.locator('[data-testid="stFileUploader"]', has_text="Upload an image").locator('input[type="file"]')
    uploader.wait_for(state="attached", timeout=LONG)
    for name in ("truncated.jpg", "notes.jpg"):
        path = tmp_path / name
        path.write_bytes(cases[name].data)
        uploader.set_input_files(str(path))
        page.wait_for_function("(n) => [...document.querySelectorAll('[data-testid=\"stAlert\"]')]"
                               ".some(a => a.innerText.includes(n))", arg=name, timeout=LONG)
        text = _alerts(page)
        assert name in text and str(ROOT) not in text and "Traceback" not in page.content()
        assert_clean_page(page)
    good = tmp_path / "rotated.jpg"
    good.write_bytes(cases["rotated.jpg"].data)
    uploader.set_input_files(str(good))
    page.get_by_text("Attack success").wait_for(timeout=LONG)  # the session lives on
    assert_clean_page(page)

    page.goto(f"{server}/{page_url('Explorer')}?omega=nan&steps=999&eps_strong=abc&patch=56", timeout=120_000)
    page.get_by_text(re.compile("steps=")).first.wait_for(timeout=LONG)  # over the app's limit: ignored, said
    page.wait_for_selector(IDLE, timeout=LONG)
    text = _alerts(page)
    assert "omega=" in text and "eps_strong=" in text and "steps=" in text
    assert_clean_page(page)
    page.close()
