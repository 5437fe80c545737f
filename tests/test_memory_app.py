"""The Explorer says when the device ran out of memory and the scan was retried with smaller
chunks, and still shows the result: OOM injected into the real scan engine."""

from pathlib import Path

import torch
from helpers import page_path
from streamlit.testing.v1 import AppTest

import sdsgsm.ui
from sdsgsm import incremental

ROOT = Path(__file__).resolve().parent.parent


def test_explorer_shows_the_retry_and_the_result(monkeypatch):
    real = incremental._chunk_diffs

    def faulty(net, maps, regs, x1):  # a GPU that fits at most 4 occluded crops at once
        if len(regs[0].top) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(net, maps, regs, x1)

    monkeypatch.setattr(incremental, "_chunk_diffs", faulty)
    sdsgsm.ui.cache.scan.clear()
    sdsgsm.ui.cache.attack.clear()
    at = AppTest.from_file(str(ROOT / page_path("Explorer")), default_timeout=600)
    at.query_params["patch"], at.query_params["steps"] = "56", "2"
    at.run()
    sdsgsm.ui.cache.scan.clear()  # later tests get an unfailing scan
    sdsgsm.ui.cache.attack.clear()
    assert not at.exception and not at.error
    notes = [w.value for w in at.warning if w.value.startswith("Out of device memory")]
    assert notes and all("zero-out scan (incremental engine)" in n and "retrying with" in n for n in notes)
    assert {m.label for m in at.metric} >= {"Attack success", "L2", "SSIM"}
