"""Batch assembly: external groups are re-scored by this node, chosen by rule, carried as text."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import trio
from _node_helpers import group, node_config, problem, sapo, stub_node, wrong
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmrl.brain.base import Completion, ScoredGroup, TrainStats
from swarmrl.node.announce import sampled_logprobs
from swarmrl.protocol.messages import RolloutGroup, SamplerInfo
from swarmrl.swarm.sapo import (
    Rescorer,
    SharingSplit,
    SkillTracker,
    SwarmPool,
    from_wire,
    select_external,
    to_wire,
)
from swarmrl.tasks import ArithFamily, format_prompt, register_family, unregister_family, verify

WEAK = "arith_weak_family"  # a second family, so the node can be strong at one, weak at other


class _WeakArith(ArithFamily):
    name = WEAK


@pytest.fixture(autouse=True, scope="module")
def _weak_family():
    # registered for this module only: the registry is process-wide
    register_family(_WeakArith(), replace=True)
    yield
    unregister_family(WEAK)


def pool_of(groups, **cfg) -> SwarmPool:
    pool = SwarmPool(sapo(pool_capacity=1024, per_peer_share=1.0, **cfg))
    for k, g in enumerate(groups):
        assert pool.add(g, f"peer{k % 3}", 0) is None
    return pool


def test_a_claimed_reward_is_never_trusted() -> None:
    ans = problem(1).answer
    lie = group(
        1,
        completions=[f"<answer>{wrong(ans)}</answer>", f"<answer>{ans}</answer>"],
        claimed=[1.0, 0.0],
    )
    pool = pool_of([lie])
    rescorer = Rescorer("short", 0.0)
    chosen = select_external(pool, rescorer, SkillTracker(), sapo(external=4), random.Random(0))
    assert len(chosen) == 1
    scored = rescorer.rescore(chosen[0])
    assert scored.rewards == [0.0, 1.0]
    assert not scored.local and scored.family == "arith" and scored.answer == ans
    # the node trains on continuations of its own prompt
    assert scored.prompt == format_prompt(problem(1), "short")
    assert [c.text for c in scored.completions] == [f"{wrong(ans)}</answer>", f"{ans}</answer>"]
    assert all(c.token_ids is None for c in scored.completions)  # re-tokenized by the brain


def test_all_wrong_groups_claimed_right_have_no_signal_and_are_dropped() -> None:
    ans = problem(2).answer
    forged = group(
        2, completions=[f"<answer>{wrong(ans)}</answer>", "<answer>x</answer>"], claimed=[1.0, 1.0]
    )
    rescorer = Rescorer("short", 0.0)
    pool = pool_of([forged])
    drop = sapo(external=4, drop_zero_advantage=True)
    assert select_external(pool, rescorer, SkillTracker(), drop, random.Random(0)) == []
    keep = sapo(external=4, drop_zero_advantage=False)
    (entry,) = select_external(pool, rescorer, SkillTracker(), keep, random.Random(0))
    assert rescorer.rescore(entry).rewards == [0.0, 0.0]


def test_only_groups_with_signal_fill_the_external_slots() -> None:
    signal = [group(i) for i in range(3)]
    flat = [group(10 + i, completions=["<answer>x</answer>"] * 3) for i in range(5)]
    pool = pool_of(signal + flat)
    rescorer = Rescorer("short", 0.0)
    chosen = select_external(pool, rescorer, SkillTracker(), sapo(external=8), random.Random(0))
    assert sorted(e.group.content_id() for e in chosen) == sorted(g.content_id() for g in signal)
    assert all(rescorer.rescore(e).has_signal for e in chosen)
    assert select_external(pool, rescorer, SkillTracker(), sapo(external=0), random.Random(0)) == []


def test_at_most_candidates_entries_are_rescored_per_step() -> None:
    pool = pool_of([group(i) for i in range(60)])
    cfg = sapo(external=2, candidates=10)
    chosen = select_external(pool, Rescorer("short", 0.0), SkillTracker(), cfg, random.Random(3))
    assert len(chosen) == 2
    assert sum(e.scored is not None for e in pool.entries.values()) <= 10


def test_uniform_choice_is_distinct_and_repeats_with_the_seed() -> None:
    pool = pool_of([group(i) for i in range(20)])
    rescorer = Rescorer("short", 0.0)
    cfg = sapo(external=5, sampling="uniform")

    def pick(seed: int) -> list[str]:
        chosen = select_external(pool, rescorer, SkillTracker(), cfg, random.Random(seed))
        return [e.content_id for e in chosen]

    assert len(set(pick(1))) == 5
    assert pick(1) == pick(1)
    assert pick(1) != pick(2)


def _family_share(rule: str, trials: int = 300) -> float:
    groups = [group(i) for i in range(8)] + [group(i, family=WEAK) for i in range(8)]
    pool = pool_of(groups)
    rescorer = Rescorer("short", 0.0)
    skills = SkillTracker()
    skills.update("arith", 1.0)  # solved every time: nothing left to learn there
    skills.update(WEAK, 0.0)
    cfg = sapo(external=2, sampling=rule)
    rng = random.Random(1234)
    picked: Counter[str] = Counter()
    for _ in range(trials):
        for e in select_external(pool, rescorer, skills, cfg, rng):
            picked[rescorer.rescore(e).family] += 1
    return picked[WEAK] / sum(picked.values())


def test_learnable_prefers_families_the_node_is_weak_at() -> None:
    assert _family_share("learnable") > 0.85
    assert 0.35 < _family_share("uniform") < 0.65


def test_learnable_prefers_groups_with_local_variance() -> None:
    signal = [group(i) for i in range(8)]
    flat = [
        group(10 + i, completions=["<answer>x</answer>", "<answer>y</answer>"]) for i in range(8)
    ]
    pool = pool_of(signal + flat)
    rescorer = Rescorer("short", 0.0)
    cfg = sapo(external=2, sampling="learnable", drop_zero_advantage=False)
    rng = random.Random(7)
    picks = [
        rescorer.rescore(e).has_signal
        for _ in range(300)
        for e in select_external(pool, rescorer, SkillTracker(), cfg, rng)
    ]
    assert sum(picks) / len(picks) > 0.9


@pytest.mark.parametrize("style", ["short", "instruct"])
def test_honest_groups_score_the_same_locally_and_after_the_wire(style: str) -> None:
    """A sender's own rewards equal every receiver's re-scores, whatever the prompt styles."""
    prob = problem(5)
    prompt = format_prompt(prob, style)
    right = f"{prob.answer}</answer>" if style == "short" else f"<answer>{prob.answer}</answer>"
    comps = [right, right.replace(prob.answer, wrong(prob.answer)), "garbage"]
    local = [verify(prob, c, style).reward for c in comps]
    assert local == [1.0, 0.0, 0.0]
    wire = group(5, completions=[to_wire(prompt, c) for c in comps], claimed=local)
    for receiver_style in ("short", "instruct"):
        rescorer = Rescorer(receiver_style, 0.0)
        (entry,) = pool_of([wire]).entries.values()
        scored = rescorer.rescore(entry)
        assert scored.rewards == local
        # what the receiver trains on is scored the same by its own local verifier
        assert [verify(prob, c.text, receiver_style).reward for c in scored.completions] == local


def test_short_prompt_wire_format() -> None:
    prompt = format_prompt(problem(1), "short")
    assert prompt.endswith("<answer>")
    assert to_wire(prompt, "36</answer>") == "<answer>36</answer>"
    assert from_wire(prompt, "<answer>36</answer>") == "36</answer>"
    instruct = format_prompt(problem(1), "instruct")
    assert to_wire(instruct, "<answer>36</answer>") == "<answer>36</answer>"
    assert from_wire(instruct, "<answer>36</answer>") == "<answer>36</answer>"


@settings(max_examples=200, deadline=None)
@given(
    completion=st.lists(
        st.sampled_from(["<answer>", "</answer>", "3", "6", "-", " ", "a"]), max_size=8
    ).map("".join),
    style=st.sampled_from(["short", "instruct"]),
)
def test_wire_round_trip(completion: str, style: str) -> None:
    prompt = format_prompt(problem(1), style)
    assert from_wire(prompt, to_wire(prompt, completion)) == completion
    # and scoring the wire text agrees with the sender's own local verdict
    prob = problem(1)
    sent = verify(prob, completion, style).reward
    assert Rescorer(style, 0.0).score_wire(prob, to_wire(prompt, completion)) == sent


def test_a_groups_sampling_logprobs_travel_and_reach_the_learner_by_tokenizer() -> None:
    """The sender's log-probs ride with its group; a receiver with the same tokenizer gets them
    per token, one with another tokenizer only the sums (a sequence-level ratio)."""
    local = ScoredGroup("Q: 1 + 1 =\nA: <answer>", [
        Completion("2</answer>", sampler_logprobs=[-0.5, -0.1, -0.2]),
        Completion("3</answer>", sampler_logprobs=[-2.0, -0.3]),
    ], [1.0, 0.0])
    lp = sampled_logprobs(local)
    assert lp is not None and lp.sums == [-0.8, -2.3] and lp.counts == [3, 2]
    assert lp.tokens == [[-0.5, -0.1, -0.2], [-2.0, -0.3]]
    local.completions[1].sampler_logprobs = None  # a brain that gave none: nothing is sent
    assert sampled_logprobs(local) is None

    texts = ["<answer>2</answer>", "<answer>3</answer>"]
    wire = RolloutGroup(task=group(1).task, completions=texts,
                        sampler=SamplerInfo(tokenizer_fingerprint="abc"), logprobs=lp)
    pool = SwarmPool(sapo())
    pool.add(wire, "peer", 0)
    entry = next(iter(pool.entries.values()))
    same = Rescorer("short", 0.0, fingerprint="abc").rescore(entry)
    assert [c.sender_logprobs for c in same.completions] == lp.tokens
    entry.scored = None
    other = Rescorer("short", 0.0, fingerprint="xyz").rescore(entry)
    assert [c.sender_logprobs for c in other.completions] == [None, None]
    assert [c.sender_logprob_sum for c in other.completions] == [-0.8, -2.3]


def test_valued_sampling_spends_j_on_senders_whose_text_counts() -> None:
    """'valued': a sender whose groups' tokens kept weighing little in this node's updates (a
    policy far from ours) is chosen less; unknown senders start at 1; groups not trained on
    (no signal) say nothing."""
    node = stub_node(node_config(sapo={"local": 2, "external": 2, "sampling": "valued"}))
    far, near = group(1), group(2)
    node.pool.add(far, "far", 0)
    node.pool.add(near, "near", 0)
    entries = {e.sender: e for e in node.pool.entries.values()}
    for _ in range(10):
        node._value_senders([entries["far"], entries["near"]], [0.02, 0.9])
    node._value_senders([entries["near"]], [None])
    assert node._peer_weight("far") < 0.15 < 0.85 < node._peer_weight("near") < 1.0
    assert node._peer_weight("stranger") == 1.0
    uniform = stub_node(node_config())
    uniform._value_senders([entries["far"]], [0.02])
    assert uniform._peer_weight("far") == 1.0  # only 'valued' reads it


PAYS = {"value_own": 1.0, "value_swarm": 2.0}  # a swarm row did twice what an own row did
COSTS = {"value_own": 1.0, "value_swarm": 0.2}


def test_adaptive_sharing_moves_j_on_evidence_only() -> None:
    """sapo.adaptive: J starts at 1 of I + J, rises one a step while the swarm's rows have
    measurably been worth at least an own row's worth (adaptive_price), falls while they have
    measurably not, holds on noise, and never leaves 1..external; the slots go to I."""
    split = SharingSplit(sapo(local=4, external=4, adaptive=True))
    assert (split.local, split.external) == (7, 1)
    for _ in range(3):  # too few measurements to say anything
        split.observe(PAYS)
    assert split.external == 1
    split.observe(PAYS)
    assert (split.local, split.external) == (6, 2)
    for _ in range(10):
        split.observe(PAYS)
    assert (split.local, split.external) == (4, 4)
    noisy = SharingSplit(sapo(local=4, external=4, adaptive=True))
    for k in range(40):  # a margin of +-1 around 0: no evidence either way
        noisy.observe({"value_own": 1.0, "value_swarm": 1.0 + (-1) ** k})
    assert noisy.external == 1
    for _ in range(40):
        split.observe(COSTS)
        split.observe({"clip_frac": 0.0})  # a step that measured nothing changes nothing
    assert (split.local, split.external) == (7, 1)
    cheap = SharingSplit(sapo(local=4, external=4, adaptive=True, adaptive_price=0.1))
    for _ in range(8):  # at a price of 0.1 of an own row, 0.2 pays
        cheap.observe(COSTS)
    assert (cheap.local, cheap.external) == (4, 4)
    resumed = SharingSplit(sapo(local=4, external=4, adaptive=True))
    resumed.load_state_dict(cheap.state_dict())
    assert resumed.external == cheap.external and resumed.margins == cheap.margins
    for cfg in (sapo(local=4, external=4), sapo(local=0, external=4, adaptive=True)):
        fixed = SharingSplit(cfg)  # not adaptive: the configured I/J, whatever is measured
        for _ in range(8):
            fixed.observe(PAYS)
        assert (fixed.local, fixed.external) == (cfg.local, cfg.external)


def test_an_adaptive_node_samples_the_slots_the_swarm_does_not_earn() -> None:
    """With the swarm's rows measured to pay, J rises after 4 measured steps and the node
    samples one group fewer of its own: I + J stays 4."""
    node = stub_node(node_config(sapo={"local": 2, "external": 2, "adaptive": True,
                                       "publish": False}))
    for i in range(16):
        node.pool.add(group(i), f"peer{i % 4}", 0)
    node.brain.train = lambda batch: TrainStats(  # type: ignore[method-assign]
        groups=len(batch), extra=dict(PAYS), group_weights=[1.0] * len(batch))

    async def run() -> list[tuple[int, int]]:
        out = []
        for _ in range(6):
            r = await node.train_one_step()
            out.append((len(r.local_groups), len(r.external_groups)))
        return out

    assert trio.run(run) == [(3, 1)] * 4 + [(2, 2)] * 2
    assert [r["groups_external"] for r in node.metrics.history] == [1, 1, 1, 1, 2, 2]
