"""protocol/ is the bottom layer: importing it must not pull in torch (or libp2p, until asked)."""

from __future__ import annotations

import subprocess
import sys


def test_protocol_imports_no_torch_and_no_libp2p() -> None:
    code = (
        "import sys, swarmrl.protocol as p; "
        "p.Identity.generate(); "
        "print(sorted(m for m in ('torch', 'libp2p') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_exported() -> None:
    import swarmrl.protocol as p

    for name in p.__all__:
        assert hasattr(p, name), name

