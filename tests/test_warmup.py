"""The server's warm-up (sdsgsm/ui/warmup.py, started by sdsgsm/ui/app/serve.py): it fills the same caches
the pages read, a visitor who comes during it waits for the entry instead of computing it again, it can be
cancelled or turned off, and `streamlit run serve.py` serves the app with it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import streamlit as st

from sdsgsm.ui import cache, warmup
from sdsgsm.ui import learn as learn_ui

APP_DIR = Path(__file__).resolve().parent.parent / "sdsgsm" / "ui" / "app"


@pytest.fixture
def attack_calls(monkeypatch):
    """Empty caches, and a list that records each real attack the cached functions run (the attack
    itself is the real one)."""
    st.cache_data.clear()
    calls, real = [], cache.attack_tensor

    def counted(*args, **kwargs):
        calls.append(threading.current_thread().name)
        hook = getattr(counted, "hook", None)
        if hook is not None:
            hook()
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "attack_tensor", counted)
    yield calls, counted
    st.cache_data.clear()


def default_model() -> str:
    return next(m["name"] for m in cache.model_options() if m["available"])


@pytest.mark.slow
def test_warm_up_fills_the_cache_the_pages_read(attack_calls):
    calls, _ = attack_calls
    assert warmup.warm_up(threading.Event()) == [name for name, _ in warmup.steps()] == ["model", "hero"]
    assert len(calls) == 1
    model = cache.get_model(default_model())
    hero = learn_ui.hero(default_model())  # Home's first visitor: a cache hit, no attack runs
    assert len(calls) == 1 and hero is not None
    assert hero["adversarial"].shape == (model.input_size, model.input_size, 3)


@pytest.mark.slow
def test_a_visitor_during_the_warm_up_waits_for_its_entry(attack_calls):
    calls, counted = attack_calls
    inside, release = threading.Event(), threading.Event()

    def hold():  # the warm-up's attack stays in progress until the visitor has asked for the same entry
        if threading.current_thread().name == "sdsgsm-warmup":
            inside.set()
            release.wait(60)

    counted.hook = hold
    results = {}
    thread = threading.Thread(target=lambda: results.setdefault("done", warmup.warm_up(threading.Event())),
                              name="sdsgsm-warmup")
    thread.start()
    assert inside.wait(300)
    threading.Timer(1.0, release.set).start()
    visitor = learn_ui.hero(default_model())  # blocks on the entry's lock until the warm-up has stored it
    thread.join(300)
    assert results["done"] == ["model", "hero"]
    assert calls == ["sdsgsm-warmup"]  # computed once, by the warm-up
    again = learn_ui.hero(default_model())
    assert np.array_equal(visitor["adversarial"], again["adversarial"])


def test_a_cancelled_warm_up_does_no_work(attack_calls):
    calls, _ = attack_calls
    cancel = threading.Event()
    cancel.set()
    assert warmup.warm_up(cancel) == []
    assert calls == []


def test_the_warm_up_can_be_turned_off(monkeypatch, attack_calls):
    calls, _ = attack_calls
    for off in ("0", "false", "off"):
        monkeypatch.setenv("SDSGSM_WARMUP", off)
        assert not warmup.enabled()
        assert warmup.run(threading.Event()) == []
    monkeypatch.setenv("SDSGSM_WARMUP", "1")
    assert warmup.enabled()
    assert calls == []


def test_a_failing_step_ends_the_warm_up_without_raising(monkeypatch):
    def broken():
        raise RuntimeError("no model here")

    monkeypatch.setattr(warmup, "steps", lambda: [("model", broken), ("hero", broken)])
    assert warmup.warm_up(threading.Event()) == []


def test_streamlit_runs_serve_py_as_an_app_of_app_py():
    from streamlit.web.server.app_discovery import discover_asgi_app

    from sdsgsm.ui.server import app_dir, entry

    assert entry() == "serve.py" and (app_dir() / entry()).is_file()
    found = discover_asgi_app(APP_DIR / "serve.py")
    assert found.is_asgi_app
    assert '"app.py"' in (APP_DIR / "serve.py").read_text() and (APP_DIR / "app.py").is_file()


def test_an_older_checkout_without_serve_py_runs_app_py(tmp_path):
    from sdsgsm.ui.server import entry

    (tmp_path / "app.py").write_text("")
    assert entry(tmp_path) == "app.py"


@pytest.mark.browser
@pytest.mark.slow
def test_the_first_visitor_of_a_fresh_server_gets_home_example(browser):
    """The visitor comes while the warm-up runs and still gets the example (once it is ready)."""
    from helpers import LONG, need_chromium

    from sdsgsm.ui.server import start_server, stop_server

    need_chromium()
    proc, url = start_server()
    try:
        page = browser.new_page()
        page.goto(url, timeout=LONG)
        page.get_by_text("The change × 5").wait_for(timeout=LONG)
        assert page.locator('[data-testid="stMain"] [data-testid="stImage"] img').count() >= 4
        page.close()
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_after_the_warm_up_home_and_the_default_explorer_compute_nothing(attack_calls):
    """Home's example is the Explorer's default view (image, method, parameters, label), so one warm-up
    serves both pages' first visitors."""
    from streamlit.testing.v1 import AppTest

    calls, _ = attack_calls
    warmup.warm_up(threading.Event())
    assert len(calls) == 1
    home = AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=600).run()
    assert not home.exception and any("walks a class" in m.value for m in home.markdown)  # the example is shown
    explorer = AppTest.from_file(str(APP_DIR / "pages" / "1_Explorer.py"), default_timeout=600).run()
    assert not explorer.exception and "L2" in [m.label for m in explorer.metric]
    assert len(calls) == 1
