"""The daemon's log: its own lines, other libraries' errors, and not a swarm's everyday events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmrl.daemon.logs import LOG_FILE, setup_logging


@pytest.fixture
def fresh_root() -> Iterator[None]:
    """setup_logging configures the process's loggers: put them back after (a swarmrl logger
    left at DEBUG made later tests' captured log records grow by the thousand)."""
    root, ours, libp2p = (logging.getLogger(n) for n in ("", "swarmrl", "libp2p"))
    handlers, levels = list(root.handlers), (root.level, ours.level, libp2p.level)
    propagate = libp2p.propagate
    yield
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for logger, level in zip((root, ours, libp2p), levels, strict=True):
        logger.setLevel(level)
    libp2p.propagate = propagate


def emit(out: Path, verbose: bool) -> str:
    setup_logging(out, verbose=verbose)
    tcp = logging.getLogger("libp2p.transport.tcp.tcp")
    tcp.error("Failed to open TCP stream: [Errno 111] Connection refused")
    logging.getLogger("libp2p.network.swarm").error("failed to upgrade security for peer X: y")
    logging.getLogger("libp2p.pubsub.pubsub").error("something libp2p really got wrong")
    logging.getLogger("swarmrl.daemon").info("a step")
    for h in logging.getLogger().handlers:
        h.flush()
    return (out / LOG_FILE).read_text()


def test_a_peer_that_is_not_there_is_no_error_line(tmp_path: Path, fresh_root: None) -> None:
    text = emit(tmp_path / "quiet", verbose=False)
    assert "a step" in text and "something libp2p really got wrong" in text
    assert "Failed to open TCP stream" not in text and "upgrade security" not in text


def test_verbose_shows_them(tmp_path: Path, fresh_root: None) -> None:
    text = emit(tmp_path / "verbose", verbose=True)
    assert "Failed to open TCP stream" in text and "upgrade security" in text
