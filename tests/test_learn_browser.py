"""The Learn page in headless Debian Chromium: Next through all seven stations, the replay slider moved.

Screenshots go to pytest's tmp_path, or to $SDSGSM_SCREENSHOTS when it is set.
"""

import re

import pytest
from helpers import IDLE, LONG, assert_clean_page, page_url

from sdsgsm.ui.learn import TITLES

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _settled(page, title: str) -> None:
    page.locator('[data-testid="stHeading"]').get_by_text(title, exact=True).wait_for(timeout=LONG)
    page.wait_for_selector(IDLE, timeout=LONG)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.content()


def test_learn_steps_through_every_station_and_replays(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1700})
    page.goto(f"{server}/{page_url('Learn')}?patch=56&steps=3", timeout=120_000)
    for i, title in enumerate(TITLES):
        _settled(page, title)
        if i == 5:  # the replay: move the step slider from t = 0 to t = 2 with the keyboard
            page.get_by_text(re.compile(r"^Step 0:")).wait_for(timeout=LONG)
            slider = page.get_by_role("slider", name="Step t")
            slider.focus()
            slider.press("ArrowRight")
            page.get_by_text(re.compile(r"^Step 1:")).wait_for(timeout=LONG)
            slider.press("ArrowRight")
            page.get_by_text(re.compile(r"^Step 2:")).wait_for(timeout=LONG)
            assert page.get_by_text(re.compile(r"^x_2:")).count() == 1
        page.screenshot(path=str(shots / f"learn_{i + 1}.png"), full_page=True)
        if i < len(TITLES) - 1:
            page.get_by_role("button", name="Next →").click()
    assert f"/{page_url('Explorer')}?image=imagenet/imagenet_00_243.jpg" in page.locator("code").first.inner_text()
    page.get_by_role("button", name=re.compile("Open the Explorer")).click()
    page.get_by_text("Attack success").wait_for(timeout=LONG)
    assert page.url.split("?")[0].endswith("/" + page_url("Explorer")) and "image=imagenet" in page.url
    assert_clean_page(page)
    page.close()
