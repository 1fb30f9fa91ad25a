"""Truncated importance sampling: the sampler's raw log-probs, the weights, and the learner."""

from __future__ import annotations

import math

import pytest
import torch
from _training_helpers import PROMPTS, random_policy

from swarmrl.brain.base import RolloutRequest, ScoredGroup
from swarmrl.brain.lm import LMBrain
from swarmrl.config import GenerationConfig, GRPOConfig, NodeConfig
from swarmrl.training.grpo import grpo_loss, truncated_importance_weights
from swarmrl.training.learner import Learner, TokenGroup

PROMPT = [81, 58, 32, 49, 32, 43, 32, 49, 10, 65, 58]  # "Q: 1 + 1\nA:"
COMPS = [[50, 256], [51, 256], [52, 53, 54], [50, 60, 256]]
REWARDS = [1.0, 0.0, 0.0, 1.0]


def test_weights_by_hand() -> None:
    trainer = torch.log(torch.tensor([[0.5, 0.2, 0.3, 0.9]]))
    sampler = torch.log(torch.tensor([[0.25, 0.4, float("nan"), 0.1]]))
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last token is padding
    w, st = truncated_importance_weights(trainer, sampler, mask, cap=1.5)
    # ratios 2 (capped to 1.5), 0.5, no sampler value (1), padding (1)
    assert torch.allclose(w, torch.tensor([[1.5, 0.5, 1.0, 1.0]]))
    assert st["tis_weight_mean"] == pytest.approx(1.0)
    assert st["tis_capped_frac"] == pytest.approx(0.5)
    # k3 of r = 2 and r = 0.5: r - 1 - ln r
    assert st["mismatch_kl"] == pytest.approx(((1 - math.log(2)) + (-0.5 + math.log(2))) / 2)
    assert truncated_importance_weights(trainer, sampler * float("nan"), mask, 2.0)[1] == {}


def test_loss_scales_per_token() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.4], [0.3, 0.2]])).requires_grad_()
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 2)
    w = torch.tensor([[2.0, 1.0], [1.0, 0.5]])
    cfg = GRPOConfig(loss_type="dapo")
    plain, _ = grpo_loss(logp, None, adv, mask, cfg)
    weighted, _ = grpo_loss(logp, None, adv, mask, cfg, token_weights=w)
    # one pass, ratio 1: per-token loss is -A, so dapo = -sum(w * A) / 4
    assert plain.item() == pytest.approx(0.0)
    assert weighted.item() == pytest.approx(-(2.0 + 1.0 - 1.0 - 0.5) / 4)
    weighted.backward()
    assert torch.allclose(logp.grad, -(w * adv[:, None]) / 4)


def _grad_norm(sampler_shift: float | None, cap: float) -> tuple[float, dict]:
    """One step on the same group from the same init; the sampler's log-probs are the trainer's
    own shifted by ``sampler_shift`` nats (None: no sampler log-probs at all)."""
    policy = random_policy()
    learner = Learner(policy, GRPOConfig(tis_cap=cap, autocast="off"))
    sampled = None
    if sampler_shift is not None:
        with torch.no_grad():
            logp, _ = policy.token_logprobs([PROMPT] * 4, COMPS)
        sampled = [(logp[i, : len(c)] + sampler_shift).tolist() for i, c in enumerate(COMPS)]
    stats = learner.train_step([TokenGroup(PROMPT, COMPS, REWARDS, sampler_logprobs=sampled)])
    return stats.grad_norm, stats.tis


def test_learner_weights_the_gradient() -> None:
    base, none = _grad_norm(None, cap=2.0)
    assert none == {}
    same, st = _grad_norm(0.0, cap=2.0)  # sampler agrees with the trainer: weight 1
    assert same == pytest.approx(base, rel=1e-5)
    assert st["tis_weight_mean"] == pytest.approx(1.0) and st["mismatch_kl"] == pytest.approx(0)
    # the sampler gave every token half the trainer's probability: weight 2, under the cap
    double, st = _grad_norm(-math.log(2), cap=3.0)
    assert double == pytest.approx(2 * base, rel=1e-4)
    assert st["tis_capped_frac"] == 0 and st["mismatch_kl"] == pytest.approx(1 - math.log(2))
    capped, st = _grad_norm(-math.log(2), cap=1.5)
    assert capped == pytest.approx(1.5 * base, rel=1e-4) and st["tis_capped_frac"] == 1.0
    off, st = _grad_norm(-math.log(2), cap=0.0)  # tis_cap = 0 turns it off
    assert off == pytest.approx(base, rel=1e-5) and st == {}


def test_rows_of_the_wrong_length_are_not_weighted() -> None:
    learner = Learner(random_policy(), GRPOConfig(autocast="off"))
    bad = [[-1.0]] * 4  # one log-prob for completions of 2-3 tokens: ignored, not misaligned
    stats = learner.train_step([TokenGroup(PROMPT, COMPS, REWARDS, sampler_logprobs=bad)])
    assert not stats.skipped and stats.tis == {}


@pytest.mark.parametrize("backend,decode", [("fast", "model"), ("fast", "lean"), ("hf", "auto")])
def test_raw_logprobs_are_the_trainers(backend, decode) -> None:
    # Sampling at temperature 0.7 / top_p 0.9 changes the distribution sampled from, not the
    # model's: the raw log-probs are what the trainer computes (fp32), the processed are not.
    policy = random_policy()
    cfg = GenerationConfig(backend=backend, decode=decode, temperature=0.7, top_p=0.9,
                           max_new_tokens=8)
    samples = [s for g in policy.generate(PROMPTS[:2], 3, cfg) for s in g]
    logp, _ = policy.token_logprobs([s.prompt_ids for s in samples],
                                    [s.completion_ids for s in samples])
    for i, s in enumerate(samples):
        n = len(s.completion_ids)
        assert len(s.raw_logprobs) == n
        assert torch.allclose(logp[i, :n], torch.tensor(s.raw_logprobs), atol=1e-4)
    assert any(abs(a - b) > 1e-3 for s in samples
               for a, b in zip(s.logprobs, s.raw_logprobs, strict=True))


def _brain(decode: str) -> LMBrain:
    cfg = NodeConfig.model_validate({
        "model": {"name": "tiny-0.5m", "warm_start": False, "device": "cpu"},
        "generation": {"decode": decode, "max_new_tokens": 8, "group_size": 4},
        "grpo": {"autocast": "off"},
    })
    return LMBrain.from_config(cfg, progress=False)


def _own_step(brain: LMBrain) -> dict[str, float]:
    request = RolloutRequest(prompt=PROMPTS[0])
    comps = brain.rollout([request], 4)[0]
    group = ScoredGroup(PROMPTS[0], comps, [1.0, 0.0, 0.0, 1.0])
    return brain.train([group]).extra


def test_brain_measures_the_samplers_mismatch() -> None:
    exact = _own_step(_brain("lean"))  # fp32 sampler, fp32 trainer: nothing to correct
    assert exact["mismatch_kl"] < 1e-6 and exact["tis_weight_mean"] == pytest.approx(1, abs=1e-3)
    bf16 = _own_step(_brain("lean-bf16"))  # a bf16 sampler against the fp32 trainer
    assert bf16["mismatch_kl"] > 10 * max(exact["mismatch_kl"], 1e-9)
    assert bf16["tis_weight_mean"] != pytest.approx(1, abs=1e-6)


def _sender_step(senders: list, cap: float) -> tuple[float, dict]:
    """One step on the same group from the same init, its completions claimed by a peer."""
    learner = Learner(random_policy(), GRPOConfig(autocast="off"), sender_cap=cap)
    groups = [TokenGroup(PROMPT, COMPS, REWARDS, sender_logprobs=senders, local=False),
              TokenGroup(PROMPT, COMPS, [1.0] * 4)]  # no signal: not trained, no weight
    stats = learner.train_step(groups)
    weight = stats.group_weights[0]
    assert stats.group_weights[1] is None and weight is not None
    if stats.tis.get("sender_tis_weight_mean") is not None:  # what 'valued' sampling reads
        assert weight == pytest.approx(stats.tis["sender_tis_weight_mean"], rel=1e-5)
    return stats.grad_norm, stats.tis


def test_swarm_samples_are_weighed_by_their_senders_claims() -> None:
    """Per token when our ids match the sender's, else the whole text's ratio normalised by our
    token count (GSPO); capped at 1, so a claim can only lower its own sample's weight."""
    policy = random_policy()
    with torch.no_grad():
        logp, _ = policy.token_logprobs([PROMPT] * 4, COMPS)
    ours = [logp[i, : len(c)].tolist() for i, c in enumerate(COMPS)]
    base, st = _sender_step([None] * 4, cap=1.0)
    assert st == {}
    # the sender found every token twice as likely as we do: weight 1/2 per token
    half = [[x + math.log(2) for x in row] for row in ours]
    norm, st = _sender_step(half, cap=1.0)
    assert norm == pytest.approx(base / 2, rel=1e-4)
    assert st["sender_tis_weight_mean"] == pytest.approx(0.5, rel=1e-5)
    # the same as sums over the text (another tokenizer): the same per-token weight
    sums = [sum(row) + len(row) * math.log(2) for row in ours]
    assert _sender_step(sums, cap=1.0)[0] == pytest.approx(base / 2, rel=1e-4)
    # a forged claim of a tiny probability: the weight stops at the cap of 1
    forged, st = _sender_step([-1e4] * 4, cap=1.0)
    assert forged == pytest.approx(base, rel=1e-4) and st["sender_tis_capped_frac"] == 1.0
    # rows whose length is not our token count are left unweighted; cap 0 turns it off
    assert _sender_step([[-0.1]] * 4, cap=1.0) == (pytest.approx(base, rel=1e-5), {})
    assert _sender_step(half, cap=0.0) == (pytest.approx(base, rel=1e-5), {})


def test_align_keeps_the_swarm_from_undoing_the_nodes_own_groups() -> None:
    """A swarm group that teaches exactly the opposite of the node's own: summed, the two
    cancel and nothing is learned; with sapo.align the swarm's gradient loses its component
    against ours, and the step is the one the node's own group alone would take."""
    mine = TokenGroup(PROMPT, COMPS, REWARDS)
    theirs = TokenGroup(PROMPT, COMPS, [1.0 - r for r in REWARDS], local=False)

    def step(groups: list[TokenGroup], align: bool) -> tuple[torch.Tensor, float, dict]:
        policy = random_policy()
        before = torch.cat([p.detach().flatten().clone() for p in policy.model.parameters()])
        learner = Learner(policy, GRPOConfig(autocast="off"), align=align)
        stats = learner.train_step(groups)
        after = torch.cat([p.detach().flatten() for p in policy.model.parameters()])
        return after - before, stats.grad_norm, stats.tis

    alone, norm_alone, _ = step([mine], align=False)
    _, norm_cancelled, _ = step([mine, theirs], align=False)
    aligned, norm_aligned, st = step([mine, theirs], align=True)
    assert norm_cancelled < 1e-4 * norm_alone  # summed, the two groups teach nothing
    assert st["align_cos"] == pytest.approx(-1.0, abs=1e-4)
    # our own group's gradient, over a batch of twice the tokens: half its norm alone
    assert norm_aligned == pytest.approx(norm_alone / 2, rel=1e-4)
    assert torch.allclose(aligned, alone, atol=1e-6)  # Adam's first step: the gradient's sign
    # groups that agree are left alone: the cosine is logged and nothing is projected
    _, norm_agree, st = step([mine, TokenGroup(PROMPT, COMPS, REWARDS, local=False)], align=True)
    assert st["align_cos"] == pytest.approx(1.0, abs=1e-4)
    assert norm_agree == pytest.approx(norm_alone, rel=1e-4)


def test_the_swarms_value_is_what_its_gradient_does_for_the_nodes_own() -> None:
    """sapo.adaptive's measure: a swarm group that teaches what the node's own groups teach is
    worth as much per row as an own one; one that teaches the opposite, minus as much. The
    update itself is the one without the measurement."""
    mine = [TokenGroup(PROMPT, COMPS, REWARDS)] * 2  # halves A and B
    same = TokenGroup(PROMPT, COMPS, REWARDS, local=False)
    opposite = TokenGroup(PROMPT, COMPS, [1.0 - r for r in REWARDS], local=False)

    def step(groups: list[TokenGroup], measure: bool, align: bool = False) -> tuple[list, dict]:
        learner = Learner(random_policy(), GRPOConfig(autocast="off"), align=align,
                          measure=measure)
        stats = learner.train_step(groups)
        return [p.grad.clone() for p in learner.params], stats.tis

    plain, tis = step(mine + [same], measure=False)
    assert "value_own" not in tis
    grads, tis = step(mine + [same], measure=True)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads, plain, strict=True))
    assert tis["value_own"] > 0
    assert tis["value_swarm"] == pytest.approx(tis["value_own"], rel=1e-4)
    _, tis = step(mine + [opposite], measure=True)
    assert tis["value_swarm"] == pytest.approx(-tis["value_own"], rel=1e-4)
    # with align as well: the same figures, and PCGrad's step
    aligned, tis_aligned = step(mine + [opposite], measure=True, align=True)
    expect, _ = step(mine + [opposite], measure=False, align=True)
    assert tis_aligned["value_swarm"] == pytest.approx(tis["value_swarm"], rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(aligned, expect, strict=True))
    # nothing to compare against (one own group, or no swarm group): not measured
    assert "value_own" not in step(mine[:1] + [same], measure=True)[1]
    assert "value_own" not in step(mine, measure=True)[1]
