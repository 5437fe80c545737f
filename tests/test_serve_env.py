"""The app server's entry makes torch's OpenMP threads wait passively unless the environment says otherwise."""

import os
import subprocess
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent / "sdsgsm" / "ui" / "app"
CODE = "import os, runpy; runpy.run_path('serve.py'); print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy(**env) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", CODE], cwd=APP_DIR, env={**base, **env}, capture_output=True,
                         text=True, timeout=300, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_serve_py_sets_a_passive_wait_policy_and_keeps_one_given():
    assert _policy() == "PASSIVE"
    assert _policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
