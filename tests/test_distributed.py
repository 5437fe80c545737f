"""Sharded benchmarks: torchrun with 2 CPU processes (gloo) writes the same files
as a one-process run, up to the timing columns and the run's own time stamps.

Both runs use one torch thread per process (torchrun's default OMP_NUM_THREADS=1): CPU kernels
round differently with different thread counts, so only equal threads give bit-equal numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from sdsgsm.attacks import AttackConfig
from sdsgsm.distributed import merge_shards, torchrun_env
from sdsgsm.experiments.benchmark import OUTPUT_FILES, run_benchmark
from sdsgsm.metrics import metric_list
from sdsgsm.occlusion import ScanConfig

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["benchmark", "--data", "gallery", "--limit", "4", "--methods", "sd-fgsm,pgd", "--steps", "2",
        "--patch", "32", "--batch-size", "1", "--criterion", "all", "--threads", "1", "--out", "out"]
# differ between any two runs: the timing columns and the run's clock; 'processes' records N
TIME_COLUMNS = [m.key for m in metric_list() if m.unit == "s"]  # the registry's timings
RUN_KEYS = ("created_utc", "wall_time_s", "processes")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path (gloo), also on a machine with a GPU
    return env


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one-process output dir, two-process output dir, two-process stdout)."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    _run([sys.executable, "-m", "sdsgsm", *ARGS], one)
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                 "-m", "sdsgsm", *ARGS], two)
    return one / "out", two / "out", proc.stdout


def _drop_time(df: pd.DataFrame) -> pd.DataFrame:
    return df[[c for c in df.columns if not any(c == t or c.startswith(t + "_") for t in TIME_COLUMNS)]]


def _no_time_cell(text: str, sep: str) -> list[str]:
    """Table lines without the Total time column (found by its header; its best-marker may move)."""
    lines = text.splitlines()
    header = next((line.split(sep) for line in lines if "Total time" in line and line.count(sep) > 3), None)
    if header is None:
        return lines
    col = next(i for i, cell in enumerate(header) if "Total time" in cell)
    out = []
    for line in lines:
        cells = line.split(sep)
        out.append(sep.join(cells[:col] + cells[col + 1:]) if len(cells) == len(header) else line)
    return out


@pytest.mark.slow
def test_two_processes_write_the_same_files(runs):
    one, two, stdout = runs
    assert sorted(p.name for p in two.iterdir()) == sorted(OUTPUT_FILES)
    assert stdout.count("-> out") == 1  # rank 0 alone prints the table and writes
    for name in ("per_sample.csv", "results.csv"):
        a, b = pd.read_csv(one / name), pd.read_csv(two / name)
        assert list(a.columns) == list(b.columns)
        pd.testing.assert_frame_equal(_drop_time(a), _drop_time(b), check_exact=True)
    per = pd.read_csv(two / "per_sample.csv")
    assert per["batch"].tolist() == [0, 1, 2, 3] * 2 and per["method"].tolist() == ["sd-fgsm"] * 4 + ["pgd"] * 4
    ca, cb = json.loads((one / "config.json").read_text()), json.loads((two / "config.json").read_text())
    assert (ca["processes"], cb["processes"]) == (1, 2)
    assert {k: v for k, v in ca.items() if k not in RUN_KEYS} == {k: v for k, v in cb.items() if k not in RUN_KEYS}
    for name, sep in (("results.md", "|"), ("results.tex", "&")):
        assert _no_time_cell((one / name).read_text(), sep) == _no_time_cell((two / name).read_text(), sep)


# ----------------------------------------------------------------------------- in-process pieces
def test_torchrun_env():
    assert torchrun_env({}) is None
    assert torchrun_env({"RANK": "0", "WORLD_SIZE": "1"}) is None  # a one-process torchrun is a plain run
    assert torchrun_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (1, 4, 1)
    with pytest.raises(ValueError, match="does not fit"):
        torchrun_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="integers"):
        torchrun_env({"RANK": "a", "WORLD_SIZE": "2"})


def test_shards_partition_the_batches_and_merge_to_the_one_process_result(tiny_cnn):
    """Ranks take every world-th batch of the one-process run; merged, they give its rows and
    summary for a random method (pgd: seeded per batch) and a spatial one."""
    x = torch.rand(7, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    cfg = AttackConfig(steps=2, scan=ScanConfig(patch=8, engine="batched", precision="float32"))
    kw = dict(methods=["pgd", "sd-fgsm"], cfgs=cfg, batch_size=2, criterion="all")
    whole = run_benchmark(tiny_cnn, x, None, **kw)
    pairs = {}
    for rank in (2, 1, 0):  # rank 0 last: it merges what the others handed over
        def gather(done, stopped, rank=rank):
            pairs[rank] = (done, stopped)
            return merge_shards([pairs[r] for r in sorted(pairs)]) if rank == 0 else (done, stopped)
        part = run_benchmark(tiny_cnn, x, None, shard=(rank, 3), gather=gather, **kw)
        if rank:
            assert sorted(set(part.per_sample["batch"])) == list(range(rank, 4, 3))
    pd.testing.assert_frame_equal(_drop_time(part.per_sample), _drop_time(whole.per_sample), check_exact=True)
    pd.testing.assert_frame_equal(_drop_time(part.summary), _drop_time(whole.summary), check_exact=True)
    assert part.summary["complete"].all()
