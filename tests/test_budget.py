"""Region R and budget map E (paper eq. 5/11)."""

import math

import pytest
import torch

from sdsgsm.budget import BudgetConfig, budget_map, region_mask
from sdsgsm.occlusion import ScanConfig, occlusion_scan, window_boxes

S, W = 4 / 255, 1 / 255


def test_argmax_window_gets_eps_strong_and_nothing_else(weighted_sum_model):
    x = torch.full((1, 3, 32, 32), 0.5)
    scan = occlusion_scan(weighted_sum_model, x, ScanConfig(patch=8))
    E, R = budget_map(scan.grid, scan.boxes, 32, 32, BudgetConfig(eps_strong=S, eps_weak=W))
    assert E.shape == (1, 1, 32, 32)
    assert R.sum() == 1 and R[0, 1, 2]
    strong = E[0, 0] == S
    assert strong.sum() == 64 and strong[8:16, 16:24].all()  # exactly the blob window
    assert (E[0, 0][~strong] == W).all()


def grid_example():
    # 3x3 windows of 2 px on a 6x6 image
    return torch.tensor([[[0.1, 0.9, 0.2], [0.5, 1.0, 0.05], [0.3, 0.6, 0.0]]])


def test_topk_threshold_neighbours_regions():
    g = grid_example()
    topk = region_mask(g, BudgetConfig(region="topk", topk=3))
    assert topk[0].nonzero().tolist() == [[0, 1], [1, 1], [2, 1]]
    thr = region_mask(g, BudgetConfig(region="threshold", tau=0.45))
    assert thr[0].nonzero().tolist() == [[0, 1], [1, 0], [1, 1], [2, 1]]
    nb = region_mask(g, BudgetConfig(region="neighbours", rho=0.55))
    assert nb[0].nonzero().tolist() == [[0, 1], [1, 1], [2, 1]]  # 0.5 < 0.55·1.0 is left out
    nb_all = region_mask(g, BudgetConfig(region="neighbours", rho=0.0))
    assert nb_all.all()


def test_neighbours_only_touch_the_argmax_window():
    g = torch.zeros(1, 4, 4)
    g[0, 0, 0], g[0, 3, 3] = 1.0, 0.99  # far away high-response window is NOT a neighbour
    nb = region_mask(g, BudgetConfig(region="neighbours", rho=0.5))
    assert nb[0].nonzero().tolist() == [[0, 0]]


def test_soft_budget_spans_weak_to_strong():
    g = grid_example()
    boxes = window_boxes(6, 6, ScanConfig(patch=2))
    E, R = budget_map(g, boxes, 6, 6, BudgetConfig(eps_strong=S, eps_weak=W, region="soft"))
    assert not R.any()
    assert math.isclose(E.max().item(), S, rel_tol=1e-6) and math.isclose(E.min().item(), W, rel_tol=1e-6)
    assert math.isclose(E[0, 0, 2, 2].item(), S, rel_tol=1e-6)  # argmax window (1, 1)
    assert math.isclose(E[0, 0, 0, 2].item(), W + (S - W) * 0.9, rel_tol=1e-5)


def test_batch_rows_are_independent():
    g = torch.cat([grid_example(), grid_example().flip(2)])
    boxes = window_boxes(6, 6, ScanConfig(patch=2))
    E, _ = budget_map(g, boxes, 6, 6, BudgetConfig(eps_strong=S, eps_weak=W))
    assert torch.equal(E[0], E[1].flip(2))


@pytest.mark.parametrize("kwargs, match", [
    ({"eps_weak": 5 / 255, "eps_strong": 4 / 255}, "ε_weak ≤ ε_strong"),
    ({"eps_strong": 9 / 255}, "exceeds ε_max"),
    ({"eps_weak": -1 / 255}, "ε_weak"),
    ({"eps_strong": float("nan")}, "finite"),
    ({"eps_max": float("inf")}, "finite"),
    ({"region": "blob"}, "Unknown region"),
    ({"topk": 0}, "outside 1 … 1000"),
    ({"eps_max": 33 / 255}, "outside 0 … 32/255"),
    ({"rho": 2.0}, "ρ"),
])
def test_budget_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BudgetConfig(**kwargs)


def test_raised_cap_allows_larger_strong_budget():
    assert BudgetConfig(eps_strong=16 / 255, eps_max=16 / 255).eps_strong == 16 / 255
