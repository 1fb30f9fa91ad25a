"""How a `swarmrl` command fails: one line on stderr ("error: ..."), never a traceback, and an
exit code that says which kind of failure it was. One helper for `swarmrl` and `swarmrl inspect`;
the codes stay as documented, so they are a parameter."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

EXIT_USAGE = 2
"""`swarmrl ...`: a bad argument, file or config (the code click gives its own usage errors)."""
EXIT_INSPECT = 1
"""`swarmrl inspect ...`: any failure, usage or an unreachable node (docs/inspect.md)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C before a node took over the signals (128 + SIGINT, as a shell reports it)."""

_stderr = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Say ``message`` on stderr as one line and exit with ``code``."""
    # soft_wrap: one line whatever the terminal width; escape: a path may contain [brackets].
    _stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
