"""CUDA memory safety on CPU by fault injection.

A real model is wrapped so that its forward raises ``torch.cuda.OutOfMemoryError`` when it is
handed more than ``limit`` images at once — the error a GPU raises when a batch does not fit —
and the scan, the attack wrapper and the benchmark must halve their chunk or batch, say so with a
MemoryRetryWarning, and give the same numbers as an unfailing run; at one image they must stop
with one clear line (DeviceMemoryError).
"""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
from torch import nn

from sdsgsm import incremental
from sdsgsm.attacks import AttackConfig, run_attack
from sdsgsm.experiments.benchmark import run_benchmark
from sdsgsm.memory import DeviceMemoryError, MemoryRetryWarning, is_oom, recording, run_chunks
from sdsgsm.metrics import metric_list
from sdsgsm.occlusion import ScanConfig, occlusion_scan

TIME_COLUMNS = [m.source for m in metric_list() if m.unit == "s"]  # the registry's timings: differ run to run


class OOMAbove(nn.Module):
    """Fault injection: ``inner`` (a real Classifier) that raises CUDA OOM for batches > limit."""

    def __init__(self, inner: nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit, self.seen = inner, limit, []
        self.name, self.labels, self.input_size = inner.name, inner.labels, inner.input_size

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(len(x))
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} GiB")
        return self.inner(x)


def _messages(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, MemoryRetryWarning)]


# ----------------------------------------------------------------------------- the helper
def test_run_chunks_halves_keeps_finished_chunks_and_order():
    calls = []

    def step(a, b):
        calls.append((a, b))
        if b - a > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return list(range(a, b))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run_chunks(step, 10, 8, what="a test step")
    assert [i for part in out for i in part] == list(range(10))
    assert calls[:3] == [(0, 8), (0, 4), (0, 2)]  # 8 fails, 4 fails, then chunks of 2
    assert _messages(caught) == ["Out of device memory in a test step with 8 images at once; retrying with 4.",
                                 "Out of device memory in a test step with 4 images at once; retrying with 2."]


def test_run_chunks_final_error_is_one_line_and_not_retried_again():
    def step(a, b):
        raise RuntimeError("CUDA error: out of memory")  # the older message form

    with warnings.catch_warnings(record=True) as caught, pytest.raises(DeviceMemoryError) as err:
        warnings.simplefilter("always")
        run_chunks(step, 4, 4, what="the scan")
    assert len(_messages(caught)) == 2  # 4 -> 2 -> 1, then the error
    assert "\n" not in str(err.value) and "even with one image" in str(err.value)
    assert not is_oom(err.value)  # an outer retry does not start again


def test_recording_is_per_thread_and_nests():
    def step(a, b):
        if b - a > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return a

    seen = {}

    def session(name, n):
        with warnings.catch_warnings(), recording() as outer:
            warnings.simplefilter("ignore")
            with recording() as inner:
                run_chunks(step, n, n, what=name)
            seen[name] = (list(outer), list(inner))

    threads = [threading.Thread(target=session, args=(f"session {i}", 2 + 2 * i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, (outer, inner) in seen.items():
        assert outer == inner and outer and all(name in m for m in outer)


def test_cli_prints_a_retry_warning_as_one_line(capsys):
    from sdsgsm.cli import _one_line_warning

    _one_line_warning(MemoryRetryWarning("Out of device memory in x with 4 images at once; retrying with 2."),
                      MemoryRetryWarning, "/some/file.py", 1)
    assert capsys.readouterr().err == "warning: Out of device memory in x with 4 images at once; retrying with 2.\n"


def test_run_chunks_passes_other_errors_through():
    def step(a, b):
        raise ValueError("patch larger than the image")

    with pytest.raises(ValueError, match="patch larger"):
        run_chunks(step, 4, 4, what="x")
    assert not is_oom(RuntimeError("shape mismatch"))


# ----------------------------------------------------------------------------- the zero-out scan
def test_batched_scan_halves_its_chunk_and_keeps_the_scores(tiny_cnn, rand_images):
    cfg = ScanConfig(patch=8, chunk=64, engine="batched", precision="float32")
    ref = occlusion_scan(tiny_cnn, rand_images, ScanConfig(patch=8, chunk=4, engine="batched", precision="float32"))
    faulty = OOMAbove(tiny_cnn, limit=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = occlusion_scan(faulty, rand_images, cfg)
    assert _messages(caught) == [
        f"Out of device memory in the zero-out scan (batched engine) with {n} windows at once; retrying with {n // 2}."
        for n in (64, 32, 16, 8)]
    assert max(s for s in faulty.seen[-10:]) <= 4
    torch.testing.assert_close(got.grid, ref.grid, rtol=1e-5, atol=1e-5)
    assert got.cfg.chunk == 64  # the result reports the configuration asked for


def test_incremental_scan_halves_its_chunk_on_lite0(lite0, imagenet_batch, monkeypatch):
    x = imagenet_batch[0][:1]
    cfg = ScanConfig(chunk=64, engine="incremental", precision="float32")
    ref = occlusion_scan(lite0, x, cfg)
    real = incremental._chunk_diffs
    sizes = []

    def faulty(net, maps, regs, x1):  # inject the OOM inside the engine's crop batch
        sizes.append(len(regs[0].top))
        if len(regs[0].top) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return real(net, maps, regs, x1)

    monkeypatch.setattr(incremental, "_chunk_diffs", faulty)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = occlusion_scan(lite0, x, cfg)
    msgs = _messages(caught)
    assert msgs and all("zero-out scan (incremental engine)" in m for m in msgs)
    assert max(sizes[-5:]) <= 8
    torch.testing.assert_close(got.grid, ref.grid, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- the attack wrapper
@pytest.mark.parametrize("method", ["fgsm", "ifgsm", "sd-sgsm"])
def test_attack_splits_the_batch_and_matches(tiny_cnn, rand_images, method):
    cfg = AttackConfig(steps=3, scan=ScanConfig(patch=8, engine="batched", precision="float32"))
    ref = run_attack(tiny_cnn, rand_images, None, cfg, method)
    faulty = OOMAbove(tiny_cnn, limit=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run_attack(faulty, rand_images, None, cfg, method)
    msgs = _messages(caught)
    assert f"Out of device memory in the {method} attack with 4 images at once; retrying with 2." in msgs
    assert got.x_adv.shape == rand_images.shape and got.adv_logits.shape == (4, 10)
    torch.testing.assert_close(got.x_adv, ref.x_adv, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.adv_logits, ref.adv_logits, rtol=1e-5, atol=1e-5)
    if ref.saliency is not None:
        torch.testing.assert_close(got.saliency, ref.saliency, rtol=1e-5, atol=1e-5)
        assert torch.equal(got.region, ref.region)


@pytest.mark.slow
def test_attack_on_lite0_with_injected_oom(lite0, imagenet_batch):
    x, y, _ = imagenet_batch
    x, y = x[:4], y[:4]
    cfg = AttackConfig()
    ref = run_attack(lite0, x, y, cfg, "fgsm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run_attack(OOMAbove(lite0, limit=1), x, y, cfg, "fgsm")
    assert _messages(caught) == ["Out of device memory in the fgsm attack with 4 images at once; retrying with 2.",
                                 "Out of device memory in the fgsm attack with 2 images at once; retrying with 1."]
    # batches of 1 round differently from one batch of 4: a sign may flip where ∂L/∂x ≈ 0
    assert int((got.x_adv - ref.x_adv).abs().gt(1e-6).sum()) <= 10
    assert torch.equal(got.adv_pred, ref.adv_pred)


def test_attack_gives_one_clear_line_when_one_image_does_not_fit(tiny_cnn, rand_images):
    with warnings.catch_warnings(record=True), pytest.raises(DeviceMemoryError) as err:
        warnings.simplefilter("always")
        run_attack(OOMAbove(tiny_cnn, limit=0), rand_images, None, AttackConfig(), "fgsm")
    msg = str(err.value)
    assert msg.startswith("Out of device memory in the fgsm attack even with one image") and "\n" not in msg


# ----------------------------------------------------------------------------- the benchmark batch
def test_benchmark_batch_halves_and_gives_the_same_rows(tiny_cnn, rand_images):
    cfg = AttackConfig(steps=2, scan=ScanConfig(patch=8, engine="batched", precision="float32"))
    kw = dict(methods=["fgsm", "sd-fgsm"], cfgs=cfg, batch_size=4, criterion="all")
    ref = run_benchmark(tiny_cnn, rand_images, None, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run_benchmark(OOMAbove(tiny_cnn, limit=2), rand_images, None, **kw)
    msgs = _messages(caught)
    assert got.config["memory_retries"] == msgs and "memory_retries" not in ref.config  # config.json says so
    assert "Out of device memory in the clean pass with 4 images at once; retrying with 2." in msgs
    assert any(m.startswith("Out of device memory in the sd-fgsm attack") for m in msgs)
    a, b = ref.per_sample.drop(columns=TIME_COLUMNS), got.per_sample.drop(columns=TIME_COLUMNS)
    assert list(a.columns) == list(b.columns) and list(a["batch"]) == list(b["batch"])
    for col in a.columns:
        if a[col].dtype.kind == "f":  # blank cells (e.g. a white-box method's queries) must be blank in both
            assert (a[col].isna() == b[col].isna()).all(), col
            assert not ((a[col] - b[col]).abs() >= 1e-5).any(), col
        else:
            assert a[col].tolist() == b[col].tolist(), col
