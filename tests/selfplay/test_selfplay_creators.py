"""The parametric creator's bandit, the LM creator's strict parser and reward assembly."""

from __future__ import annotations

import pytest

from swarmrl.brain.base import Completion
from swarmrl.protocol.messages import FreeFormTask, task_key
from swarmrl.selfplay.lm_creator import LMCreator, creator_prompt, parse_problem
from swarmrl.selfplay.parametric import ParametricCreator, build_arms
from swarmrl.selfplay.queue import ProposalQueue
from swarmrl.selfplay.tracker import ProposalTracker
from swarmrl.tasks import TaskError, materialize

SPACE = {"arith": {"max_digits": [1, 2, 3, 4], "terms": [2]}}


def test_arms_cover_the_grid_and_bad_values_are_named() -> None:
    arms = build_arms({"arith": {"max_digits": [1, 2], "terms": [2, 3]}}, {"arith": {"ops": "+"}})
    assert [a.label for a in arms] == [
        "arith(max_digits=1,terms=2)", "arith(max_digits=1,terms=3)",
        "arith(max_digits=2,terms=2)", "arith(max_digits=2,terms=3)",
    ]
    assert all(a.params["ops"] == "+" for a in arms)
    with pytest.raises(TaskError, match="max_digits"):
        build_arms({"arith": {"max_digits": [0]}})
    with pytest.raises(TaskError, match="unknown task family"):
        build_arms({"no_such_family_xyz": {"a": [1]}})


def test_proposals_are_fresh_reproducible_specs_of_the_chosen_arm() -> None:
    c1 = ParametricCreator(build_arms(SPACE), seed=5)
    c2 = ParametricCreator(build_arms(SPACE), seed=5)
    a, b = c1.propose(6), c2.propose(6)
    assert a == b
    assert len({task_key(s) for _, s in a}) == 6
    for arm, spec in a:
        assert spec.params["max_digits"] == c1.arms[arm].params["max_digits"]
        materialize(spec)
    assert sum(x.pending for x in c1.arms) == 6


def test_bandit_finds_the_arm_with_learnable_tasks() -> None:
    """A simulated swarm solves digits d at p = [0.98, 0.6, 0.1, 0.0][d-1]: the arm of 2 digits
    is the one worth proposing, and the creator must come to prefer it."""
    solve = {1: 0.98, 2: 0.6, 3: 0.1, 4: 0.0}
    creator = ParametricCreator(build_arms(SPACE), seed=1, c=0.1)
    picks = []
    for _ in range(150):
        for arm, _spec in creator.propose(2):
            p = solve[creator.arms[arm].params["max_digits"]]
            creator.feedback(arm, p * (1 - p), attempted=True)
            picks.append(creator.arms[arm].params["max_digits"])
    assert creator.best().params["max_digits"] == 2
    late = picks[-100:]
    assert late.count(2) > 0.6 * len(late)
    state = creator.state()
    assert state["best"] == "arith(max_digits=2,terms=2)" and len(state["arms"]) == 4


def test_unattempted_feedback_does_not_move_the_arm_and_state_round_trips() -> None:
    creator = ParametricCreator(build_arms(SPACE), seed=1)
    (arm, _), = creator.propose(1)
    before = creator.arms[arm].value
    creator.feedback(arm, 0.0, attempted=False)
    assert creator.arms[arm].value == before and creator.arms[arm].pending == 0
    creator.feedback(arm, 0.25, attempted=True)
    other = ParametricCreator(build_arms(SPACE), seed=1)
    other.load_state_dict(creator.state_dict())
    assert [a.value for a in other.arms] == [a.value for a in creator.arms]
    assert other.propose(3) == creator.propose(3)


@pytest.mark.parametrize(
    ("text", "truncated", "expected"),
    [
        ("41 + 7 =\nA: 48", False, ("41 + 7 =", "48")),
        ("41 + 7 =\nA: 48\nQ: 1 + 1 =\nA: 2", True, ("41 + 7 =", "48")),  # first one only
        ("41 + 7 =\nA: 4", True, None),  # the answer may have been cut
        ("41 + 7 =\nA: forty", False, None),  # numeric verifier cannot read it
        ("41 + 7 =", False, None),
        ("\nA: 3", False, None),
        ("41 + 7 =\nB: 48", False, None),
        ("41 + 7 =\nA: <answer>48</answer>", False, None),
    ],
)
def test_creator_output_is_parsed_strictly(text, truncated, expected) -> None:
    assert parse_problem(Completion(text, truncated), "numeric") == expected


def test_lm_creator_scores_its_group_by_learnability_once_every_proposal_closed() -> None:
    creator = LMCreator(3, "arith", {}, "numeric", "p(1-p)", penalty=0.2, threshold=0.9)
    req = creator.request(0)
    assert req.prompt.startswith("Q: ") and req.prompt.endswith("\nA: " + req.prompt.split(
        "\nA: ")[1].split("\n")[0] + "\nQ: ")
    comps = [Completion("5 + 5 =\nA: 10"), Completion("junk"), Completion("5 + 5 =\nA: 10"),
             Completion("9 - 2 =\nA: 7")]
    accepted = creator.accept(req.prompt, comps, 0, "12D3KooWExampe", recent=[])
    assert [q for _, q, _ in accepted] == ["5 + 5 =", "5 + 5 =", "9 - 2 ="]
    assert all(isinstance(t, FreeFormTask) and t.verifier == "numeric" for t, _, _ in accepted)
    tracker = ProposalTracker(settle=4, ttl_steps=5, kind="p(1-p)", penalty=0.2)
    for task, q, dup in accepted:
        tracker.add(task, q, 0, None, dup)
    assert len(tracker.open) == 2  # the duplicate is one task
    assert creator.ready_groups() == []
    k1, k2 = (task_key(t) for t, _, _ in accepted[::2])
    tracker.observe(k1, [1.0, 0.0, 1.0, 0.0], "g1")
    for prop in tracker.close_due(1):
        creator.feedback(prop)
    assert creator.ready_groups() == []  # the second proposal is still open
    for prop in tracker.close_due(5):  # expires unattempted
        creator.feedback(prop)
    (group,) = creator.ready_groups()
    # p = 0.5 -> 0.25, minus 0.2 x (1 of 2 other parsed questions is a copy) = 0.15
    assert group.rewards == pytest.approx([0.15, 0.0, 0.15, 0.0])
    assert group.completions is comps and group.family == "creator"
    assert creator.state()["parse_rate"] == pytest.approx(0.75)


def test_creator_prompt_shows_the_solvers_format() -> None:
    assert creator_prompt("3 + 4 =", "7") == "Q: 3 + 4 =\nA: 7\nQ: "


def test_tracker_counts_each_rollout_group_once_and_settles_or_expires() -> None:
    prob = materialize(build_arms(SPACE)[0] and ParametricCreator(build_arms(SPACE), 0)
                       .propose(1)[0][1])
    tr = ProposalTracker(settle=4, ttl_steps=3, kind="p(1-p)", penalty=0.0)
    prop = tr.add(prob.task, prob.question, step=0)
    assert prop is not None and tr.add(prob.task, prob.question, step=0) is None
    assert tr.observe(prop.key, [1.0, 0.0], "a") and not tr.observe(prop.key, [1.0, 1.0], "a")
    assert tr.close_due(1) == []
    assert tr.observe(prop.key, [1.0, 1.0], "b")
    (closed,) = tr.close_due(1)
    assert closed.closed_by == "settled" and closed.p == 0.75
    assert closed.reward == pytest.approx(0.1875)


def test_solver_queue_is_bounded_per_creator_and_filters_by_difficulty() -> None:
    import random

    arms = build_arms(SPACE)
    specs = [s for _, s in ParametricCreator(arms, 0).propose(6)]
    q = ProposalQueue(capacity=4, per_creator=2, max_attempts=2, ttl_steps=5, curriculum=True)
    assert q.offer(specs[0], "A", 0) is None
    assert q.offer(specs[0], "A", 0) == "proposal_duplicate"
    q.offer(specs[1], "A", 0)
    q.offer(specs[2], "A", 0)  # A's oldest makes room
    assert [e.creator for e in q.entries.values()] == ["A", "A"] and q.stats[
        "evicted_creator_share"] == 1
    q.offer(specs[3], "B", 0)
    q.offer(specs[4], "B", 0)
    q.offer(specs[5], "C", 0)  # over capacity: the oldest goes
    assert len(q) == 4
    rng = random.Random(0)
    taken = q.take(4, 1, rng)
    assert len(taken) == 4 and all(e.attempts == 1 for e in taken)
    q.record(taken[0].key, 1.0)  # always solved: no signal here, leaves
    q.record(taken[1].key, 0.0)  # never solved: leaves
    q.record(taken[2].key, 0.5)  # learnable: stays, preferred
    assert q.stats["filtered_always_solved"] == 1 and q.stats["filtered_never_solved"] == 1
    assert taken[2].key in q.entries
    q.take(1, 20, rng)  # far later: everything expired
    assert len(q) == 0 and q.stats["expired"] == 2
