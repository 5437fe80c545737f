"""CPU against CUDA: the scan engines (the incremental engine's unfused
F.conv2d route on CUDA), bf16 + float32 refine, every FGSM-family method, a benchmark and the
Explorer page give the same numbers on both devices within float tolerance.

Skipped, with the reason, where no CUDA device is visible (CI's CPU machines); run on a GPU
machine with ``python -m pytest -q tests/test_cuda.py`` (bench/RESULTS.md records when it did).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import page_path

from sdsgsm.attacks import FAMILY_SPECS, METHODS, AttackConfig, run_attack
from sdsgsm.metrics import metric_list
from sdsgsm.occlusion import ScanConfig, occlusion_scan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device visible: the CPU-vs-CUDA comparisons need a GPU")
ROOT = Path(__file__).resolve().parent.parent
# every FGSM-family method once: an alias (bim shares ifgsm's spec) is left out
FAMILY = [m for m, spec in FAMILY_SPECS.items() if next(n for n, s in FAMILY_SPECS.items() if s is spec) == m]


@pytest.fixture(scope="module")
def models(lite0):
    from sdsgsm.models import load_model

    return lite0, load_model("efficientnet_lite0", device="cuda")


@pytest.fixture(scope="module")
def batch(imagenet_batch):
    x, y, _ = imagenet_batch
    return x[:4], y[:4]


@pytest.mark.parametrize("engine", ["incremental", "batched"])
def test_scan_engines_agree_float32(models, batch, engine):
    cpu, gpu = models
    x, _ = batch
    cfg = ScanConfig(engine=engine, precision="float32")
    a, b = occlusion_scan(cpu, x, cfg), occlusion_scan(gpu, x.cuda(), cfg)
    assert b.engine == f"{engine}/float32"
    torch.testing.assert_close(b.grid.cpu(), a.grid, rtol=2e-3, atol=2e-3)
    assert torch.equal(b.grid.flatten(1).argmax(1).cpu(), a.grid.flatten(1).argmax(1))


def test_bf16_scan_with_refine_picks_the_float32_windows(models, batch):
    cpu, gpu = models
    x, _ = batch
    exact = occlusion_scan(cpu, x, ScanConfig(precision="float32"))
    fast = occlusion_scan(gpu, x.cuda(), ScanConfig(precision="bfloat16", refine=12))
    assert fast.engine.endswith("bfloat16+refine12")
    top = exact.grid.flatten(1).argmax(1)
    assert torch.equal(fast.grid.flatten(1).argmax(1).cpu(), top)
    torch.testing.assert_close(fast.grid.flatten(1).cpu().gather(1, top[:, None]),
                               exact.grid.flatten(1).gather(1, top[:, None]), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("method", FAMILY)
def test_family_methods_agree(models, batch, method):
    cpu, gpu = models
    x, y = batch
    cfg = AttackConfig(steps=3)
    a, b = run_attack(cpu, x, y, cfg, method), run_attack(gpu, x.cuda(), y.cuda(), cfg, method)
    delta = (b.x_adv - x.cuda()).abs()
    assert bool((delta <= b.budget + 1e-6).all()) and 0 <= float(b.x_adv.min()) and float(b.x_adv.max()) <= 1
    assert torch.equal(b.clean_pred.cpu(), a.clean_pred)
    if METHODS[method].deterministic:  # same steps up to rounding: a sign may flip where ∂L/∂x ≈ 0
        assert float((b.x_adv.cpu() - a.x_adv).abs().gt(1e-5).float().mean()) < 1e-3
        l2 = lambda r, x0: (r.x_adv.cpu() - x0).flatten(1).norm(dim=1)  # noqa: E731
        torch.testing.assert_close(l2(b, x), l2(a, x), rtol=1e-2, atol=1e-3)
    else:  # CUDA and CPU generators draw different streams: only the same budget use
        torch.testing.assert_close(b.budget.cpu(), a.budget)


def test_benchmark_agrees(models, batch):
    from sdsgsm.experiments.benchmark import run_benchmark

    cpu, gpu = models
    x, y = batch
    kw = dict(methods=["fgsm", "sd-fgsm", "ifgsm"], cfgs=AttackConfig(steps=3), batch_size=4)
    a, b = run_benchmark(cpu, x, y, **kw), run_benchmark(gpu, x, y, **kw)
    assert b.config["device"].startswith("cuda") and a.config["device"] == "cpu"
    assert b.summary["n"].tolist() == a.summary["n"].tolist()
    for col in (m.mean_key for m in metric_list("radar") if m.unit != "s"):  # the headline metrics, not time
        torch.testing.assert_close(torch.tensor(b.summary[col].to_numpy()), torch.tensor(a.summary[col].to_numpy()),
                                   rtol=2e-2, atol=1e-3)


def test_explorer_runs_on_cuda_with_the_cpu_numbers(lite0):
    """The Explorer page attacks on CUDA (the device is shown) and shows the CPU's numbers."""
    from streamlit.testing.v1 import AppTest

    from sdsgsm.attacks import build_config
    from sdsgsm.experiments.report import attack_image
    from sdsgsm.params import PARAMS

    at = AppTest.from_file(str(ROOT / page_path("Explorer")), default_timeout=600)
    at.query_params["patch"], at.query_params["steps"] = "56", "2"
    at.run()
    assert not at.exception
    assert any("CUDA:" in c.value for c in at.caption)  # the device is shown
    shown = {m.label: m.value for m in at.metric}
    values = {name: p.native(at.session_state[f"ex_{name}"]) for name, p in PARAMS.items()}
    image = at.session_state["ex_image"]
    rep = attack_image(lite0, image, build_config(values), at.session_state["ex_method"])  # on the CPU
    m = rep.summary["metrics"]
    assert shown["Attack success"] == ("yes" if m["success"] else "no")
    assert abs(float(shown["L2"]) - m["l2"]) <= 2e-2 * m["l2"] + 1e-3
    assert abs(float(shown["SSIM"]) - m["ssim"]) < 5e-3
