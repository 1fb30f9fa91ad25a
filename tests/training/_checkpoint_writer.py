"""Writes checkpoints forever, for the SIGKILL-during-write test.

usage: _checkpoint_writer.py ROOT START
Each checkpoint step-N holds three files whose every byte says N (so a torn or mixed checkpoint
is visible), written slowly enough that a kill often lands inside ``write_step_dir``. The same
step is sometimes written twice, which exercises the swap of an existing step directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from swarmrl.training.checkpoint_files import latest_checkpoint, write_step_dir

SIZE = 1 << 20


def writer(step: int):
    def write(d: Path) -> None:
        for name in ("weights.bin", "optimizer.bin", "extra.bin"):
            with open(d / name, "wb") as fh:
                for _ in range(4):
                    fh.write(bytes([step % 251]) * SIZE)
    return write


def main(root: str, start: int) -> None:
    last = latest_checkpoint(root)
    step = int(last.name.rsplit("-", 1)[1]) if last else start
    while True:
        write_step_dir(root, step, writer(step), keep=1)
        if step % 3:  # every third step is written twice
            step += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
