"""Zero-out scan (paper eq. 1–2) against a naive one-window-at-a-time loop."""

import pytest
import torch

from sdsgsm.occlusion import ScanConfig, grid_shape, occlusion_scan, upsample_grid, window_boxes, window_starts


def naive_scan(model, x, patch, stride, score="logit_l2"):
    """Reference: occlude one window at a time, one image at a time."""
    starts_h = window_starts(x.shape[2], patch, stride)
    starts_w = window_starts(x.shape[3], patch, stride)
    out = torch.zeros(len(x), len(starts_h), len(starts_w))
    with torch.no_grad():
        for n in range(len(x)):
            clean = model(x[n:n + 1])
            y = clean.argmax(1)
            for i, r in enumerate(starts_h):
                for j, c in enumerate(starts_w):
                    occ = x[n:n + 1].clone()
                    occ[:, :, r:r + patch, c:c + patch] = 0
                    o = model(occ)
                    if score == "logit_l2":
                        out[n, i, j] = (clean - o).norm()
                    else:
                        out[n, i, j] = clean.softmax(1)[0, y] - o.softmax(1)[0, y]
    return out


def test_window_starts_cover_border_with_clamped_last_window():
    assert window_starts(224, 16, 16) == list(range(0, 224, 16))
    assert window_starts(30, 8, 8) == [0, 8, 16, 22]
    assert window_starts(8, 8, 8) == [0]
    assert window_starts(10, 4, 3) == [0, 3, 6]
    with pytest.raises(ValueError, match="larger than the image"):
        window_starts(8, 9, 9)


def test_boxes_and_grid_shape():
    cfg = ScanConfig(patch=8, stride=8)
    boxes = window_boxes(30, 20, cfg)
    assert grid_shape(30, 20, cfg) == (4, 3)
    assert boxes.shape == (12, 4)
    assert boxes[-1].tolist() == [22, 12, 8, 8]


def test_scan_scores_are_hand_checkable(weighted_sum_model):
    x = torch.full((1, 3, 32, 32), 0.5)
    res = occlusion_scan(weighted_sum_model, x, ScanConfig(patch=8))
    # Δ_Ω = |Σ_Ω W·x| = 3·64·0.5·w: w = 8 inside the blob window (row 1, col 2), 1 elsewhere
    expected = torch.full((1, 4, 4), 96.0)
    expected[0, 1, 2] = 768.0
    assert torch.equal(res.grid, expected)
    assert res.grid.flatten(1).argmax(1).item() == 1 * 4 + 2


@pytest.mark.parametrize("score", ["logit_l2", "confidence_drop"])
def test_scan_matches_naive_loop_for_every_chunk_size(tiny_cnn, rand_images, score):
    x = rand_images[:2]
    ref = naive_scan(tiny_cnn, x, 8, 6, score)
    nwin = ref.shape[1] * ref.shape[2]
    grids = [occlusion_scan(tiny_cnn, x, ScanConfig(patch=8, stride=6, score=score, chunk=c)).grid
             for c in (1, 3, 2 * nwin)]
    for g in grids:
        torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-6)


def test_scan_exact_for_exact_arithmetic(weighted_sum_model):
    """Integer weights, dyadic pixels: every chunk size gives bit-identical grids."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 9, (3, 3, 32, 32), generator=g).float() / 8
    grids = [occlusion_scan(weighted_sum_model, x, ScanConfig(patch=8, stride=4, chunk=c)).grid for c in (1, 3, 500)]
    ref = naive_scan(weighted_sum_model, x, 8, 4)
    for grid in grids:
        assert torch.equal(grid, ref)


@pytest.mark.parametrize("engine", ["naive", "batched", "auto"])
def test_every_full_forward_engine_is_exact_for_exact_arithmetic(weighted_sum_model, engine):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 9, (2, 3, 32, 32), generator=g).float() / 8
    res = occlusion_scan(weighted_sum_model, x, ScanConfig(patch=8, stride=6, engine=engine, chunk=5))
    assert res.engine == ("naive" if engine == "naive" else "batched") + "/float32"
    assert torch.equal(res.grid, naive_scan(weighted_sum_model, x, 8, 6))


def test_upsample_grid_paints_windows_and_takes_max_on_overlap():
    cfg = ScanConfig(patch=4, stride=2)
    boxes = window_boxes(6, 6, cfg)  # starts 0, 2 per axis -> 2x2 windows
    grid = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    up = upsample_grid(grid, boxes, 6, 6)
    assert up.shape == (1, 6, 6)
    assert up[0, 0, 0] == 1 and up[0, 0, 5] == 2 and up[0, 5, 0] == 3 and up[0, 5, 5] == 4
    assert up[0, 2, 2] == 4  # covered by all four windows


def test_bad_scan_parameters():
    for kwargs in ({"patch": 0}, {"patch": -3}, {"stride": 0}, {"score": "nope"}):
        with pytest.raises(ValueError):
            ScanConfig(**kwargs)


def test_patch_larger_than_image_is_refused(tiny_cnn):
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion_scan(tiny_cnn, torch.rand(1, 3, 32, 32), ScanConfig(patch=64))
