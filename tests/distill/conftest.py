"""distill/ tests: one torch thread (the cores are shared), tiny models without warm starts.

They build whole nodes with tests/node/_node_helpers.py (teacher and student are tested through
the Nodes that own them), so that folder is importable from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))
