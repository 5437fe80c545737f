"""``sdsgsm app``: start the Streamlit app and print the address to open.

The app (``sdsgsm/ui/app``: app.py, pages/ and its .streamlit/config.toml) is part of the package, so
an installed ``sdsgsm`` serves it from anywhere; a clone serves its own code without being installed.
The server runs headless (no browser is opened): open the printed address. Ctrl+C stops it. It loads
the default model and computes Home's example in the background as it starts (serve.py), so the first
visitor does not wait for them; ``SDSGSM_WARMUP=0`` turns that off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sdsgsm.cli.common import CliError

PACKAGE = Path(__file__).resolve().parents[1]
APP_DIR = PACKAGE / "ui" / "app"


def add_parser(sub) -> None:
    """Add ``app`` to the CLI's subparsers."""
    p = sub.add_parser("app", help="start the Streamlit app and print the address to open",
                       description="Start the SD-SGSM Explorer app (Streamlit) on the embedded model and gallery, "
                                   "wait until it answers, and print the address to open in a browser.",
                       epilog="example: sdsgsm app --port 8501   (then open http://localhost:8501)")
    p.add_argument("--port", type=int, default=8501, help="TCP port (default: %(default)s)")
    p.add_argument("--address", default="localhost",
                   help="address to bind (default: %(default)s; 0.0.0.0 serves other machines on the network)")
    p.add_argument("--wait", type=int, default=120, help="seconds to wait for the server to answer "
                                                         "(default: %(default)s)")
    p.set_defaults(run=run)


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args) -> str:
    """Serve the app until the server stops or Ctrl+C; returns the closing line."""
    if not 1 <= args.port <= 65535:
        raise CliError(f"--port must be 1 … 65535 (got {args.port}).")
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent) + (os.pathsep + path if path else "")}
    cmd = [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(args.port),
           "--server.address", args.address, "--server.headless", "true"]
    proc = subprocess.Popen(cmd, cwd=APP_DIR, env=env)
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated `sdsgsm app` stops its server too
    host = "localhost" if args.address in ("0.0.0.0", "::") else args.address
    url = f"http://{host}:{args.port}"
    try:
        deadline = time.monotonic() + args.wait
        while not _healthy(url):
            if proc.poll() is not None:
                raise CliError(f"the app's server stopped (exit status {proc.returncode}); is port {args.port} "
                               "free? Try --port 8502.")
            if time.monotonic() > deadline:
                raise CliError(f"the app's server did not answer within {args.wait} s.")
            time.sleep(0.5)
        print(f"SD-SGSM Explorer is running: open {url} in a browser (Ctrl+C stops it).", flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return "SD-SGSM Explorer stopped."
