"""Shared fixtures: tiny fixed-weight models with hand-checkable outputs, and the real model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sdsgsm.models import Classifier


class WeightedSum(nn.Module):
    """logit_0 = Σ W·x over all channels and pixels, logit_1 = 0.

    Zeroing window Ω changes the logits by exactly Σ_Ω W·x, so Δ_Ω (eq. 2) is hand-checkable.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)  # (3, H, W)

    def forward(self, x):
        s = (x * self.weight).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


def blob_weight(size: int = 32, top: int = 8, left: int = 16, patch: int = 8) -> torch.Tensor:
    """Integer weights (exact in float32): 1 everywhere, 8 inside one patch-aligned window."""
    w = torch.ones(3, size, size)
    w[:, top:top + patch, left:left + patch] = 8.0
    return w


@pytest.fixture
def weighted_sum_model():
    return Classifier(WeightedSum(blob_weight()), "weighted_sum", ["a", "b"], 32)


class TinyCNN(nn.Module):
    """A small fixed-seed CNN with non-trivial gradients (10 classes, any input size)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 10)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.5

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        return self.fc(h.mean((2, 3)))


@pytest.fixture
def tiny_cnn():
    return Classifier(TinyCNN(), "tiny_cnn", [f"c{i}" for i in range(10)], 32)


@pytest.fixture
def rand_images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 32, 32, generator=g)


@pytest.fixture(scope="session")
def lite0():
    from sdsgsm.models import load_model

    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def imagenet_batch():
    from sdsgsm.data import load_gallery

    x, y, keys = load_gallery("imagenet", 224)
    return x, y, keys
