"""Learner: one GRPO step moves the weights, bumps the version, and respects the config."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _training_helpers import random_policy

from swarmrl.brain.lm import LMBrain
from swarmrl.config import GRPOConfig, NodeConfig
from swarmrl.training.learner import Learner, TokenGroup
from swarmrl.training.precision import fast_bf16

PROMPT = [81, 58, 32, 49, 32, 43, 32, 49, 10, 65, 58]  # "Q: 1 + 1\nA:"


def group(rewards=(1.0, 0.0, 0.0, 1.0), truncated=None) -> TokenGroup:
    comps = [[50, 256], [51, 256], [52, 53, 54], [50, 60, 256]][: len(rewards)]
    return TokenGroup(PROMPT, comps, list(rewards), truncated)


def weights(learner: Learner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.policy.model.parameters()]


def test_step_changes_weights_and_version() -> None:
    learner = Learner(random_policy(), GRPOConfig(learning_rate=1e-3))
    before = weights(learner)
    stats = learner.train_step([group(), group((1.0, 1.0, 1.0, 1.0))])
    assert not stats.skipped and learner.policy.version == 1 == stats.policy_version
    assert stats.groups == 2 and stats.groups_with_signal == 1 and stats.groups_trained == 1
    assert stats.sequences == 4 and stats.tokens == 10
    assert stats.reward_mean == 0.75 and stats.grad_norm > 0 and stats.seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, weights(learner), strict=True))


def test_repeated_steps_raise_rewarded_logprob() -> None:
    learner = Learner(random_policy(), GRPOConfig(learning_rate=1e-3))
    pol = learner.policy

    def good() -> float:
        with torch.no_grad():
            return pol.token_logprobs([PROMPT], [[50, 256]])[0].sum().item()

    start = good()
    for _ in range(5):
        learner.train_step([group()])
    assert good() > start


def test_zero_advantage_groups_are_dropped() -> None:
    learner = Learner(random_policy(), GRPOConfig())
    before = weights(learner)
    stats = learner.train_step([group((0.0, 0.0, 0.0, 0.0)), group((1.0, 1.0, 1.0, 1.0))])
    assert stats.skipped and stats.groups_with_signal == 0 and learner.policy.version == 0
    assert all(torch.equal(a, b) for a, b in zip(before, weights(learner), strict=True))
    assert learner.train_step([]).skipped


def test_keeping_zero_advantage_groups() -> None:
    learner = Learner(random_policy(), GRPOConfig(drop_zero_advantage=False))
    stats = learner.train_step([group((0.0, 0.0, 0.0, 0.0)), group()])
    assert stats.groups_trained == 2 and stats.sequences == 8


def test_several_iterations_let_the_clip_act() -> None:
    learner = Learner(random_policy(), GRPOConfig(learning_rate=2e-2, num_iterations=4))
    stats = learner.train_step([group()])
    assert learner.policy.version == 1  # one version per batch, whatever the passes
    assert stats.clip_frac > 0


def test_one_iteration_skips_the_old_logprob_forward(monkeypatch) -> None:
    learner = Learner(random_policy(), GRPOConfig(num_iterations=1))
    calls = []
    orig = learner.policy.token_logprobs
    monkeypatch.setattr(learner.policy, "token_logprobs",
                        lambda *a: calls.append(torch.is_grad_enabled()) or orig(*a))
    learner.train_step([group()])
    assert calls == [True]
    learner.cfg = GRPOConfig(num_iterations=2)
    calls.clear()
    learner.train_step([group()])
    assert calls == [False, True, True]


def test_kl_reference_only_when_beta_positive() -> None:
    assert Learner(random_policy(), GRPOConfig()).ref_model is None
    learner = Learner(random_policy(), GRPOConfig(beta=0.1, learning_rate=1e-2, num_iterations=2))
    assert learner.ref_model is not None
    stats = learner.train_step([group()])
    assert stats.kl > 0  # the second pass sees a policy that moved away from the reference
    assert all(not p.requires_grad for p in learner.ref_model.parameters())


def test_mask_truncated() -> None:
    learner = Learner(random_policy(), GRPOConfig(mask_truncated=True))
    stats = learner.train_step([group(truncated=[False, False, True, False])])
    assert stats.tokens == 7  # the 3-token truncated completion is excluded
    all_cut = learner.train_step([group(truncated=[True] * 4)])
    assert all_cut.skipped


def test_from_node_config() -> None:
    cfg = NodeConfig()
    learner = Learner(random_policy(), cfg)
    assert learner.cfg == cfg.grpo and learner.max_new_tokens == cfg.generation.max_new_tokens


def test_adamw_is_fused_on_cpu() -> None:
    learner = Learner(random_policy(), GRPOConfig())
    assert all(g["fused"] for g in learner.optimizer.param_groups)


def test_resume_keeps_this_machines_adamw_kernel(tmp_path) -> None:
    learner = Learner(random_policy(), GRPOConfig(autocast="off"))
    learner.train_step([group()])
    for g in learner.optimizer.param_groups:  # as if saved where no fused kernel exists
        g["fused"], g["foreach"] = False, None
    learner.save(tmp_path, step=1)
    fresh = Learner(random_policy(), GRPOConfig(autocast="off"))
    assert fresh.resume(tmp_path) is not None
    assert all(g["fused"] for g in fresh.optimizer.param_groups)
    assert not fresh.train_step([group()]).skipped


def test_the_nodes_resume_keeps_this_machines_adamw_kernel(tmp_path) -> None:
    """LMBrain.load (the daemon's and `swarmrl train`'s resume) takes the same path as
    Learner.resume: the saved state, this machine's fused/foreach flags."""
    cfg = NodeConfig(grpo=GRPOConfig(autocast="off"))
    saved = LMBrain(policy := random_policy(), Learner(policy, cfg), cfg)
    saved.learner.train_step([group()])
    for g in saved.learner.optimizer.param_groups:  # as if saved where no fused kernel exists
        g["fused"], g["foreach"] = False, False
    path = saved.save(tmp_path, step=1, extra={"step": 1}, keep=2)
    fresh = LMBrain(policy := random_policy(), Learner(policy, cfg), cfg)
    optimizer = fresh.learner.optimizer
    here = [(g["fused"], g["foreach"]) for g in optimizer.param_groups]
    assert all(fused for fused, _ in here)  # this machine has the fused kernel (CPU does)
    assert fresh.load(path) == {"step": 1}
    # (read anew: load_state_dict replaces the param_groups list)
    assert [(g["fused"], g["foreach"]) for g in optimizer.param_groups] == here
    assert fresh.learner.optimizer.state and fresh.policy_version == 1  # the rest came back
    assert not fresh.learner.train_step([group()]).skipped


def test_bf16_autocast_trains_with_fp32_weights_and_loss() -> None:
    learner = Learner(random_policy(), GRPOConfig(learning_rate=1e-3, autocast="bf16"))
    assert learner.autocast
    dtypes = set()
    mlp = learner.policy.model.model.layers[0].mlp.down_proj
    mlp.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    before = weights(learner)
    for _ in range(3):
        stats = learner.train_step([group()])
        assert torch.isfinite(torch.tensor(stats.loss)) and stats.grad_norm > 0
    assert dtypes == {torch.bfloat16}  # the forward ran in bf16 ...
    after = weights(learner)
    assert all(p.dtype == torch.float32 for p in after)  # ... on fp32 master weights
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_autocast_off_and_auto() -> None:
    assert not Learner(random_policy(), GRPOConfig(autocast="off")).autocast
    auto = Learner(random_policy(), GRPOConfig(autocast="auto")).autocast
    assert auto == fast_bf16(torch.device("cpu"))


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("measure", [False, True])
def test_micro_batches_make_the_one_pass_update(loss_type: str, align: bool, measure: bool) -> None:
    """Passes of one or two groups, gradients accumulated: the gradient of one pass over the
    batch, with swarm groups (importance weights), a truncated row, two iterations (the clip),
    PCGrad and the swarm's value measured per part (sapo.adaptive), and the same figures."""
    swarm = TokenGroup(PROMPT, [[50, 256], [52, 53], [51, 256], [52, 53, 54]],
                       [0.0, 1.0, 1.0, 0.0], sender_logprobs=[-3.0, [-0.5, -4.0], -2.0, None],
                       local=False)
    other = TokenGroup([81, 58, 32, 50, 10, 65, 58], [[51], [52, 256], [50, 50, 50]],
                       [1.0, 0.0, 0.5], truncated=[False, False, True])
    groups = [group(), group((1.0, 1.0, 1.0, 1.0)), swarm, other]  # the second has no signal

    def step(micro: int) -> tuple[list[torch.Tensor], Any]:
        cfg = GRPOConfig(learning_rate=1e-3, loss_type=loss_type, num_iterations=2,
                         mask_truncated=True, autocast="off", micro_batch_groups=micro)
        learner = Learner(random_policy(), cfg, max_new_tokens=4, sender_cap=1.0, align=align,
                          measure=measure and micro > 0)
        stats = learner.train_step(groups)
        # the second iteration's gradient: after the first update, so it checks that too
        # (weights themselves are not compared: Adam's first step divides each gradient by its
        # own size, so rounding in gradients near 0 moves weights by up to ~1% of lr)
        return [p.grad.clone() for p in learner.params], stats

    one, one_st = step(0)
    assert max(float(g.abs().max()) for g in one) > 1e-3
    for micro in (1, 2):
        grads, st = step(micro)
        assert st.tokens == one_st.tokens == 22 and st.groups_trained == 3
        assert st.loss == pytest.approx(one_st.loss, abs=1e-6)
        assert st.grad_norm == pytest.approx(one_st.grad_norm, rel=1e-5)
        assert st.group_weights[1] is None
        assert st.group_weights == pytest.approx(one_st.group_weights, abs=1e-6)
        assert st.tis.keys() - {"value_own", "value_swarm"} == one_st.tis.keys()
        assert ("value_swarm" in st.tis) == measure
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7)
                   for a, b in zip(grads, one, strict=True))


def test_an_update_frees_the_samplers_copy_of_the_weights() -> None:
    """The lean step's fused weights are stale after an update: the learner frees them before
    its passes (their memory is the update's), and the next rollout re-reads the new weights."""
    policy = random_policy()
    cfg = NodeConfig().generation
    policy.generate(["Q: 1 + 1\nA:"], 2, cfg)
    backend = policy._backends[cfg.backend]
    assert backend._lean is not None
    learner = Learner(policy, GRPOConfig(learning_rate=1e-2))
    learner.train_step([group()])
    assert backend._lean is None
    greedy = cfg.model_copy(update={"temperature": 0.0, "decode": "lean"})
    fused = policy.generate(["Q: 1 + 1\nA:"], 1, greedy)[0][0].completion_ids
    plain = policy.generate(["Q: 1 + 1\nA:"], 1, greedy.model_copy(update={"decode": "model"}))
    assert fused == plain[0][0].completion_ids
