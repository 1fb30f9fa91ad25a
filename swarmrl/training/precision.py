"""Where bfloat16 pays: the one hardware question behind ``grpo.autocast`` and
``generation.decode`` set to "auto".

bf16 halves the bytes every matmul streams, but it is only *faster* where the hardware multiplies
bf16 natively: CUDA GPUs with bf16 support, and x86 CPUs with AVX512-BF16 or AMX. Elsewhere torch
emulates it in fp32 and it is slower than plain fp32, so "auto" stays fp32 there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

# /proc/cpuinfo flags of CPUs with bf16 dot-product instructions (oneDNN uses them for bf16 GEMM).
CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


# Flags that pick a different code path in torch/oneDNN (and so change a speed figure).
CPU_PATH_FLAGS = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"}


@functools.cache
def _cpuinfo_field(name: str) -> str:
    """The first ``name : value`` line of /proc/cpuinfo ("" off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.split(":", 1)[0].strip() == name:
            return line.split(":", 1)[1].strip()
    return ""


def _cpu_flags() -> frozenset[str]:
    # Not Linux: no cheap way to tell, assume no fast bf16.
    return frozenset(_cpuinfo_field("flags").split())


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls beat fp32 on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(CPU_BF16_FLAGS & _cpu_flags())
    return False


def machine_meta() -> dict[str, object]:
    """What a speed figure depends on, for every benchmark's meta line: the CPU model, the CPU
    flags that change a code path, whether "auto" picks bf16 here, and the thread counts."""
    cuda = torch.cuda.is_available()
    return {
        "cpu": _cpuinfo_field("model name") or platform.processor() or platform.machine(),
        "cpu_flags": sorted(CPU_PATH_FLAGS & _cpu_flags()),
        "cpu_bf16_fast": fast_bf16(torch.device("cpu")),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def use_autocast(mode: str, device: torch.device, param_dtype: torch.dtype) -> bool:
    """Resolve ``grpo.autocast``: bf16 autocast only makes sense over fp32 master weights."""
    if mode == "off" or param_dtype != torch.float32:
        return False
    if mode == "bf16":
        return True
    return fast_bf16(device)  # "auto"


# In bf16 on CPU, torch's flash-attention kernel (forward + backward) is 2-3x slower than the
# plain math one on short sequences (measured, torch 2.13, 8 rows x 4 heads x ~50 tokens: 1.85 ms
# vs 0.69 ms); it wins from a few hundred tokens on, where math's L x L scores get big.
CPU_BF16_MATH_SDPA_MAX_LEN = 256


@contextlib.contextmanager
def autocast(enabled: bool, device: torch.device, seq_len: int = 0) -> Iterator[None]:
    """bf16 autocast on ``device`` (nothing when disabled), with the attention kernel that is
    fastest for sequences of ``seq_len`` tokens. The backward needs no context: it runs in the
    dtypes and kernels its forward chose."""
    with contextlib.ExitStack() as stack:
        if enabled:
            stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
            if device.type == "cpu" and seq_len <= CPU_BF16_MATH_SDPA_MAX_LEN:
                stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
        yield
