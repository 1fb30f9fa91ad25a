"""Distillation math: the coefficient schedule, per-token advantages worked out by hand, the
per-token loss path, and a real tiny student pulled towards a real tiny teacher."""

from __future__ import annotations

import pytest
import torch
from _training_helpers import random_policy

from swarmrl.config import ConfigError, DistillConfig, GRPOConfig, NodeConfig, parse_config
from swarmrl.training.distill import TeacherSignal, grpo_weight, schedule_coef
from swarmrl.training.distill_loss import distill_advantages, score_tokens
from swarmrl.training.grpo import grpo_loss
from swarmrl.training.learner import Learner, TokenGroup

PROMPT = [81, 58, 32, 49, 32, 43, 32, 49, 10, 65, 58]  # "Q: 1 + 1\nA:"
COMPS = [[50, 256], [51, 52, 256], [53, 54, 55], [50, 60, 256]]


# --- schedule --------------------------------------------------------------------------------
def test_schedules() -> None:
    const = DistillConfig(mode="grpo+kl", coef=0.5)
    assert [schedule_coef(const, s) for s in (0, 10, 10_000)] == [0.5, 0.5, 0.5]
    lin = DistillConfig(mode="grpo+kl", coef=1.0, schedule="linear", schedule_steps=10,
                        final_coef=0.2)
    assert schedule_coef(lin, 0) == 1.0
    assert schedule_coef(lin, 5) == pytest.approx(0.6)
    assert schedule_coef(lin, 10) == pytest.approx(0.2) == schedule_coef(lin, 99)
    warm = DistillConfig(mode="distill", coef=2.0, schedule="warmup", schedule_steps=4)
    assert [schedule_coef(warm, s) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert schedule_coef(DistillConfig(mode="off", coef=3.0), 0) == 0.0
    assert grpo_weight(DistillConfig(mode="distill")) == 0.0
    assert grpo_weight(DistillConfig(mode="grpo+kl")) == 1.0


def test_bad_config_values_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"distill\.mode"):
        parse_config(NodeConfig, {"distill": {"mode": "kd"}})
    with pytest.raises(ConfigError, match=r"distill.*not a peer id"):
        parse_config(NodeConfig, {"distill": {"teachers": ["not/a/peer"]}})
    with pytest.raises(ConfigError, match=r"peer_burst_tokens must be >="):
        parse_config(NodeConfig, {"teacher": {"max_tokens_per_request": 100,
                                              "peer_burst_tokens": 10}})
    with pytest.raises(ConfigError, match=r"distill\.timeout_s"):
        parse_config(NodeConfig, {"distill": {"timeout_s": 0}})


# --- advantages by hand ----------------------------------------------------------------------
def test_token_advantages_by_hand() -> None:
    student = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -0.2, -0.3], [-3.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    seq_adv = torch.tensor([1.0, -1.0, 0.0])
    rows = [
        ([-0.5, -3.0], 2.0, 5.0),  # gaps +0.5, -1.0 -> x2: +1.0, -2.0 (third token is padding)
        None,  # no teacher: the sequence advantage alone
        ([-1.0, -1.0, -9.0], 1.0, 1.5),  # gaps +2.0 (clipped to 1.5), 0.0, -8.0 (clipped -1.5)
    ]
    adv, fig = distill_advantages(seq_adv, student, rows, mask)
    expected = torch.tensor([[2.0, -1.0, 1.0], [-1.0, -1.0, -1.0], [1.5, 0.0, -1.5]])
    assert torch.allclose(adv, expected)
    # reverse KL on taught tokens: (student - teacher) = -0.5, 1.0, -2.0, 0.0, 8.0 -> mean 1.3
    assert fig["distill_kl"] == pytest.approx(1.3)
    assert fig["distill_tokens"] == 5
    # |kl advantage| over counted tokens = 1 + 2 + 1.5 + 0 + 1.5 = 6; |seq adv| = 2 + 3 + 0 = 5
    assert fig["distill_share"] == pytest.approx(6 / 11)


def test_no_teacher_leaves_sequence_advantages_alone() -> None:
    seq_adv = torch.tensor([1.0, -1.0])
    adv, fig = distill_advantages(seq_adv, torch.zeros(2, 3), [None, None], torch.ones(2, 3))
    assert adv is seq_adv and fig == {}


def test_per_token_loss_gradient_is_minus_the_advantage() -> None:
    """One pass (ratio 1), dapo: d loss / d logp[t] = -A[t] / tokens, whatever A's shape."""
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.1], [0.3, 0.9, 0.9]])).requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([[1.0, -2.0, 0.5], [3.0, 7.0, 7.0]])
    loss, stats = grpo_loss(logp, None, adv, mask, GRPOConfig(loss_type="dapo"))
    assert loss.item() == pytest.approx(-(1.0 - 2.0 + 0.5 + 3.0) / 4)
    loss.backward()
    assert torch.allclose(logp.grad, -adv * mask / 4)
    assert stats["clip_frac"] == 0.0 and stats["tokens"] == 4
    # A [B, L] equal along L is the same loss as A [B]
    same, _ = grpo_loss(logp.detach(), None, torch.tensor([[2.0] * 3, [-1.0] * 3]), mask,
                        GRPOConfig(loss_type="dapo"))
    ref, _ = grpo_loss(logp.detach(), None, torch.tensor([2.0, -1.0]), mask,
                       GRPOConfig(loss_type="dapo"))
    assert same.item() == pytest.approx(ref.item())


# --- the teacher's scoring and a real update -------------------------------------------------
def test_score_tokens_matches_the_policy_and_batches_across_prompts() -> None:
    pol = random_policy(3)
    rows = [(PROMPT, c) for c in COMPS] + [([81, 58, 32], [50, 256])]
    got = score_tokens(pol, rows)
    assert [len(x) for x in got] == [len(c) for _, c in rows]
    with torch.no_grad():
        want, _ = pol.token_logprobs([PROMPT] * len(COMPS), COMPS)
        alone = score_tokens(pol, rows[-1:])[0]
    for i, c in enumerate(COMPS):
        assert got[i] == pytest.approx(want[i, : len(c)].tolist(), abs=1e-5)
    assert got[-1] == pytest.approx(alone, abs=1e-5)
    assert all(x <= 0 for row in got for x in row)
    assert pol.model.training  # scoring left the policy in train mode


def _gap(student, teacher_logprobs) -> float:
    with torch.no_grad():
        logp, _ = student.token_logprobs([PROMPT] * len(COMPS), COMPS)
    gaps = [abs(logp[i, j].item() - t) for i, row in enumerate(teacher_logprobs)
            for j, t in enumerate(row)]
    return sum(gaps) / len(gaps)


def test_pure_distillation_pulls_the_student_towards_the_teacher() -> None:
    teacher = random_policy(seed=11)
    student = Learner(random_policy(seed=0), GRPOConfig(learning_rate=1e-4))
    t_logp = score_tokens(teacher, [(PROMPT, c) for c in COMPS])
    gaps = [_gap(student.policy, t_logp)]
    for _ in range(5):
        # Equal rewards: GRPO alone would skip this group; the teacher's signal trains it.
        signal = TeacherSignal(t_logp, coef=1.0, grpo_weight=0.0, clip=10.0)
        st = student.train_step([TokenGroup(PROMPT, COMPS, [1.0] * 4, None, signal)])
        assert not st.skipped and st.groups_trained == 1 and st.groups_with_signal == 0
        assert st.distill["distill_share"] == 1.0 and st.distill["distill_tokens"] == 11
        gaps.append(_gap(student.policy, t_logp))
    # Mean |log p_student - log p_teacher| over the sampled tokens: 0.124 -> 0.051 here.
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 0.6 * gaps[0], gaps
    # without a teacher the same group is skipped: no update
    st = student.train_step([TokenGroup(PROMPT, COMPS, [1.0] * 4)])
    assert st.skipped and st.distill == {}
