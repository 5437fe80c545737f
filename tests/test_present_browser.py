"""Presentation mode in headless Chromium at a projector's 1280×720: the result (the adversarial label) is in the
first screen of the Explorer opened with ``?present=1``, and Learn's Next button is in the first screen of every
station."""

import pytest
from helpers import LONG, assert_clean_page, page_url

from sdsgsm.ui.learn import TITLES

pytestmark = pytest.mark.browser
PROJECTOR = {"width": 1280, "height": 720}
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def inside(box: dict | None) -> bool:
    """Whether an element's bounding box lies inside the first 1280×720 screen."""
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= PROJECTOR["width"] \
        and box["y"] + box["height"] <= PROJECTOR["height"]


def test_explorer_present_mode_shows_the_label_change_in_the_first_screen(server, browser, shots):
    page = browser.new_page(viewport=PROJECTOR)
    page.goto(f"{server}/{page_url('Explorer')}?present=1&patch=56&steps=2", timeout=120_000)
    label = page.locator("#sdsgsm-adv-label")
    label.wait_for(timeout=LONG)
    page.locator(IDLE).wait_for(timeout=LONG)
    side = page.locator('[data-testid="stSidebar"]').bounding_box()
    assert side is None or side["x"] + side["width"] <= 1 or side["width"] < 80  # collapsed
    assert inside(label.bounding_box()), label.bounding_box()
    images = page.locator('[data-testid="stMain"] [data-testid="stImage"] img')
    assert images.count() >= 3 and all(inside(images.nth(i).bounding_box()) for i in range(3))
    page.screenshot(path=str(shots / "explorer_present_1280.png"))
    assert_clean_page(page)
    page.close()


def test_learn_next_button_is_in_the_first_screen_of_every_station(server, browser, shots):
    page = browser.new_page(viewport=PROJECTOR)
    page.goto(f"{server}/{page_url('Learn')}?present=1", timeout=120_000)
    next_button = page.get_by_role("button", name="Next →")
    for station in range(1, 7):
        next_button.wait_for(timeout=LONG)
        page.locator(IDLE).wait_for(timeout=LONG)
        page.evaluate("window.scrollTo(0, 0)")
        assert inside(next_button.bounding_box()), (station, next_button.bounding_box())
        page.screenshot(path=str(shots / f"learn_present_{station}.png"))
        heading = page.locator('[data-testid="stMain"] h2').first.inner_text()
        next_button.click()
        page.wait_for_function("([h]) => { const e = document.querySelector('[data-testid=\"stMain\"] h2');"
                               " return e && e.innerText !== h; }", arg=[heading], timeout=LONG)
    assert page.locator('[data-testid="stMain"] h2').first.inner_text() == TITLES[-1]
    page.close()
