"""The dispatch and the PyTorch references, in this process (no Triton kernel runs here).

On CPU without SWARMRL_KERNELS every entry point must take the reference, which must agree with
what training computes today (selective_logprobs, grpo_loss) and be correctly differentiable.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import swarmrl.kernels as K
from swarmrl.config import GRPOConfig
from swarmrl.kernels.fused_linear import chunk_rows
from swarmrl.kernels.logprobs import block_size
from swarmrl.training.grpo import aggregate, grpo_loss
from swarmrl.training.logprobs import selective_logprobs

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SWARMRL_KERNELS", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def _inputs(N=6, H=16, V=53, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=g, requires_grad=True)
    weight = (torch.randn(V, H, generator=g) * 0.5).requires_grad_(True)
    ids = torch.randint(0, V, (N,), generator=g)
    return hidden, weight, ids


def test_cpu_without_env_takes_the_reference(no_env):
    hidden, weight, ids = _inputs()
    logits = hidden @ weight.T
    assert not K.use_triton(logits, ids)
    logp, entropy = K.token_logprobs(logits, ids)
    assert entropy is None and "Triton" not in type(logp.grad_fn).__name__
    logp2, _ = K.fused_linear_logprobs(hidden, weight, ids)
    assert "Triton" not in type(logp2.grad_fn).__name__
    mask = torch.ones(2, 3)
    loss = K.grpo_token_loss(logp.view(2, 3), None, torch.ones(2), mask, epsilon_low=0.2,
                             epsilon_high=0.28)
    assert "Triton" not in type(loss.grad_fn).__name__


def test_env_modes(monkeypatch):
    x = torch.zeros(2, 3)
    monkeypatch.setenv("SWARMRL_KERNELS", "torch")
    assert not K.use_triton(x)
    monkeypatch.setenv("SWARMRL_KERNELS", "bogus")
    with pytest.raises(ValueError, match="SWARMRL_KERNELS"):
        K.use_triton(x)
    monkeypatch.setenv("SWARMRL_KERNELS", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if K.HAS_TRITON:  # CPU tensors without the interpreter: Triton cannot run them
        assert not K.use_triton(x)
    else:
        with pytest.raises(RuntimeError, match="triton is not installed"):
            K.use_triton(x)


def test_references_match_training_selective_logprobs(no_env):
    hidden, weight, ids = _inputs(seed=1)
    expected = selective_logprobs(hidden, ids, weight)
    got, _ = K.fused_linear_logprobs(hidden, weight, ids)
    torch.testing.assert_close(got, expected)
    logits = torch.randn(2, 3, 40).to(torch.bfloat16)
    ids3 = torch.randint(0, 40, (2, 3))
    got3, _ = K.token_logprobs(logits, ids3)
    assert got3.dtype == torch.float32
    torch.testing.assert_close(got3, selective_logprobs(logits, ids3))


def test_reference_entropy_and_gradcheck():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 23, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 23, (4,), generator=g)
    _, entropy = K.reference_token_logprobs(logits, ids)
    p = logits.softmax(-1)
    torch.testing.assert_close(entropy, -(p * p.log()).sum(-1))
    assert torch.autograd.gradcheck(lambda x: K.reference_token_logprobs(x, ids), (logits,))
    hidden = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda h, w: K.reference_fused_linear_logprobs(h, w, ids[:3] % 11), (hidden, weight))
    # A -inf logit (a banned token) has p = 0 and adds nothing to the entropy, not NaN.
    banned = logits.detach().clone()
    banned[:, 0] = float("-inf")
    _, ent = K.reference_token_logprobs(banned, torch.ones(4, dtype=torch.long))
    assert torch.isfinite(ent).all()


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize(("beta", "kl", "fresh"), [(0.0, "k3", False), (0.05, "k3", False),
                                                   (0.1, "k1", True)])
def test_reference_grpo_matches_training(no_env, loss_type, beta, kl, fresh):
    g = torch.Generator().manual_seed(4)
    logp = (-torch.rand(3, 6, generator=g) * 2).requires_grad_(True)
    old = None if fresh else logp.detach() + torch.randn(3, 6, generator=g) * 0.4
    adv = torch.randn(3, generator=g)
    mask = (torch.rand(3, 6, generator=g) > 0.3).float()
    ref = logp.detach() + torch.randn(3, 6, generator=g) * 0.1
    cfg = GRPOConfig(epsilon_low=0.2, epsilon_high=0.28, loss_type=loss_type, beta=beta,
                     kl_estimator=kl)
    per_token = K.grpo_token_loss(logp, old, adv, mask, epsilon_low=cfg.epsilon_low,
                                  epsilon_high=cfg.epsilon_high, beta=beta, ref_logprobs=ref,
                                  kl_estimator=kl)
    ours = aggregate(per_token, mask, loss_type, 6)
    (ours_grad,) = torch.autograd.grad(ours, logp)
    theirs, _ = grpo_loss(logp, old, adv, mask, cfg, ref_logprobs=ref)
    (theirs_grad,) = torch.autograd.grad(theirs, logp)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_grad, theirs_grad)


def test_grpo_argument_errors():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logprobs"):
        K.reference_grpo_token_loss(x, None, torch.zeros(1), x, 0.2, 0.2, beta=0.1)
    with pytest.raises(ValueError, match="KL estimator"):
        K.reference_grpo_token_loss(x, None, torch.zeros(1), x, 0.2, 0.2, beta=0.1,
                                    ref_logprobs=x, kl_estimator="k2")


def test_block_and_chunk_sizes():
    assert block_size(37) == 64 and block_size(151936) == 4096 and block_size(3) == 16
    assert block_size(300, 32) == 32
    with pytest.raises(ValueError):
        block_size(300, 48)
    assert chunk_rows(8192, 151936) == 512  # ~2^27 logits per chunk at Qwen2.5's vocabulary
    assert chunk_rows(5, 37) == 5 and chunk_rows(10, 37, 3) == 3 and chunk_rows(2, 37, 8) == 2
    with pytest.raises(ValueError):
        chunk_rows(4, 10, 0)


def test_kernels_never_import_training():
    for path in (ROOT / "swarmrl" / "kernels").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("swarmrl.training") for n in names), path


def test_works_without_triton_installed():
    """A CPU user without triton: the package imports and everything takes the reference."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, swarmrl.kernels as K\n"
        "assert not K.HAS_TRITON\n"
        "x = torch.randn(3, 20, requires_grad=True); ids = torch.tensor([1, 2, 3])\n"
        "lp, ent = K.token_logprobs(x, ids, with_entropy=True); (lp.sum() + ent.sum()).backward()\n"
        "import os; os.environ['SWARMRL_KERNELS'] = 'triton'\n"
        "try:\n    K.token_logprobs(x, ids)\nexcept RuntimeError as e:\n    print('ERR', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SWARMRL_KERNELS", "TRITON_INTERPRET")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERR SWARMRL_KERNELS=triton but triton is not installed" in proc.stdout
