"""The package as a user installs it: build the wheel, install it into a fresh virtual environment
(offline: no index, the dependencies reused from this environment), and run the ``sdsgsm`` command
from outside the checkout: ``--help``, an attack on an embedded gallery image, and ``sdsgsm app``."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

from sdsgsm.ui.server import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the built wheel; this environment's site-packages are on its path (a .pth file)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copytree(ROOT / "sdsgsm", src / "sdsgsm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
                    "-q", "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=600)
    wheel = next((tmp / "dist").glob("*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "reuse_test_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    return venv


def _run(venv: Path, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin" / "sdsgsm"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_wheel_carries_the_app_and_the_assets(installed):
    wheel = next(installed.parent.joinpath("dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("sdsgsm/ui/app/app.py", "sdsgsm/ui/app/pages/1_Explorer.py", "sdsgsm/ui/app/.streamlit/config.toml",
                 "sdsgsm/assets/patches/patches.json", "sdsgsm/assets/lab/lab.json"):
        assert path in names, path
    assert any(n.startswith("sdsgsm/assets/gallery/imagenet/") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "docs/")) for n in names)


def test_help_and_an_attack_from_outside_the_checkout(installed, tmp_path):
    help_ = _run(installed, "--help", cwd=tmp_path)
    assert help_.returncode == 0 and "attack" in help_.stdout and "app" in help_.stdout
    run = _run(installed, "attack", "--image", "imagenet/imagenet_00_243.jpg", "--method", "fgsm", "--out",
               str(tmp_path / "out"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "out" / "adversarial.png").is_file() and (tmp_path / "out" / "result.json").is_file()
    probe = subprocess.run([str(installed / "bin" / "python"), "-c", "import sdsgsm; print(sdsgsm.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(installed) in probe  # the installed copy ran, not the checkout


def test_sdsgsm_app_prints_the_address_and_serves(installed, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([str(installed / "bin" / "sdsgsm"), "app", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, seen = time.monotonic() + 180, ""
        while f"open http://localhost:{port}" not in seen:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, seen[-2000:]
            seen += line
            assert time.monotonic() < deadline, seen[-2000:]
        page = urllib.request.urlopen(f"http://localhost:{port}/", timeout=30).read().decode()
        assert "<noscript>" in page or "streamlit" in page.lower()
        assert urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=30).read() == b"ok"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    for _ in range(60):  # the terminated command took its server down with it
        try:
            urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2)
        except OSError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the app's server outlived `sdsgsm app`")
