"""swarm/ tests: one torch thread (the cores are shared), tiny models without warm starts.

They build whole nodes with tests/node/_node_helpers.py (intake is tested through the Node that
owns it), so that folder is importable from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))
