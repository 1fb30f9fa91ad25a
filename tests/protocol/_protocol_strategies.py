"""Hypothesis strategies for every wire message, with explicit, small bounds (fast to run)."""

from __future__ import annotations

from hypothesis import strategies as st

from swarmrl.protocol.messages import (
    FreeFormTask,
    HardwareSummary,
    PeerCard,
    RolloutGroup,
    SampledLogprobs,
    SamplerInfo,
    TaskProposal,
    TaskSpec,
    TeacherReply,
    TeacherRequest,
)

names = st.from_regex(r"\A[A-Za-z0-9_.:/+-]{1,64}\Z")
peer_ids = st.from_regex(r"\A[1-9A-HJ-NP-Za-km-z]{1,128}\Z")
text = st.text(max_size=40)
short = st.text(max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False)
param_values = st.one_of(
    st.booleans(),
    st.integers(-(2**53), 2**53),
    finite,
    st.text(max_size=20),
)
u53 = st.integers(0, 2**53)

task_specs = st.builds(
    TaskSpec,
    family=names,
    family_version=st.text(max_size=32),
    params=st.dictionaries(names, param_values, max_size=5),
    seed=st.integers(0, 2**63 - 1),
    index=st.integers(0, 2**31),
)
free_tasks = st.builds(
    FreeFormTask,
    prompt=st.text(min_size=1, max_size=60),
    reference_answer=text,
    verifier=names,
    creator=st.none() | peer_ids,
    created_round=st.integers(0, 2**31),
)
tasks = task_specs | free_tasks
samplers = st.builds(
    SamplerInfo,
    model_id=short,
    tokenizer_fingerprint=short,
    policy_version=u53,
    temperature=st.floats(0.0, 10.0),
    top_p=st.floats(0.0, 1.0, exclude_min=True),
    max_new_tokens=st.integers(0, 8192),
)
@st.composite
def rollout_groups(draw: st.DrawFn) -> RolloutGroup:
    completions = draw(st.lists(text, min_size=1, max_size=6))
    logprobs = None
    if draw(st.booleans()):  # the sender's sampling log-probs: sums, and per token or not
        rows = [draw(st.lists(st.floats(-1e4, 0.0), max_size=5)) for _ in completions]
        logprobs = SampledLogprobs(
            sums=[max(-1e7, sum(r)) for r in rows], counts=[len(r) for r in rows],
            tokens=rows if draw(st.booleans()) else None,
        )
    return RolloutGroup(
        task=draw(tasks), completions=completions, sampler=draw(samplers),
        claimed_rewards=draw(st.none() | st.lists(st.floats(-1e6, 1e6), max_size=6)),
        round=draw(u53), logprobs=logprobs,
    )


task_proposals = st.builds(TaskProposal, task=tasks, creator_round=u53, note=short)
hardware = st.builds(
    HardwareSummary,
    device=st.sampled_from(["cpu", "cuda", "mps", "other"]),
    accelerator=short,
    memory_gb=st.floats(0.0, 1e5),
    cpus=st.integers(0, 1_000_000),
)
peer_cards = st.builds(
    PeerCard,
    peer_id=peer_ids,
    swarm_id=st.text(max_size=30),
    roles=st.lists(st.sampled_from(["solver", "creator", "teacher", "bootstrap"]), max_size=8),
    model_id=short,
    tokenizer_fingerprint=short,
    policy_version=u53,
    hardware=hardware,
    listen_addrs=st.lists(short, max_size=4),
    software_version=st.text(max_size=32),
    protocol_version=st.integers(0, 2**16),
)
token_ids = st.lists(st.integers(0, 2**31), max_size=20)
teacher_requests = st.builds(
    TeacherRequest,
    request_id=st.integers(0, 2**63 - 1),
    tokenizer_fingerprint=short,
    prompt_ids=token_ids,
    completion_ids=st.lists(token_ids, min_size=1, max_size=4),
)
teacher_replies = st.builds(
    TeacherReply,
    request_id=st.integers(0, 2**63 - 1),
    logprobs=st.lists(st.lists(st.floats(-1e4, 0.0), max_size=20), max_size=4),
    error=st.none() | short,
)

STRATEGIES = {
    "rollout_group": rollout_groups(),
    "task_proposal": task_proposals,
    "peer_card": peer_cards,
    "teacher_request": teacher_requests,
    "teacher_reply": teacher_replies,
}
messages = st.one_of(*STRATEGIES.values())
