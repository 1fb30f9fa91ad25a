"""``[sapo]`` and ``[guard]``: what a node takes from and gives to the swarm, and what it
checks on everything that enters (swarm/sapo.py, swarm/guard.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from swarmrl.config.base import _Section


class SAPOConfig(_Section):
    """Swarm sharing: I local + J external rollout groups per step, and the pool they come from."""

    local: int = Field(default=4, ge=0, description="I: local rollout groups sampled per step.")
    external: int = Field(
        default=4, ge=0, description="J: external groups taken from the swarm pool per step."
    )
    sampling: Literal["uniform", "learnable", "valued"] = Field(
        default="uniform",
        description="How J groups are chosen: 'uniform' (the SAPO paper), 'learnable' "
        "(weight by local reward variance x this node's weakness on the task's family) or "
        "'valued' (weight each sender by what its groups measurably counted in this node's "
        "updates: the running mean importance weight of its tokens; unknown senders 1).",
    )
    adaptive: bool = Field(
        default=False,
        description="Choose J each step from what the swarm's groups measurably do for this "
        "node. Each update estimates, to first order, what a swarm row's gradient does for the "
        "node's own objective and what an own row's does (two halves of its own groups); over "
        "the last 20 updates, J rises by one while the swarm's worth exceeds adaptive_price "
        "times the own's by more than its standard error, falls by one while it is below by as "
        "much, and otherwise holds. It starts at 1 and never goes below (the probe that keeps "
        "measuring); the slots J gives up go to the node's own sampling (I + J stays local + "
        "external). Costs two more backward passes per update.",
    )
    adaptive_price: float = Field(
        default=1.0,
        ge=0.0,
        description="What a swarm row must be worth, as a share of an own row's worth, to earn a "
        "slot: 1 = as much (never slower per step than the node alone); below 1 trades learning "
        "per step for the sampling a swarm group saves.",
    )
    drop_zero_advantage: bool = Field(
        default=True, description="Skip external groups whose local re-scores are all equal."
    )
    publish: bool = Field(default=True, description="Share this node's rollout groups.")
    pool_capacity: int = Field(default=256, ge=1, description="Max external groups held.")
    per_peer_share: float = Field(
        default=0.25, gt=0.0, le=1.0, description="Max fraction of the pool one peer may fill."
    )
    max_age_steps: int = Field(
        default=20,
        ge=0,
        description="Evict external groups received more than this many steps ago.",
    )
    max_staleness: int = Field(
        default=20,
        ge=0,
        description="Evict groups sampled more than this many policy versions before the "
        "sender's latest.",
    )
    max_uses: int = Field(
        default=1, ge=1, description="Times one external group may be trained on."
    )
    candidates: int = Field(
        default=64, ge=1, description="Pool entries re-scored per step when choosing J."
    )
    importance_cap: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Weigh each token of an external completion by min(pi_ours / pi_sender, "
        "cap), pi_sender from the log-probs its group carries: per token when the sender's "
        "tokenizer is ours, else the whole text's ratio normalised by its length (GSPO). The "
        "sender's text was sampled by another policy; this corrects for it (HACPO). At most 1: a "
        "forged log-prob can only lower its own sample's weight. 0 = off (ratio 1 against our "
        "own policy, as genrl does).",
    )
    align: bool = Field(
        default=False,
        description="Take the gradient of this node's own groups and of the swarm's apart; where "
        "they conflict, remove from the swarm's its component against ours (PCGrad), so to first "
        "order the swarm's groups never undo what the node's own teach. One more backward pass "
        "per step; logs align_cos.",
    )


class GuardConfig(_Section):
    """What a node checks on everything that enters from the swarm (swarm/guard.py)."""

    enabled: bool = Field(
        default=True,
        description="Run the guard's checks (rate, regeneration, claims, reputation). Decoding, "
        "signatures, the replay window and the pool's own bounds apply regardless; false is "
        "for experiments that measure what the guard is worth.",
    )
    messages_per_peer_per_s: float = Field(
        default=50.0,
        ge=0.0,
        description="Sustained messages per second accepted from one peer (0 = unlimited); "
        "more is dropped as 'rate_limited' before it is decoded.",
    )
    burst: float = Field(
        default=200.0, ge=1.0, description="Messages one peer may send at once above its rate."
    )
    bytes_per_message: int = Field(
        default=65_536,
        ge=1024,
        description="Byte allowance per message of the rate: a peer may send "
        "messages_per_peer_per_s x this many bytes per second (burst x this at once).",
    )
    sandbox: bool = Field(
        default=True,
        description="Generate peers' tasks and score peers' answers in a worker process with a "
        "time and memory limit (tasks/sandbox.py), never on the node's event loop. A task "
        "over the limit is dropped ('over_budget') and never tried again. A simulation runs "
        "its own nodes' checks in-process regardless (its peers are its own code).",
    )
    sandbox_timeout_s: float = Field(
        default=2.0, gt=0.0, le=60.0,
        description="Seconds one peer task's generation plus the scoring of its answers may take.",
    )
    sandbox_memory_mb: int = Field(
        default=2048, ge=512,
        description="Address-space cap of the sandbox worker, MiB (its interpreter and "
        "reasoning-gym use ~600 MiB of address space before any task).",
    )
    check_claims: bool = Field(
        default=True,
        description="Re-score a group's completions on arrival and drop it ('claim_mismatch') "
        "when a claimed reward differs from ours by more than claim_tolerance.",
    )
    claim_tolerance: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Largest honest difference between a peer's claimed reward and ours "
        "(peers may weigh the format reward differently; correctness must agree).",
    )
    reputation_half_life_s: float = Field(
        default=600.0, gt=0.0, description="Half-life of a peer's record of failed checks."
    )
    ignore_below: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="Ignore every message of a peer whose reputation (1 / (1 + decayed failed "
        "checks)) falls below this, until it decays back (0 = never ignore).",
    )
    downweight: bool = Field(
        default=True,
        description="Weight a peer's groups by its reputation when the J external groups are "
        "chosen.",
    )
    plausibility: bool = Field(
        default=True,
        description="Score chosen external completions under the local policy and drop a "
        "group ('implausible') whose completions are far more surprising than this node's own "
        "samples: catches junk or corrupted reasoning around right answers "
        "(swarm/plausibility.py). Language-model brains only (the simulator's stub has no "
        "policy to score with).",
    )
    plausibility_excess_nats: float = Field(
        default=20.0,
        gt=0.0,
        description="A completion is implausible above this excess surprise (sum over its "
        "tokens of -log p minus the policy's entropy, in nats) ...",
    )
    plausibility_sigmas: float = Field(
        default=4.0,
        gt=0.0,
        description="... and above the running mean of this node's own completions' excess "
        "surprise plus this many standard deviations.",
    )
    plausibility_max_nats: float = Field(
        default=100.0,
        gt=0.0,
        description="... while a sender's own normal (plausibility_quantile of its recent "
        "completions' scores plus plausibility_margin_nats, per peer and model it claims) may "
        "loosen the threshold for its text, up to this many nats and no further: honest "
        "peers with other models or skills score up to ~70 on tiny models, junk around right "
        "answers 180-600 (docs/architecture.md).",
    )
    plausibility_quantile: float = Field(
        default=0.99,
        gt=0.0,
        lt=1.0,
        description="A sender's normal is this quantile of its last plausibility_window "
        "scores (a robust upper tail: honest samples at temperature 1 have a heavier tail than "
        "mean + k standard deviations assumes) ...",
    )
    plausibility_margin_nats: float = Field(
        default=10.0,
        ge=0.0,
        description="... plus this many nats (a group's samples share its prompt, so a hard "
        "prompt lifts them together past a bare quantile).",
    )
    plausibility_window: int = Field(
        default=256,
        ge=8,
        le=65536,
        description="Scores kept per sender for its normal (4 bytes each; the least recently "
        "judged of 4,096 senders are forgotten first).",
    )
    plausibility_group_share: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="Drop a group when at least this share of its completions is implausible "
        "(an honest group may hold one odd sample).",
    )
    plausibility_min_samples: int = Field(
        default=8,
        ge=1,
        description="Own completions scored before the check starts judging (one own group "
        "is scored with every check, so 8 = G judges from the first step).",
    )
