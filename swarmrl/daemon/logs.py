"""The daemon's log: plain INFO lines on stderr and in <run dir>/node.log, other libraries'
lines marked as theirs, and py-libp2p's everyday network errors shown only with --verbose."""

from __future__ import annotations

import logging
from pathlib import Path

LOG_FILE = "node.log"


class _Formatter(logging.Formatter):
    """Our lines plain; the library's marked as such, so users know whose words they read."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.name.startswith("swarmrl"):
            return line
        head, _, msg = line.partition(f" {record.levelname} ")
        return f"{head} {record.levelname} [{record.name.split('.')[0]}] {msg}"


NORMAL_NETWORK_EVENTS = (
    "Failed to open TCP stream",  # a peer that left, or an address it no longer listens on
    "failed to upgrade security for peer",  # a handshake cut short (a refused or banned peer)
    "fail to upgrade mux for peer",
    "Failed to auto-connect",
)
"""py-libp2p ERROR lines that are everyday events of a swarm (a peer that left cleanly was
redialled for minutes, an ERROR line each time): shown with --verbose only, like its DEBUG."""


def _normal_network_event(record: logging.LogRecord) -> bool:
    if not record.name.startswith("libp2p"):
        return False
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed log call: show it
        return False
    return message.startswith(NORMAL_NETWORK_EVENTS)


def setup_logging(out: Path, verbose: bool = False) -> None:
    """Plain INFO lines on stderr and in <out>/node.log; other libraries' errors only."""
    import libp2p  # noqa: F401 - its import configures its loggers; we reconfigure after

    out.mkdir(parents=True, exist_ok=True)
    fmt = _Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    # Other libraries' chatter (some libp2p modules set their own INFO level) only if verbose.
    quiet = logging.DEBUG if verbose else logging.ERROR

    def ours_or_loud(record: logging.LogRecord) -> bool:
        if record.name.startswith("swarmrl"):
            return True
        if record.levelno >= logging.ERROR and _normal_network_event(record):
            return verbose  # py-libp2p says ERROR for a peer that is not there (any more)
        return record.levelno >= quiet

    root = logging.getLogger()
    for handler in (logging.StreamHandler(), logging.FileHandler(out / LOG_FILE)):
        handler.setFormatter(fmt)
        handler.addFilter(ours_or_loud)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("swarmrl").setLevel(logging.DEBUG if verbose else logging.INFO)
    # py-libp2p stops its loggers propagating (they then reach stderr bare, through logging's
    # last resort); route them through our handlers instead.
    logging.getLogger("libp2p").propagate = True
