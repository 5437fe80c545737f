"""Server warm-up: load the default model and compute Home's example when the server starts.

The app's ``st.App`` (``sdsgsm/ui/app/serve.py``) runs :func:`run` in one background thread when the
server starts, so the first visitor finds the model loaded and the
Home example (which is also the Explorer's default image, method and parameters) in the cache instead
of waiting for them. The work is bounded (one model, one scan, one attack: what the first visitor
would have computed anyway), cancellable between steps, and never blocks a page: it goes through the
same ``st.cache_resource`` / ``st.cache_data`` functions as the pages, whose per-key locks make a
visitor who arrives during the warm-up wait for the entry being computed instead of computing it twice.
``$SDSGSM_WARMUP=0`` turns it off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("sdsgsm.warmup")


def enabled() -> bool:
    """False when $SDSGSM_WARMUP is 0/false/no/off."""
    return os.environ.get("SDSGSM_WARMUP", "1").strip().lower() not in ("0", "false", "no", "off")


def steps() -> list[tuple[str, Callable[[], object]]]:
    """The warm-up's steps in order, as (name, call): the default model, then Home's example."""
    from sdsgsm.ui import cache
    from sdsgsm.ui import learn as learn_ui

    default = next((m["name"] for m in cache.model_options() if m["available"]), None)
    if default is None:
        return []
    return [("model", lambda: cache.get_model(default)), ("hero", lambda: learn_ui.hero(default))]


def warm_up(cancel: threading.Event, report: Callable[[str, float], None] | None = None) -> list[str]:
    """Run :func:`steps` until done or ``cancel`` is set; returns the names of the steps done.
    ``report(name, seconds)`` is called after each. A failing step is logged and ends the warm-up
    (the page that needs it computes it and says what went wrong)."""
    done = []
    for name, call in steps():
        if cancel.is_set():
            break
        t0 = time.perf_counter()
        try:
            call()
        except Exception:  # noqa: BLE001 - a warm-up failure must never stop the server
            log.exception("warm-up step %s failed", name)
            break
        done.append(name)
        if report is not None:
            report(name, time.perf_counter() - t0)
    return done


def quiet_thread_warnings() -> None:
    """Cached functions called outside a page run log 'missing ScriptRunContext' once per call; they
    are expected here."""
    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not (threading.current_thread().name == "sdsgsm-warmup"
                        and "missing ScriptRunContext" in record.getMessage())

    logger = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    if not any(type(f).__name__ == "_Drop" for f in logger.filters):
        logger.addFilter(_Drop())


def run(cancel: threading.Event) -> list[str]:
    """The server's warm-up (``serve.py`` starts it in a thread): :func:`warm_up` unless
    $SDSGSM_WARMUP turns it off, with a log line of what it did."""
    if not enabled():
        return []
    quiet_thread_warnings()
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    done = warm_up(cancel, lambda name, s: seconds.__setitem__(name, round(s, 2)))
    log.info("warm-up done in %.1f s: %s", time.perf_counter() - t0, seconds)
    return done
