"""Pure figure builders: the compact heat maps are exact and small."""

import numpy as np
import pytest
import torch

from sdsgsm.occlusion import ScanConfig, upsample_grid, window_boxes
from sdsgsm.render import viz


@pytest.mark.parametrize("cfg", [ScanConfig(patch=16), ScanConfig(patch=32, stride=24), ScanConfig(patch=56)])
def test_cells_compress_window_maps_exactly(cfg):
    boxes = window_boxes(224, 224, cfg)
    side = int(round(len(boxes) ** 0.5))
    sal = upsample_grid(torch.rand(1, side, side, generator=torch.Generator().manual_seed(0)), boxes, 224, 224)[0]
    sal = sal.numpy()
    z, x, y = viz.cells(sal)
    cols = np.searchsorted(x, np.arange(224), side="right") - 1
    rows = np.searchsorted(y, np.arange(224), side="right") - 1
    assert np.array_equal(z[np.ix_(rows, cols)], sal)  # every pixel is its cell's value
    assert z.size <= (2 * side) ** 2 < sal.size
    assert len(viz.saliency_figure(sal, boxes[:1].numpy()).to_json()) < 30_000


def test_cells_keep_a_per_pixel_map_whole():
    noise = np.random.default_rng(0).random((8, 8))
    z, x, y = viz.cells(noise)
    assert np.array_equal(z, noise) and len(x) == len(y) == 9
