"""Daemon tests: one torch thread (the cores are shared), tiny models without warm starts."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
