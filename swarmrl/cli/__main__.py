"""`python -m swarmrl.cli`: the `swarmrl` command, for scripts and tests that run it with a
given interpreter."""

import sys

from swarmrl.cli.main import app

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
