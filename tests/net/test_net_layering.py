"""net/ sits on protocol/: importing it must not pull in torch, nor libp2p until the libp2p
transport is asked for."""

from __future__ import annotations

import subprocess
import sys


def test_net_imports_no_torch_and_no_libp2p_until_asked() -> None:
    code = (
        "import sys, swarmrl.net as n; "
        "n.MemoryNetwork(); "
        "print(sorted(m for m in ('torch', 'libp2p') if m in sys.modules)); "
        "import swarmrl.net.libp2p_transport; "
        "print(sorted(m for m in ('torch', 'libp2p') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "['libp2p']"]


def test_public_api_is_exported() -> None:
    import swarmrl.net as n

    for name in n.__all__:
        assert hasattr(n, name), name


def test_the_network_config_is_what_the_libp2p_transport_describes() -> None:
    """net/ sits below config/, so the libp2p transport describes the settings it reads
    (NetworkSettings) instead of importing NetworkConfig: the two must not drift apart."""
    from swarmrl.config import NetworkConfig
    from swarmrl.net.libp2p_settings import NetworkSettings

    assert isinstance(NetworkConfig(), NetworkSettings)
