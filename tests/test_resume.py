"""Resumable runs and progress output: a run killed with SIGKILL resumes from the finished units in --out and
writes the same CSVs as an uninterrupted run (timing columns aside); a changed configuration refuses to resume
with one line (exit status 2); progress off a terminal is plain lines.

The model is a tiny TorchScript CNN on 6 gallery images, so every command runs in seconds on two cores.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TinyCNN

from sdsgsm.cli.common import PARTIAL, Progress
from sdsgsm.experiments.runner import ConfigChanged, UnitStore

ROOT = Path(__file__).resolve().parent.parent
STORE = Path(PARTIAL) / UnitStore.NAME
LINE = re.compile(r"^\[\d+/\d+\] +\d+\.\d% \| elapsed \d\d:\d\d \| ETA (\d\d:\d\d|--:--) \| .+$")


def _same_outputs():
    spec = importlib.util.spec_from_file_location("same_outputs", ROOT / "bench" / "same_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compare


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's TorchScript deprecation notice
        torch.jit.script(TinyCNN().eval()).save(str(path))
    return path


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _argv(ckpt: Path, kind: str) -> list[str]:
    common = ["--checkpoint", str(ckpt), "--data", "gallery", "--criterion", "all", "--threads", "1"]
    if kind == "benchmark":  # 3 methods × 6 batches of 1 = 18 units (pgd draws its random start from the seed)
        return ["benchmark", *common, "--limit", "6", "--methods", "fgsm,pgd,mifgsm", "--steps", "20",
                "--batch-size", "1"]
    # 5 points × 2 methods = 10 units
    return ["sweep", *common, "--limit", "4", "--methods", "fgsm,pgd", "--steps", "20", "--param", "eps",
            "--values", "0:8/255:5", "--batch-size", "2"]


def _run(argv: list[str], out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdsgsm", *argv, "--out", str(out)], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _records(out: Path) -> int:
    try:
        return max(0, len((out / STORE).read_bytes().splitlines()) - 1)  # line 1 is the fingerprint
    except OSError:
        return 0


def _kill_at(argv: list[str], out: Path, k: int) -> int:
    """Start the command, SIGKILL it as soon as ``k`` units are on disk; returns the units stored then."""
    proc = subprocess.Popen([sys.executable, "-m", "sdsgsm", *argv, "--out", str(out)], env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while _records(out) < k:
            assert proc.poll() is None, f"the run ended before {k} units were stored"
            assert time.monotonic() < deadline, "the run took too long"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return _records(out)


def _assert_same(a: Path, b: Path, names: tuple[str, ...]) -> None:
    compare = _same_outputs()
    for name in names:
        same, line = compare(a / name, b / name)
        assert same, f"{name}: {line}"


@pytest.fixture(scope="module")
def reference(ckpt, tmp_path_factory):
    """Uninterrupted runs: {kind: (output dir, stderr)}."""
    out = {}
    for kind in ("benchmark", "sweep"):
        d = tmp_path_factory.mktemp(f"whole_{kind}")
        proc = _run(_argv(ckpt, kind), d)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[kind] = (d, proc.stderr)
    return out


@pytest.mark.slow
def test_benchmark_killed_three_times_resumes_to_the_same_files(ckpt, reference, tmp_path):
    argv, out, n = _argv(ckpt, "benchmark"), tmp_path / "out", 18
    # after the first unit, in the middle, after the last but one (each kill lands on a resumed run)
    for k in (1, 9, n - 1):
        stored = _kill_at(argv, out, k)
        assert k <= stored < n, stored
        assert (out / STORE).is_file() and not (out / "results.csv").exists()
    # a changed configuration refuses to resume: exit 2 and one line naming what changed; the store is kept
    changed = [*argv[:argv.index("--steps")], "--steps", "10", *argv[argv.index("--steps") + 2:]]
    proc = _run(changed, out)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "steps" in errors[0] and "--fresh" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _run(argv, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(rf"resuming: (\d+) of {n} units done", proc.stderr), proc.stderr
    assert int(re.search(r"resuming: (\d+)", proc.stderr).group(1)) >= n - 1
    _assert_same(reference["benchmark"][0], out, ("results.csv", "per_sample.csv"))
    assert not (out / PARTIAL).exists()  # removed once the final files are written
    config = json.loads((out / "config.json").read_text())
    assert config["methods_completed"] == ["fgsm", "pgd", "mifgsm"] and not config["stopped_early"]


@pytest.mark.slow
def test_sweep_killed_twice_resumes_to_the_same_files(ckpt, reference, tmp_path):
    argv, out = _argv(ckpt, "sweep"), tmp_path / "out"
    for k in (2, 7):
        assert 2 <= _kill_at(argv, out, k) < 10
    proc = _run(argv, out)
    assert proc.returncode == 0 and "resuming: " in proc.stderr, proc.stderr[-2000:]
    _assert_same(reference["sweep"][0], out, ("sweep.csv", "sweep_per_sample.csv"))


@pytest.mark.slow
def test_fresh_starts_over(ckpt, reference, tmp_path):
    argv, out = _argv(ckpt, "sweep"), tmp_path / "out"
    _kill_at(argv, out, 3)
    proc = _run([*argv, "--fresh"], out)
    assert proc.returncode == 0 and "resuming" not in proc.stderr, proc.stderr[-2000:]
    _assert_same(reference["sweep"][0], out, ("sweep.csv", "sweep_per_sample.csv"))


@pytest.mark.slow
def test_progress_in_a_log_is_plain_lines(reference):
    for kind, (_, err) in reference.items():
        assert "\r" not in err
        lines = err.splitlines()
        assert lines[0].startswith(f"{kind}: ") and " methods (" in lines[0], lines[0]  # what it will run
        progress = lines[1:]
        assert progress and all(LINE.match(line) for line in progress), err
        counts = [line.split("]")[0] for line in progress]
        assert len(counts) == len(set(counts))  # nothing printed twice
        assert progress[-1].startswith(f"[{ {'benchmark': 18, 'sweep': 40}[kind]}/")


# ----------------------------------------------------------------------------- in-process pieces
def test_progress_lines_are_rate_limited_and_verbose_gives_one_per_unit():
    log = io.StringIO()
    p = Progress(stream=log, every=60.0)
    for i in range(0, 11):
        p("fgsm", i, 10)
        p("fgsm", i, 10)  # the same count again (a method starting): no line
    lines = log.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["[0/10", "[10/10"] and "\r" not in log.getvalue()
    log = io.StringIO()
    p = Progress(verbose=True, stream=log)
    for i in range(0, 11):
        p("fgsm", i, 10)
        p("pgd", i, 10)
    assert len(log.getvalue().splitlines()) == 11 and all(LINE.match(x) for x in log.getvalue().splitlines())


def test_progress_on_a_terminal_is_a_bar():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    log = Tty()
    p = Progress(stream=log)
    for i in range(0, 5):
        p("pgd · point 1/2", i, 4)
    p.close()
    text = log.getvalue()
    assert "\r" in text and "4/4" in text and "pgd · point 1/2" in text and "<" in text  # elapsed<remaining


def test_unit_store_reads_back_every_dtype_exactly(tmp_path):
    df = pd.DataFrame({"method": ["a", "b"], "i": np.array([1, 2], dtype=np.int64), "ok": [True, False],
                       "f32": np.array([0.1, np.nan], dtype=np.float32), "f64": [1 / 3, np.inf]})
    store = UnitStore(tmp_path / PARTIAL)
    store.begin({"methods": ["a"], "eps": 8 / 255}, 2)
    store.add(UnitStore.key("a", 0), [df], [{"asr": 0.5, "n": np.int64(3)}])
    store.close()
    notes = []
    again = UnitStore(tmp_path / PARTIAL, note=notes.append)
    assert again.begin({"methods": ["a"], "eps": 8 / 255}, 2) == 1 and notes == ["resuming: 1 of 2 units done"]
    frames, rows = again.get(UnitStore.key("a", 0))
    pd.testing.assert_frame_equal(frames[0], df, check_exact=True)
    assert rows == [{"asr": 0.5, "n": 3}]
    again.close()
    with pytest.raises(ConfigChanged, match=r"another eps \(was 0\.03137254901960784, now 0\.0627"):
        UnitStore(tmp_path / PARTIAL).begin({"methods": ["a"], "eps": 16 / 255}, 2)
    fresh = UnitStore(tmp_path / PARTIAL, fresh=True)
    assert fresh.begin({"methods": ["a"], "eps": 16 / 255}, 2) == 0
    fresh.clear()
    assert not (tmp_path / PARTIAL).exists()


def test_a_line_cut_by_a_kill_is_run_again(tmp_path):
    store = UnitStore(tmp_path)
    store.begin({"x": 1})
    store.add(UnitStore.key(0), [pd.DataFrame({"v": [1.5]})])
    store.close()
    with open(store.path, "a") as f:
        f.write('{"key": "[1]", "fra')  # the kill landed mid-write
    again = UnitStore(tmp_path)
    assert again.begin({"x": 1}) == 1 and UnitStore.key(1) not in again
    again.add(UnitStore.key(1), [pd.DataFrame({"v": [2.5]})])
    again.close()
    assert UnitStore(tmp_path).begin({"x": 1}) == 2
