"""The CPU fast paths rest on private torch APIs, each with a silent fallback: oneDNN's fused
convolutions (torch.ops.mkldnn._convolution_pointwise), OpenMP's omp_set_num_threads found
through ctypes, Tensor._version for the prepared-network caches and
torch.ops.mkldnn._is_mkldnn_bf16_supported. A fallback keeps the numbers but loses the speed,
so on the torch range pinned in requirements.txt (x86_64 Linux) these tests fail loudly when
an API is gone or changed; elsewhere they are skipped with the reason."""

from __future__ import annotations

import copy
import platform
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version
from torch.profiler import ProfilerActivity, profile

from sdsgsm import incremental

ROOT = Path(__file__).resolve().parent.parent


def _torch_pin():
    """The torch specifier of requirements.txt."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text and Requirement(text).name == "torch":
            return Requirement(text).specifier
    raise AssertionError("requirements.txt names no torch requirement")


PIN = _torch_pin()
TORCH = Version(Version(torch.__version__).base_version)  # 2.14.1+cu130 -> 2.14.1
X86_LINUX = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")

pytestmark = [
    pytest.mark.skipif(TORCH not in PIN, reason=f"torch {torch.__version__} is outside the range the private "
                                                f"APIs were verified on (requirements.txt: torch{PIN})"),
    pytest.mark.skipif(not X86_LINUX, reason=f"the fast paths are verified on x86_64 Linux only "
                                             f"(this is {platform.machine()} {sys.platform})"),
]


def test_torch_pin_has_an_upper_bound():
    assert any(s.operator == "<" for s in PIN), f"requirements.txt: torch{PIN} should stop below the next minor"


def _op_names(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


def _op(fuse: bool, act: bool = True):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 4, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
    return incremental._Op(w, torch.randn(8, generator=g), (3, 3), (1, 1), (1, 1, 1, 1), 1, act, fuse)


def test_onednn_fused_convolutions_run():
    """The one-time check passes, and a folded convolution really runs as one oneDNN call
    (conv + ReLU6, and conv + residual), unless the network was compiled with fuse=False."""
    assert torch.backends.mkldnn.is_available()
    assert incremental._fused_ok(), "torch.ops.mkldnn._convolution_pointwise is missing or disagrees with F.conv2d"
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    res = torch.randn(2, 8, 8, 8)
    fused, plain = _op(True), _op(False)
    names = _op_names(lambda: fused(x, padding=(1, 1)))
    assert "mkldnn::_convolution_pointwise" in names and "aten::conv2d" not in names
    linear = _op(True, act=False)
    assert "mkldnn::_convolution_pointwise" in _op_names(lambda: linear(x, padding=(1, 1), add=res))
    names = _op_names(lambda: plain(x, padding=(1, 1)))
    assert "aten::conv2d" in names and "mkldnn::_convolution_pointwise" not in names
    torch.testing.assert_close(fused(x, padding=(1, 1)), plain(x, padding=(1, 1)), rtol=1e-5, atol=1e-5)


def test_scan_workers_are_single_threaded():
    """omp_set_num_threads of torch's OpenMP runtime is found, and the scan's worker threads run
    their ops on one thread each while the caller keeps torch's thread count."""
    assert "backend: openmp" in torch.__config__.parallel_info().lower()
    assert incremental._omp_set_num_threads() is not None, "libgomp/libiomp's omp_set_num_threads not found"
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(max(2, before))
        with ThreadPoolExecutor(2) as plain:  # control: a plain thread follows torch's count
            assert list(plain.map(lambda _: torch.get_num_threads(), range(2))) == [max(2, before)] * 2
        pool = incremental._pool(2)
        assert pool is not None
        assert list(pool.map(lambda _: torch.get_num_threads(), range(4))) == [1] * 4
        assert torch.get_num_threads() == max(2, before)
    finally:
        torch.set_num_threads(before)


def test_prepared_networks_are_reused_until_a_tensor_changes_in_place(lite0):
    """Tensor._version is what tells an in-place change (same storage, same address) apart: the
    Classifier's prepared network and the scan's compiled one are reused, then rebuilt after it."""
    model = copy.deepcopy(lite0)
    x = torch.rand(1, 3, 64, 64)
    first = model._fast_net(x)
    args = (model.net, model.mean, model.std, torch.float32)
    compiled = incremental.compiled(*args)
    assert first is not None and model._fast_net(x) is first and incremental.compiled(*args) is compiled
    bias = model.net._bn1.bias  # the head's batch norm, folded into the head convolution's bias
    ptr, version = bias.data_ptr(), bias._version
    with torch.no_grad():
        bias.add_(1.0)
    assert bias.data_ptr() == ptr and bias._version > version
    again = model._fast_net(x)
    assert again is not None and again is not first
    torch.testing.assert_close(again.head.bias, first.head.bias + 1.0)
    assert incremental.compiled(*args) is not compiled


def test_bfloat16_support_query_exists():
    """``auto`` precision asks oneDNN whether this CPU has native bfloat16; the query must answer
    (True or False), not fall back to float32 for want of the op."""
    assert isinstance(torch.ops.mkldnn._is_mkldnn_bf16_supported(), bool)


def test_the_openmp_runtime_found_is_torchs_beside_another_one():
    """scikit-learn (imported with ART) loads a second libgomp; the per-thread setting must still reach the
    runtime torch uses, or the scan workers silently run multi-threaded."""
    import sklearn.utils  # noqa: F401  (loads scikit-learn's own libgomp)

    with open("/proc/self/maps") as f:
        runtimes = set(re.findall(r"/\S*libgomp[\w.-]*\.so[\w.]*", f.read()))
    if len(runtimes) < 2:
        pytest.skip("this scikit-learn build brings no OpenMP runtime of its own")
    incremental._omp_set_num_threads.cache_clear()
    set_threads = incremental._omp_set_num_threads()
    assert set_threads is not None

    def one_thread() -> int:
        torch.get_num_threads()
        set_threads(1)
        return torch.get_num_threads()

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(one_thread).result() == 1
    finally:
        torch.set_num_threads(before)
