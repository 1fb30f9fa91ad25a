"""Runs each ``_kernels_interp_*.py`` module in its own pytest subprocess under the Triton
interpreter (CPU).

TRITON_INTERPRET must be set before triton is imported (it is read when ``@triton.jit`` wraps a
kernel), so it cannot be switched on inside this process without leaking into every later test
module; a child process per module gets it from the start and this process never sees it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODULES = sorted(HERE.glob("_kernels_interp_*.py"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed, so the Triton kernels cannot be tested in the interpreter "
    "(pip install triton; CI installs it)",
)


@pytest.mark.parametrize("module", MODULES, ids=[m.stem.removeprefix("_kernels_interp_")
                                                 for m in MODULES])
def test_kernels_in_triton_interpreter(module: Path):
    env = {**os.environ, "TRITON_INTERPRET": "1", "SWARMRL_KERNELS": "triton",
           "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
           "--rootdir", str(ROOT), str(module)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-8000:]}"
    assert " passed" in out and "skipped" not in out, out[-4000:]


def test_every_interpreter_module_is_run():
    assert len(MODULES) >= 3, MODULES
