"""Proposals entering from the swarm: queued by solvers, dropped and counted otherwise."""

from __future__ import annotations

from _selfplay_helpers import admit, config, ident, offline_node, wire

from swarmrl.protocol import FreeFormTask, RolloutGroup, TaskProposal, TaskSpec
from swarmrl.protocol.messages import task_key
from swarmrl.tasks import materialize

ME, CREATOR, OTHER = ident(1), ident(2), ident(3)
SOLVER = {"selfplay": {"creator_ratio": 0.5}}


def dropped(node) -> dict[str, int]:
    return {k[8:]: v for k, v in node.metrics.counters.items() if k.startswith("dropped:")}


def test_a_solver_queues_valid_proposals_and_drops_bad_ones_by_reason() -> None:
    node = offline_node(config(**SOLVER), ME)
    good = TaskProposal(task=TaskSpec(family="arith", params={"max_digits": 3}, seed=4, index=0))
    assert admit(node, CREATOR.peer_id, wire(good, CREATOR, 1)) is None
    assert len(node.selfplay.queue) == 1
    again = wire(good, CREATOR, 2)
    bad_params = TaskProposal(task=TaskSpec(family="arith", params={"max_digits": 99}, seed=1,
                                            index=0))
    unknown = TaskProposal(task=TaskSpec(family="no_such_family_xyz", seed=1, index=0))
    bad_verifier = TaskProposal(task=FreeFormTask(prompt="1 + 1 =", reference_answer="2",
                                                  verifier="nope"))
    forged = TaskProposal(task=FreeFormTask(prompt="1 + 1 =", reference_answer="2",
                                            creator=OTHER.peer_id))
    reasons = [
        admit(node, CREATOR.peer_id, again),
        admit(node, CREATOR.peer_id, wire(bad_params, CREATOR, 3)),
        admit(node, CREATOR.peer_id, wire(unknown, CREATOR, 4)),
        admit(node, CREATOR.peer_id, wire(bad_verifier, CREATOR, 5)),
        admit(node, CREATOR.peer_id, wire(forged, CREATOR, 6)),
    ]
    foreign = TaskProposal(task=TaskSpec(family="basic_arithmetic", seed=1, index=0))
    reasons.append(admit(node, CREATOR.peer_id, wire(foreign, CREATOR, 7)))
    assert reasons == ["proposal_duplicate", "out_of_bounds", "foreign_family",
                       "proposal_invalid", "proposal_not_own", "foreign_family"]
    assert dropped(node) == {"proposal_duplicate": 1, "proposal_invalid": 1, "out_of_bounds": 1,
                             "proposal_not_own": 1, "foreign_family": 2}
    assert len(node.selfplay.queue) == 1
    assert node.metrics.counters["admitted:task_proposal"] == 1


def test_a_node_that_takes_no_creator_tasks_drops_proposals_as_unexpected() -> None:
    node = offline_node(config(), ME)  # solver role, creator_ratio 0
    prop = TaskProposal(task=TaskSpec(family="arith", seed=4, index=0))
    assert admit(node, CREATOR.peer_id, wire(prop, CREATOR)) == "unexpected_kind"


def test_a_creator_rescores_swarm_rollouts_on_its_proposals_and_ignores_claims() -> None:
    node = offline_node(config(roles=["creator"]), ME)
    spec = TaskSpec(family="arith", seed=9, index=3)
    prob = materialize(spec)
    node.selfplay.tracker.add(spec, prob.question, step=0)
    right, wrong = f"<answer>{prob.answer}</answer>", f"<answer>{int(prob.answer) + 1}</answer>"
    # A group claiming success on wrong answers is refused by the guard and not counted.
    lie = RolloutGroup(task=spec, completions=[right, wrong, wrong, wrong],
                       claimed_rewards=[1.0, 1.0, 1.0, 1.0])
    assert admit(node, OTHER.peer_id, wire(lie, OTHER)) == "claim_mismatch"
    prop = node.selfplay.tracker.open[task_key(spec)]
    assert prop.attempts == 0
    group = RolloutGroup(task=spec, completions=[right, wrong, wrong, wrong])
    assert admit(node, OTHER.peer_id, wire(group, OTHER, 2)) is None
    assert prop.attempts == 4 and prop.p == 0.25  # its own verdict
    # The same group gossiped again is not counted twice (the replay guard or the tracker).
    admit(node, OTHER.peer_id, wire(group, OTHER, 3))
    assert prop.attempts == 4
