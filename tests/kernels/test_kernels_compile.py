"""Every Triton kernel variant compiles for a real GPU (sm_90 cubin), no GPU needed.

The interpreter runs the kernels' arithmetic but not the compiler, which is stricter (types of
loop-carried values, constexpr branches, pointer arithmetic). Compiling ahead of time for an H100
target with the wheel's own ptxas catches those errors on a CPU-only machine.
"""

from __future__ import annotations

import inspect
import os

import pytest

triton = pytest.importorskip("triton", reason="triton is not installed (CI installs it)")

from swarmrl.kernels import grpo_loss, logprobs  # noqa: E402

if os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("TRITON_INTERPRET=1: the kernels are interpreted functions, nothing to compile",
                allow_module_level=True)


def _compile(kernel, signature: dict[str, str], constexprs: dict[str, object], capability=90):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if "nvidia" not in triton.backends.backends:
        pytest.skip("triton has no nvidia backend")
    if "constexprs" not in inspect.signature(ASTSource).parameters:
        pytest.skip(f"triton {triton.__version__}: ASTSource predates the API used here (3.3+)")
    src = ASTSource(fn=kernel, signature={**signature, **dict.fromkeys(constexprs, "constexpr")},
                    constexprs=constexprs)
    options = {"num_warps": 8, **logprobs.LAUNCH_OPTIONS}
    compiled = triton.compile(src, target=GPUTarget("cuda", capability, 32), options=options)
    assert compiled.asm["cubin"], "no cubin produced"


LOGPROB_FWD = {"logits_ptr": "*bf16", "row_stride": "i32", "ids_ptr": "*i64", "logp_ptr": "*fp32",
               "lse_ptr": "*fp32", "entropy_ptr": "*fp32", "V": "i32"}
LOGPROB_BWD = {"logits_ptr": "*bf16", "row_stride": "i32", "grad_ptr": "*bf16",
               "grad_row_stride": "i32", "ids_ptr": "*i64", "lse_ptr": "*fp32",
               "entropy_ptr": "*fp32", "g_logp_ptr": "*fp32", "g_entropy_ptr": "*fp32", "V": "i32"}
GRPO_COMMON = {"logp_ptr": "*fp32", "old_ptr": "*fp32", "adv_ptr": "*fp32", "mask_ptr": "*fp32",
               "ref_ptr": "*fp32"}
GRPO_TAIL = {"n": "i32", "lo": "fp32", "hi": "fp32", "beta": "fp32"}


@pytest.mark.parametrize("entropy", [False, True])
def test_logprob_kernels_compile(entropy):
    _compile(logprobs._token_logprobs_fwd_kernel, LOGPROB_FWD,
             {"BLOCK_V": 4096, "WITH_ENTROPY": entropy})
    _compile(logprobs._token_logprobs_bwd_kernel, LOGPROB_BWD,
             {"BLOCK_V": 4096, "HAS_G_ENTROPY": entropy})


@pytest.mark.parametrize(("has_kl", "k3"), [(False, True), (True, False), (True, True)])
def test_grpo_kernels_compile(has_kl, k3):
    consts = {"HAS_KL": has_kl, "K3": k3, "BLOCK": grpo_loss.BLOCK}
    _compile(grpo_loss._grpo_fwd_kernel, {**GRPO_COMMON, "loss_ptr": "*fp32", **GRPO_TAIL},
             consts)
    _compile(grpo_loss._grpo_bwd_kernel,
             {**GRPO_COMMON, "g_ptr": "*fp32", "grad_ptr": "*fp32", **GRPO_TAIL}, consts)
