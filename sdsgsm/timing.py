"""Synchronised wall-clock timing (time per sample with device synchronisation, paper §4.2).

One place for the clock that the zero-out scan (``ScanResult.seconds``) and the attack
wrapper (``AttackResult.attack_time_s``) both read, so their times add up honestly.
"""

from __future__ import annotations

import time

import torch


def sync(device: torch.device) -> None:
    """Wait for queued device work (CUDA) so wall-clock timings are honest; no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work has finished, in seconds."""
    sync(device)
    return time.perf_counter()


class Timer:
    """Context manager measuring synchronised wall time in seconds (``.s``)."""

    def __init__(self, device: torch.device):
        self.device, self.s = device, 0.0

    def __enter__(self):
        self.t0 = clock(self.device)
        return self

    def __exit__(self, *exc):
        self.s = clock(self.device) - self.t0
