"""Plain helpers shared by the test files (fixtures live in conftest.py).

Tiny fixed-weight models with hand-checkable or reproducible outputs, the app's pages read from the one
menu registry (``sdsgsm.ui.nav.PAGES``), and what every headless-Chromium test needs. Test files import
from here (``from helpers import ...``), never from another ``test_*.py`` file.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from torch import nn

from sdsgsm.models import Classifier

if TYPE_CHECKING:
    from sdsgsm.ui.nav import NavPage

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = ROOT / "sdsgsm" / "ui" / "app"  # app.py, pages/ and .streamlit/ (the installed package carries them)


# ----------------------------------------------------------------------------- tiny fixed-weight models
class WeightedSum(nn.Module):
    """logit_0 = Σ W·x over all channels and pixels, logit_1 = 0.

    Zeroing window Ω changes the logits by exactly Σ_Ω W·x, so Δ_Ω (eq. 2) is hand-checkable.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)  # (3, H, W)

    def forward(self, x):
        s = (x * self.weight).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


def blob_weight(size: int = 32, top: int = 8, left: int = 16, patch: int = 8) -> torch.Tensor:
    """Integer weights (exact in float32): 1 everywhere, 8 inside one patch-aligned window."""
    w = torch.ones(3, size, size)
    w[:, top:top + patch, left:left + patch] = 8.0
    return w


class TinyCNN(nn.Module):
    """A small fixed-seed CNN with non-trivial gradients (10 classes, any input size)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 10)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.5

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        return self.fc(h.mean((2, 3)))


def tiny_classifier(name: str = "tiny_cnn", size: int = 32, net: nn.Module | None = None) -> Classifier:
    """``TinyCNN`` (or ``net``) as a 10-class Classifier with classes c0…c9 at ``size`` px."""
    return Classifier(TinyCNN() if net is None else net, name, [f"c{i}" for i in range(10)], size)


# ----------------------------------------------------------------------------- the app's pages (sdsgsm.ui.nav)
def menu() -> tuple[NavPage, ...]:
    """``sdsgsm.ui.nav.PAGES``, imported on first use (it brings streamlit, which most tests never need)."""
    from sdsgsm.ui.nav import PAGES

    return PAGES


def menu_labels() -> list[str]:
    """The menu's labels in order, the landing page first."""
    return [p.label for p in menu()]


def nav_page(label: str) -> NavPage:
    """The menu entry called ``label`` in ``sdsgsm.ui.nav.PAGES``."""
    for p in menu():
        if p.label == label:
            return p
    raise KeyError(f"No page labelled {label!r} in sdsgsm.ui.nav.PAGES: {menu_labels()}")


def page_path(label: str) -> str:
    """The file of the page labelled ``label``, relative to the repository root
    (e.g. 'sdsgsm/ui/app/pages/1_Explorer.py')."""
    return str((APP_DIR / nav_page(label).path).relative_to(ROOT))


def url_path(page: NavPage) -> str:
    """Where Streamlit serves ``page``: its file name minus the number prefix ('' for the landing page)."""
    if page == menu()[0]:
        return ""
    return re.sub(r"^\d+_", "", Path(page.path).stem)


def page_url(label: str) -> str:
    """The URL path of the page labelled ``label``, e.g. 'Robust_training'."""
    return url_path(nav_page(label))


# ----------------------------------------------------------------------------- headless Chromium
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LONG = 600_000  # ms: the first attack on 2 shared CPU cores can be slow
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'  # the app has finished its script run
NAV_LINKS = '[data-testid="stSidebar"] :is([data-testid="stSidebarNav"], [data-testid="stPageLink"]) a'


def need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (.ci/run installs it with apt-get install -y chromium)")


def metric(page, label: str) -> str:
    """The value shown in the st.metric box labelled ``label``."""
    box = page.locator('[data-testid="stMetric"]', has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def heading(page, text: str):
    return page.locator('[data-testid="stHeading"]').get_by_text(text, exact=True)


def nav_labels(page) -> list[str]:
    """Every navigation entry in the sidebar, ours (page links) or Streamlit's own menu, icons left out.

    The main area can finish drawing before the sidebar does, so first wait (up to a minute) until
    the sidebar holds at least as many links as the menu should have; the assertion that follows
    still fails if the menu never appears or has other entries.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n",
                               arg=[NAV_LINKS, len(menu())], timeout=60_000)
    except PlaywrightTimeout:  # report what is there instead
        pass
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].map(a => { const c = a.cloneNode(true);
                    c.querySelectorAll('[data-testid="stIconMaterial"]').forEach(i => i.remove());
                    return c.innerText.trim(); })""", NAV_LINKS)


def assert_clean_page(page) -> None:
    """One menu with exactly the entries of ``PAGES`` (none called "app"), and no error or traceback."""
    labels = nav_labels(page)
    assert "app" not in [label.lower() for label in labels]
    assert labels == menu_labels()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.content()
