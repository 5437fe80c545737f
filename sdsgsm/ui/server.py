"""Start and stop a local `streamlit run app.py` for the browser tests and bench scripts (one copy).

Not used by the app itself. The server binds 127.0.0.1 on a free port, runs headless with the
tree's .streamlit/config.toml, and only its health endpoint is polled, so the first page request is
the caller's (a fresh-server deep link stays fresh).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cwd: Path = ROOT, wait_s: int = 120) -> tuple[subprocess.Popen, str]:
    """A new `streamlit run app.py` in ``cwd`` (another checkout serves its own code); returns
    (process, url). Raises RuntimeError with the server's output if it is not healthy in ``wait_s``."""
    port = free_port()
    log = tempfile.TemporaryFile()  # not a pipe: a long soak's log lines must never fill it and block the server
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
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
