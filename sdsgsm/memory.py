"""Device-memory safety: halve a chunk or batch on CUDA out-of-memory and retry.

One helper, :func:`run_chunks`, runs a step over ``[0, n)`` in chunks. When a chunk raises
``torch.cuda.OutOfMemoryError`` (or a RuntimeError whose message says "out of memory", as
older torch builds and other back ends raise it), the cached allocator is emptied, the chunk
size is halved and the failed chunk is run again; chunks that finished are kept. Every
retry is announced as a :class:`MemoryRetryWarning` (the CLI prints it as one line) and
added to the lists of the enclosing :func:`recording` blocks (the app shows them beside the
result; a benchmark writes them to config.json as ``memory_retries``). Only when a chunk of
one item still fails does :class:`DeviceMemoryError` end the call with a one-line message; it is not itself treated as
out-of-memory, so an outer caller does not retry a step that cannot get smaller.

Used by the zero-out scan (its window chunk, :func:`sdsgsm.occlusion.occlusion_scan`), the
attack wrapper (the images of one call, :func:`sdsgsm.attacks.base.run_method`) and the
benchmark's clean pass; a benchmark batch goes through the attack wrapper.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import torch

T = TypeVar("T")
__all__ = ["DeviceMemoryError", "MemoryRetryWarning", "halving", "is_oom", "recording", "run_chunks"]

# the message lists of the enclosing recording() blocks, per thread / task (never shared across sessions)
_SINKS: ContextVar[tuple[list[str], ...]] = ContextVar("sdsgsm_memory_retries", default=())


class MemoryRetryWarning(UserWarning):
    """A step ran out of device memory and is retried with half the chunk or batch."""


class DeviceMemoryError(RuntimeError):
    """Out of device memory even with a chunk of one item (a one-line message)."""


def is_oom(exc: BaseException) -> bool:
    """True for ``torch.cuda.OutOfMemoryError`` or a RuntimeError saying "out of memory"
    (never for :class:`DeviceMemoryError`, the final answer)."""
    if isinstance(exc, DeviceMemoryError):
        return False
    oom = getattr(torch.cuda, "OutOfMemoryError", None) or getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@contextmanager
def recording() -> Iterator[list[str]]:
    """Collect the retry messages announced inside the block (in this thread or task only, so
    two app sessions never see each other's); blocks nest, each gets every inner message."""
    sink: list[str] = []
    token = _SINKS.set((*_SINKS.get(), sink))
    try:
        yield sink
    finally:
        _SINKS.reset(token)


def _announce(message: str) -> None:
    for sink in _SINKS.get():
        sink.append(message)
    warnings.warn(message, MemoryRetryWarning, stacklevel=3)


def _release() -> None:
    """Give cached blocks back to the device before the retry (no-op without CUDA)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def run_chunks(step: Callable[[int, int], T], n: int, size: int, *, what: str, unit: str = "image") -> list[T]:
    """Run ``step(start, stop)`` over ``[0, n)`` in chunks of at most ``size`` items, in order.

    On out-of-memory (:func:`is_oom`) the chunk size is halved and the failed chunk retried,
    with a :class:`MemoryRetryWarning` such as "CUDA out of memory in the pgd attack with 64
    images at once; retrying with 32." — down to one item, then :class:`DeviceMemoryError`.
    Later chunks keep the reduced size. Args: what names the step in messages; unit the item.
    Returns the steps' results in order (one per chunk actually run).
    """
    if n < 1:
        return []
    out, start, size = [], 0, max(1, min(int(size), n))
    while start < n:
        stop = min(n, start + size)
        try:
            out.append(step(start, stop))
        except Exception as exc:
            if not is_oom(exc):
                raise
            _release()
            tried = stop - start
            if tried <= 1:
                raise DeviceMemoryError(
                    f"Out of device memory in {what} even with one {unit} at a time; free GPU memory, "
                    "use a smaller model or input, or run on the CPU (--device cpu).") from None
            size = tried // 2
            _announce(f"Out of device memory in {what} with {tried} {unit}s at once; retrying with {size}.")
            continue
        start = stop
    return out


def halving(step: Callable[[int], T], size: int, *, what: str, unit: str = "window") -> T:
    """Run ``step(size)`` once; on out-of-memory call it again with size // 2 (announced by a
    :class:`MemoryRetryWarning`), down to 1, then :class:`DeviceMemoryError`. For steps that
    chunk internally (the zero-out scan's window chunk) and restart from scratch."""
    size = max(1, int(size))
    while True:
        try:
            return step(size)
        except Exception as exc:
            if not is_oom(exc):
                raise
            _release()
            if size <= 1:
                raise DeviceMemoryError(
                    f"Out of device memory in {what} even with one {unit} at a time; free GPU memory, "
                    "use a smaller model or input, or run on the CPU (--device cpu).") from None
            _announce(f"Out of device memory in {what} with {size} {unit}s at once; retrying with {size // 2}.")
            size //= 2
