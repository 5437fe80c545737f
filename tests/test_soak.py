"""Issue 14, soak: 200 parameter changes and 50 different uploads in one Explorer session.

AppTest runs the page in this process, with the same process-wide caches a server has, so this
process's resident memory is the server's. The caches have entry limits (sdsgsm/ui/cache.py; an
attack record with its images is ~5 MB, 64 are kept), so memory must level off: the first 100
changes fill the attack cache (~100 distinct configurations), and the growth from there to the end
of each part must be small. The measured figures are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import io
import resource
from pathlib import Path

import numpy as np
import pytest
from helpers import page_path
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _rss_mib() -> float:
    """Resident memory after a collection and glibc's trim: what the process keeps, not the allocator's slack
    (a full test session leaves freed arenas that come and go by a few hundred MiB)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _jpeg(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def test_200_changes_and_50_uploads_keep_memory_bounded():
    at = AppTest.from_file(str(ROOT / page_path("Explorer")), default_timeout=600)
    at.query_params["patch"] = "56"
    at.query_params["steps"] = "2"
    at.run()
    assert not at.exception
    omegas = at.select_slider(key="ex_omega").options
    strongs = [s / 2 for s in range(4, 17)]  # 2 … 8 in 1/255: 13 × 11 distinct configs, more than the caches hold
    rss = {"start": _rss_mib()}
    for i in range(200):
        if i % 2:
            at.select_slider(key="ex_omega").set_value(float(omegas[(i // 2) % len(omegas)])).run()
        else:
            at.slider(key="ex_eps_strong").set_value(strongs[(i // 2) % len(strongs)]).run()
        assert not at.exception and not at.error, i
        if i == 99:
            rss["after 100 changes"] = _rss_mib()
    rss["after 200 changes"] = _rss_mib()
    at.radio(key="ex_source").set_value("Upload").run()
    for i in range(50):
        at.file_uploader(key="ex_upload").set_value((f"photo_{i}.jpg", _jpeg(i), "image/jpeg")).run()
        assert not at.exception and not at.error and any(m.label == "L2" for m in at.metric), i
        if i == 24:
            rss["after 25 uploads"] = _rss_mib()
    rss["after 50 uploads"] = _rss_mib()
    print("\nsoak resident memory (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    assert rss["after 200 changes"] - rss["after 100 changes"] < 150
    assert rss["after 50 uploads"] - rss["after 25 uploads"] < 150
