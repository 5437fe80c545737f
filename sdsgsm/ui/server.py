"""Start and stop a local Streamlit server of the app for the browser tests and bench scripts (one copy).

Not used by the app itself. The server runs `streamlit run serve.py` in the app's folder
(sdsgsm/ui/app, whose .streamlit/config.toml it reads; serve.py serves app.py and warms the caches up
in the background, see sdsgsm/ui/warmup.py; older checkouts without it run app.py), binds 127.0.0.1
on a free port, runs headless, and only its health endpoint is polled, so the first page request is
the caller's. ``warmup=False`` (or $SDSGSM_WARMUP=0) keeps a fresh server's caches empty until then.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = Path("sdsgsm") / "ui" / "app"  # the app's folder, relative to a checkout's root


def app_dir(root: Path = ROOT) -> Path:
    """The folder holding app.py, pages/ and .streamlit/ in checkout ``root`` (older checkouts kept
    them at the root)."""
    return root / APP if (root / APP / "app.py").is_file() else root


def app_env(root: Path = ROOT) -> dict[str, str]:
    """The environment for a server of checkout ``root``: its package first on the import path, so a
    clone runs its own code without being installed."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(root) + (os.pathsep + path if path else "")}


def entry(root: Path = ROOT) -> str:
    """The script `streamlit run` starts in :func:`app_dir`: serve.py (the app with its start hook)
    where the checkout has it, else app.py."""
    return "serve.py" if (app_dir(root) / "serve.py").is_file() else "app.py"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cwd: Path = ROOT, wait_s: int = 120, warmup: bool = True,
                 script: str | None = None) -> tuple[subprocess.Popen, str]:
    """A new `streamlit run serve.py` (or ``script``, e.g. "app.py") of checkout ``cwd`` (another checkout
    serves its own code); returns (process, url). Raises RuntimeError with the server's output if it is
    not healthy in ``wait_s``."""
    port = free_port()
    env = app_env(Path(cwd))
    if not warmup:
        env["SDSGSM_WARMUP"] = "0"
    log = tempfile.TemporaryFile()  # not a pipe: a long soak's log lines must never fill it and block the server
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script or entry(Path(cwd)),
                             "--server.port", str(port), "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=app_dir(Path(cwd)), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(wait_s):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    log.seek(0)
    raise RuntimeError("streamlit did not start: " + log.read()[-2000:].decode("utf-8", "replace"))


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate the server, killing it if it does not stop within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
