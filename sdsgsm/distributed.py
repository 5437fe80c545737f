"""Sharded benchmarks with ``torch.distributed`` under ``torchrun``.

``torchrun --nproc-per-node N -m sdsgsm benchmark …`` starts N processes with RANK,
WORLD_SIZE, LOCAL_RANK and the rendezvous address in their environment (several nodes: the
same command on each node with torchrun's ``--nnodes``/``--node-rank``/``--rdzv-*`` flags).
:func:`start` joins the process group (gloo on CPU, nccl on CUDA, one GPU per local rank);
:func:`sdsgsm.experiments.benchmark.run_benchmark` then attacks only the batches ``b`` with
``b mod WORLD_SIZE = RANK`` — the one-process run's batches, with the same seeds — and
:func:`gather_rows` collects every rank's per-sample rows with ``all_gather_object``, so
rank 0 builds and writes the same results.csv, per_sample.csv, tables and config.json as
a one-process run (up to the timing columns and the run's wall time). No process pool or job
queue of our own: torchrun starts and watches the processes, torch.distributed moves the rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd
import torch

__all__ = ["Shard", "finish", "gather_rows", "merge_shards", "start", "torchrun_env"]


@dataclass(frozen=True)
class Shard:
    """This process's place in the run: rank of world processes, local_rank on its node, and
    the device its model lives on ('cpu' or 'cuda:<local_rank>')."""

    rank: int
    world: int
    local_rank: int
    device: str


def torchrun_env(env: dict | None = None) -> tuple[int, int, int] | None:
    """(RANK, WORLD_SIZE, LOCAL_RANK) when started by torchrun with WORLD_SIZE > 1, else None.

    Raises ValueError (one line) for malformed values."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun).") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK {rank} does not fit WORLD_SIZE {world}.")
    return (rank, world, local) if world > 1 else None


def start(device: str | None = None) -> Shard | None:
    """Join the torchrun process group, or None for a plain one-process run.

    device: the ``--device`` flag ('cpu', 'cuda' or None = CUDA when present). On CUDA each
    local rank takes GPU ``local_rank`` and the backend is nccl; on the CPU it is gloo.
    """
    import torch.distributed as dist

    env = torchrun_env()
    if env is None:
        return None
    rank, world, local = env
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if cuda:
        if local >= torch.cuda.device_count():
            raise ValueError(f"Local rank {local} has no GPU ({torch.cuda.device_count()} visible); "
                             "use --nproc-per-node ≤ the GPU count or --device cpu.")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Shard(rank, world, local, f"cuda:{local}" if cuda else "cpu")


def gather_rows(done: dict[str, pd.DataFrame], stopped: bool) -> tuple[dict[str, pd.DataFrame], bool]:
    """Every rank's per-method per-sample rows, joined in sample order (the one-process order:
    the attacked indices ascend), and whether any rank stopped early. A collective call: every
    rank calls it once, after its last batch."""
    import torch.distributed as dist

    shards: list = [None] * dist.get_world_size()
    dist.all_gather_object(shards, (done, bool(stopped)))
    return merge_shards(shards)


def merge_shards(shards: list[tuple[dict[str, pd.DataFrame], bool]]) -> tuple[dict[str, pd.DataFrame], bool]:
    """Join the ranks' (per-method rows, stopped) pairs: rows of each method concatenated and
    put in ascending sample index (the one-process order); stopped if any rank stopped."""
    methods = [m for part, _ in shards for m in part]
    merged = {}
    for m in dict.fromkeys(methods):
        frames = [part[m] for part, _ in shards if m in part and len(part[m])]
        if frames:
            merged[m] = pd.concat(frames, ignore_index=True).sort_values("index", kind="stable").reset_index(drop=True)
    return merged, any(s for _, s in shards)


def finish() -> None:
    """Leave the process group (after rank 0 has written the files)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
