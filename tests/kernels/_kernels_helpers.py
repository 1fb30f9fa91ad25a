"""Helpers shared by the kernel tests (plain functions; no triton import here)."""

from __future__ import annotations

import os

import pytest
import torch

# Tolerances for float32 kernels checked against float64 references at tiny shapes.
ATOL = 2e-5
RTOL = 2e-5


def require_interpreter() -> None:
    """Module-level guard of the ``_kernels_interp_*`` modules: they run only in the subprocess
    that tests/kernels/test_kernels_interpreter.py starts with TRITON_INTERPRET=1."""
    if os.environ.get("TRITON_INTERPRET") != "1" or os.environ.get("SWARMRL_KERNELS") != "triton":
        pytest.skip("needs TRITON_INTERPRET=1 SWARMRL_KERNELS=triton set before triton is "
                    "imported (run via tests/kernels/test_kernels_interpreter.py)",
                    allow_module_level=True)
    pytest.importorskip("triton", reason="triton is not installed (CI installs it)")


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL,
          rtol: float = RTOL) -> None:
    """``actual`` (any float dtype) against a float64 ``expected``, compared in float64."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    torch.testing.assert_close(actual.detach().double(), expected.detach().double(),
                               atol=atol, rtol=rtol)


def leaf64(x: torch.Tensor) -> torch.Tensor:
    """A float64 leaf copy of ``x`` that requires grad (the reference's input)."""
    return x.detach().double().requires_grad_(True)
