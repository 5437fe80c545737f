"""Shared fixtures: tiny fixed-weight models with hand-checkable outputs, the real model, and the
headless-Chromium browser tests' server, browser and screenshot folder.

The models and browser helpers themselves are plain code in helpers.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import CHROMIUM, FLAGS, TinyCNN, WeightedSum, blob_weight, need_chromium, tiny_classifier  # noqa: F401

from sdsgsm.models import Classifier


@pytest.fixture
def weighted_sum_model():
    return Classifier(WeightedSum(blob_weight()), "weighted_sum", ["a", "b"], 32)


@pytest.fixture
def tiny_cnn():
    return tiny_classifier()


@pytest.fixture
def rand_images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 32, 32, generator=g)


@pytest.fixture(scope="session")
def lite0():
    from sdsgsm.models import load_model

    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def imagenet_batch():
    from sdsgsm.data import load_gallery

    x, y, keys = load_gallery("imagenet", 224)
    return x, y, keys


# ----------------------------------------------------------------------------- browser tests
@pytest.fixture(scope="module")
def server():
    """The app served for one test module (`streamlit run app.py`); skips without Debian chromium."""
    from sdsgsm.ui.server import start_server, stop_server  # sdsgsm.ui brings streamlit: only when asked

    need_chromium()
    proc, url = start_server()
    yield url
    stop_server(proc)


@pytest.fixture
def fresh_server():
    """A server of its own, so that the test's request is the very first this server sees."""
    from sdsgsm.ui.server import start_server, stop_server

    need_chromium()
    proc, url = start_server()
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:], headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: pytest's tmp_path, or $SDSGSM_SCREENSHOTS when it is set (to look at them)."""
    folder = Path(os.environ.get("SDSGSM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
