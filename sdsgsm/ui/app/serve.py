"""The app's server entry: `streamlit run serve.py` serves app.py and pages/ with a start hook.

Streamlit detects the ``st.App`` below and runs it as an ASGI app. Its lifespan starts
:func:`sdsgsm.ui.warmup.run` in one background thread once the server runs: it loads the default
model and computes Home's example, so the first visitor does not wait for them (see that module for
the bounds). The thread imports the package itself, so the server answers before torch is imported
and its cached functions are created with Streamlit's runtime in place. At shutdown the warm-up is
cancelled. `streamlit run app.py` still works, without the warm-up.

Torch's OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless already set; read once, when torch
is first imported, which is after this line): on a CPU shared with other work, threads that spin while
waiting for each other burned 4–5 s of CPU per 0.3 s attack and made an ω change 7× slower. The numbers
are the same either way.
"""

import asyncio
import contextlib
import os
import threading

import streamlit as st

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _warm(cancel: threading.Event) -> None:
    from sdsgsm.ui import warmup

    warmup.run(cancel)


@contextlib.asynccontextmanager
async def lifespan(app):
    """Start the warm-up thread; at shutdown cancel it and wait up to 5 s for the step in progress
    (the thread is a daemon: it never holds the process)."""
    cancel = threading.Event()
    thread = threading.Thread(target=_warm, args=(cancel,), name="sdsgsm-warmup", daemon=True)
    thread.start()
    try:
        yield None
    finally:
        cancel.set()
        await asyncio.to_thread(thread.join, 5)


app = st.App("app.py", lifespan=lifespan)
