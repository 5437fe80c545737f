"""Fast zero-out scan engines: incremental (Krypton) and batched against the naive scan."""

import pytest
import torch
import torch.nn.functional as F

from sdsgsm import incremental
from sdsgsm.models import Classifier, supports_incremental
from sdsgsm.occlusion import EngineOptions, ScanConfig, occlusion_scan, resolve, window_boxes

FP32 = "float32"


def rel_err(grid: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest |Δ − Δ_ref| divided by the image's largest |Δ_ref|."""
    g, r = grid.flatten(1), ref.flatten(1)
    return float(((g - r).abs().max(1).values / r.abs().max(1).values).max())


@pytest.fixture(scope="module")
def photo(imagenet_batch):
    return imagenet_batch[0][:1]  # (1, 3, 224, 224)


def resized(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("h, w, patch, stride, score, norm", [
    (224, 224, 56, None, "logit_l2", False),          # stride = m at the model's own size
    (128, 128, 32, 20, "confidence_drop", False),     # stride < m: overlapping windows, clamped border
    (100, 100, 16, None, "logit_l2", False),          # clamped last window (100 = 6·16 + 4)
    (67, 93, 20, 9, "confidence_drop", True),         # odd, non-square: asymmetric pads at each stride 2
])
def test_incremental_matches_naive_on_lite0(lite0, photo, h, w, patch, stride, score, norm):
    model = lite0
    if norm:  # another mean/std around the same net: a zeroed window is (0 − mean)/std inside
        model = Classifier(lite0.net, "lite0-imagenet-norm", lite0.labels, 96,
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x = photo if (h, w) == (224, 224) else resized(photo, h, w)
    cfg = dict(patch=patch, stride=stride, score=score, precision=FP32)
    fast = occlusion_scan(model, x, ScanConfig(engine="incremental", **cfg))
    ref = occlusion_scan(model, x, ScanConfig(engine="naive", **cfg))
    assert fast.engine == "incremental/float32" and ref.engine == "naive/float32"
    err = rel_err(fast.grid, ref.grid)
    print(f"incremental fp32 vs naive, {h}x{w} m={patch} s={stride} {score}: max rel err {err:.2e}")
    assert err < 5e-5
    torch.testing.assert_close(fast.clean_logits, ref.clean_logits, rtol=1e-5, atol=1e-4)
    assert torch.equal(fast.boxes, ref.boxes)


@pytest.mark.slow
def test_incremental_logit_changes_are_exact(lite0, photo):
    """f(Z_Ω x) − f(x) itself, window by window, against full forward passes."""
    x = resized(photo, 64, 64)
    boxes = window_boxes(64, 64, ScanConfig(patch=16, stride=12))
    net = incremental.compile_lite(lite0.net, lite0.mean, lite0.std, torch.float32)
    with torch.inference_mode():
        parts = list(incremental.incremental_diffs(net, x, boxes, chunk=len(boxes)))
        win, diffs = torch.cat([p[1] for p in parts]), torch.cat([p[3] for p in parts])
        clean = parts[0][2]
        occ = x.repeat(len(boxes), 1, 1, 1)
        for b, (t, left, ph, pw) in enumerate(boxes.tolist()):
            occ[b, :, t:t + ph, left:left + pw] = 0
        want = lite0(occ) - lite0(x)
    assert torch.equal(win, torch.arange(len(boxes)))
    torch.testing.assert_close(clean, lite0(x)[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(diffs, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.slow
def test_any_chunk_size_gives_the_same_grid(lite0, photo):
    """Also guards the clean maps: a chunk must never write into them."""
    x = resized(photo, 48, 48)
    grids = [occlusion_scan(lite0, x, ScanConfig(patch=16, chunk=c, precision=FP32)).grid for c in (1, 4, 1000)]
    for g in grids[1:]:
        assert rel_err(g, grids[2]) < 1e-6


@pytest.mark.slow
def test_workers_and_inline_agree(lite0, photo):
    """Chunks on the single-threaded worker pool (CPU default) or inline, same numbers."""
    x = resized(photo, 64, 64)
    cfg = ScanConfig(patch=16, stride=12, chunk=8, precision=FP32)
    pooled = occlusion_scan(lite0, x, cfg).grid
    inline = occlusion_scan(lite0, x, ScanConfig(patch=16, stride=12, chunk=8, precision=FP32,
                                                 engine_options=EngineOptions(workers=1))).grid
    assert rel_err(pooled, inline) < 1e-6
    assert torch.get_num_threads() >= 1 and incremental._pool(1) is None


@pytest.mark.slow
@pytest.mark.parametrize("options", [EngineOptions(fuse=False), EngineOptions(full_fraction=0.5)])
def test_engine_options_keep_the_scores(lite0, photo, options):
    """No oneDNN fusion, or whole maps for crops of half a map and more: the same scores up to rounding."""
    x = resized(photo, 64, 64)
    cfg = ScanConfig(patch=16, stride=12, chunk=8, precision=FP32)
    ref = occlusion_scan(lite0, x, cfg).grid
    assert rel_err(occlusion_scan(lite0, x, ScanConfig(patch=16, stride=12, chunk=8, precision=FP32,
                                                       engine_options=options)).grid, ref) < 1e-5


@pytest.mark.slow
def test_bfloat16_keeps_the_argmax(lite0, imagenet_batch):
    x = imagenet_batch[0][:2]
    exact = occlusion_scan(lite0, x, ScanConfig(patch=32, precision=FP32)).grid.flatten(1)
    raw = occlusion_scan(lite0, x, ScanConfig(patch=32, precision="bfloat16", refine=0))
    refined = occlusion_scan(lite0, x, ScanConfig(patch=32, precision="bfloat16"))
    assert raw.engine == "incremental/bfloat16" and refined.engine == "incremental/bfloat16+refine12"
    err = rel_err(raw.grid, exact)
    print(f"incremental bf16 vs fp32, 2 images m=32: max rel err {err:.3g}")
    assert 0 < err < 0.1  # bfloat16 really ran, and stays close
    for grid in (raw.grid.flatten(1), refined.grid.flatten(1)):
        assert torch.equal(grid.argmax(1), exact.argmax(1))
    top = exact.topk(5, 1).indices  # within the 12 refined windows: float32 values
    torch.testing.assert_close(refined.grid.flatten(1).gather(1, top), exact.gather(1, top), rtol=1e-5, atol=1e-5)


def test_refine_rescores_the_top_windows_in_float32(tiny_cnn, rand_images):
    x = rand_images[:2]
    exact = occlusion_scan(tiny_cnn, x, ScanConfig(patch=8, precision=FP32)).grid
    raw = occlusion_scan(tiny_cnn, x, ScanConfig(patch=8, precision="bfloat16", refine=0)).grid
    full = occlusion_scan(tiny_cnn, x, ScanConfig(patch=8, precision="bfloat16", refine=16)).grid
    some = occlusion_scan(tiny_cnn, x, ScanConfig(patch=8, precision="bfloat16", refine=3)).grid
    assert not torch.equal(raw, exact)  # the reduced precision did run
    torch.testing.assert_close(full, exact, rtol=1e-6, atol=1e-6)  # 16 = every window, in float32
    top = some.flatten(1).topk(3, 1).indices
    torch.testing.assert_close(some.flatten(1).gather(1, top), exact.flatten(1).gather(1, top), rtol=1e-6, atol=1e-6)
    assert not torch.equal(some, exact)  # … and only those


def test_batched_and_naive_engines_agree(tiny_cnn, rand_images):
    x = rand_images[:2]
    for score in ("logit_l2", "confidence_drop"):
        ref = occlusion_scan(tiny_cnn, x, ScanConfig(patch=8, stride=6, score=score, engine="naive", precision=FP32))
        for c in (1, 7, 100):
            g = occlusion_scan(tiny_cnn, x, ScanConfig(patch=8, stride=6, score=score, engine="batched", chunk=c,
                                                       precision=FP32))
            assert g.engine == "batched/float32"
            torch.testing.assert_close(g.grid, ref.grid, rtol=1e-5, atol=1e-6)


def test_engine_resolution_and_fallback(lite0, tiny_cnn, rand_images):
    assert resolve(tiny_cnn, rand_images, ScanConfig()) == ("batched", FP32)
    assert resolve(tiny_cnn, rand_images, ScanConfig(engine="naive", precision="bfloat16")) == ("naive", "bfloat16")
    res = occlusion_scan(tiny_cnn, rand_images[:1], ScanConfig(patch=16))
    assert res.engine == "batched/float32"
    engine, precision = resolve(lite0, rand_images, ScanConfig())
    assert engine == "incremental" and precision in ("bfloat16", FP32)
    assert resolve(lite0, rand_images, ScanConfig(precision=FP32)) == ("incremental", FP32)
    with pytest.raises(ValueError, match="EfficientNet-Lite"):
        occlusion_scan(tiny_cnn, rand_images[:1], ScanConfig(patch=16, engine="incremental"))


def test_supports_only_lite_networks(lite0, tiny_cnn):
    from efficientnet_lite_pytorch import EfficientNet

    assert supports_incremental(lite0) and incremental.supports(lite0.net, lite0.mean)
    assert not supports_incremental(tiny_cnn) and not incremental.supports(tiny_cnn.net, tiny_cnn.mean)
    assert not supports_incremental(lite0.net)  # the bare net has no [0, 1] wrapper
    assert not incremental.supports(lite0.net, torch.zeros(1, 1, 1, 1))  # normalisation of another shape
    b0 = Classifier(EfficientNet.from_name("efficientnet-b0"), "b0", ["a"] * 1000, 224)  # swish + SE
    assert not supports_incremental(b0) and not incremental.supports(b0.net, b0.mean)

    class Sub(Classifier):  # a subclass may compute something else around the network
        pass

    assert not supports_incremental(Sub(lite0.net, "sub", lite0.labels, 224))
    training = Classifier(EfficientNet.from_name("efficientnet-lite0"), "train", ["a"] * 1000, 224)
    training.net.train()
    assert not supports_incremental(training) and not incremental.supports(training.net, training.mean)


def test_scan_config_fields_are_validated_and_hashable():
    cfg = ScanConfig()
    assert (cfg.engine, cfg.precision, cfg.refine, cfg.chunk) == ("auto", "auto", 12, 64)
    assert hash(cfg) == hash(ScanConfig()) and cfg != ScanConfig(precision=FP32)
    with pytest.raises(AttributeError):
        cfg.engine = "naive"
    for bad in ({"engine": "fast"}, {"engine": None}, {"precision": "fp8"}, {"precision": "bf16"},
                {"refine": -1}, {"refine": 1.5}, {"chunk": 0}, {"chunk": 2.0}, {"engine_options": None},
                {"engine_options": {"workers": 0}}):
        with pytest.raises(ValueError):
            ScanConfig(**bad)


def test_engine_options_are_frozen_validated_and_part_of_the_key():
    opts = EngineOptions()
    assert (opts.fuse, opts.full_fraction, opts.workers, opts.cpu_batch_pixels) == (True, 1.0, None, 8 * 224 * 224)
    assert ScanConfig().engine_options == opts
    assert hash(ScanConfig(engine_options=EngineOptions())) == hash(ScanConfig())
    assert ScanConfig(engine_options=EngineOptions(workers=1)) != ScanConfig()
    assert ScanConfig(patch=None, engine_options=EngineOptions(workers=1)).for_size(224).engine_options.workers == 1
    with pytest.raises(AttributeError):
        opts.workers = 1
    for bad in ({"fuse": 1}, {"full_fraction": 0}, {"full_fraction": 1.5}, {"full_fraction": True},
                {"workers": 0}, {"workers": 1.0}, {"cpu_batch_pixels": 0}, {"cpu_batch_pixels": None}):
        with pytest.raises(ValueError):
            EngineOptions(**bad)
    # a saved result holds the options as a dict (dataclasses.asdict); unknown keys are ignored
    cfg = ScanConfig(engine_options={"workers": 2, "fuse": False, "later": 1})
    assert cfg.engine_options == EngineOptions(fuse=False, workers=2)


def test_saved_parameters_keep_the_engine_options():
    """result.json holds dataclasses.asdict of the AttackConfig (engine options as a nested dict);
    loading it gives the same config back, and a file from before the options existed still loads."""
    import json
    from dataclasses import asdict

    from sdsgsm.attacks import AttackConfig
    from sdsgsm.share import load_result

    cfg = AttackConfig(scan=ScanConfig(patch=32, engine_options=EngineOptions(fuse=False, workers=1)))
    saved = {"method": "sd-sgsm", "image": "imagenet/x.jpg", "parameters": asdict(cfg)}
    assert json.loads(json.dumps(saved))["parameters"]["scan"]["engine_options"]["workers"] == 1
    assert load_result(json.dumps(saved).encode()).cfg == cfg
    del saved["parameters"]["scan"]["engine_options"]  # written before the options existed
    assert load_result(json.dumps(saved).encode()).cfg == AttackConfig(scan=ScanConfig(patch=32))
