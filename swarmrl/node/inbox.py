"""What the control API hands a running node: a pause flag and tasks to use next.

The control server answers on its own threads while the node runs on trio's; this is the only
state they share for writing. The pause flag is a plain bool (one assignment, atomic in Python)
the loop reads before each step; submitted tasks wait in a locked, bounded queue the loop drains
when it samples its next local tasks. ``paused`` is the node's one pause flag; the daemon's
``Node.stopping`` is no pause (a resume must not undo it), so it is kept apart.
"""

from __future__ import annotations

import threading
from collections import deque

from swarmrl.protocol.messages import FreeFormTask, TaskSpec

Task = TaskSpec | FreeFormTask

MAX_QUEUED = 64


class InboxFull(RuntimeError):
    """More tasks are waiting than a node will use soon."""


class ControlInbox:
    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self.paused = False
        self.max_queued = max_queued
        self._tasks: deque[Task] = deque()
        self._lock = threading.Lock()

    def submit(self, task: Task) -> int:
        """Queue a (validated) task; returns how many now wait. Raises InboxFull."""
        with self._lock:
            if len(self._tasks) >= self.max_queued:
                raise InboxFull(f"{len(self._tasks)} submitted tasks are already waiting")
            self._tasks.append(task)
            return len(self._tasks)

    def take(self, n: int) -> list[Task]:
        """Up to ``n`` submitted tasks, oldest first (called by the node loop)."""
        with self._lock:
            return [self._tasks.popleft() for _ in range(min(n, len(self._tasks)))]

    def __len__(self) -> int:
        return len(self._tasks)
