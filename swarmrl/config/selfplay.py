"""``[selfplay]``: asymmetric self-play, creators and solvers (selfplay/)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from swarmrl.config.base import _Section


class SelfPlayConfig(_Section):
    """Asymmetric self-play: creators propose tasks, solvers attempt them (docs/architecture.md).

    A node takes creator tasks when it has the 'solver' role and ``creator_ratio > 0``; it
    proposes tasks when it has the 'creator' role.
    """

    creator_ratio: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Solvers: fraction of the I local task slots per step filled with creator "
        "tasks from the proposal queue (the rest, and any slot the queue cannot fill, come from "
        "the node's own families). 0 = ignore proposals.",
    )
    creator: Literal["parametric", "lm"] = Field(
        default="parametric",
        description="Creators: 'parametric' searches generator parameters (search_space) with a "
        "bandit; 'lm' has the node's policy write problems and their answers, trained by GRPO "
        "on their learnability.",
    )
    proposals_per_step: int = Field(
        default=2, ge=0, le=64, description="Creators: tasks proposed per training step."
    )
    search_space: dict[str, dict[str, list[Any]]] = Field(
        default_factory=lambda: {"arith": {"max_digits": [1, 2, 3, 4], "terms": [2, 3]}},
        description="Parametric creator: family -> generator param -> values; every combination "
        "(per family) is one bandit arm, so families and difficulty knobs are searched together. "
        "Params not named keep the family's defaults (tasks.family_params if the family is there).",
    )
    bandit_c: float = Field(
        default=0.1, ge=0.0, description="Parametric creator: UCB exploration weight."
    )
    bandit_discount: float = Field(
        default=0.97,
        gt=0.0,
        le=1.0,
        description="Parametric creator: per-update decay of old arm evidence (solvers improve, "
        "so an arm's learnability drifts; 1 = never forget).",
    )
    learnability: Literal["p(1-p)", "1-p"] = Field(
        default="p(1-p)",
        description="Creator reward from the swarm's solve rate p: 'p(1-p)' (most for p = 1/2) "
        "or '1-p' for p > 0 (Absolute Zero; 0 when nobody solved it).",
    )
    diversity_penalty: float = Field(
        default=0.1,
        ge=0.0,
        description="Subtracted from a proposal's reward per unit of the fraction of recent "
        "proposals it nearly duplicates (question text similarity >= duplicate_similarity).",
    )
    duplicate_similarity: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Jaccard similarity of character 3-grams above which two questions count "
        "as near-duplicates.",
    )
    settle_completions: int = Field(
        default=8,
        ge=1,
        description="Creators: re-scored completions of a proposal after which its solve rate "
        "counts (its reward is fixed and fed to the bandit / the LM creator's update).",
    )
    proposal_ttl_steps: int = Field(
        default=10,
        ge=1,
        description="Creators: steps after which an unsettled proposal is closed with what it "
        "has (nothing attempted = reward 0, not fed to the bandit). Solvers: steps a queued "
        "proposal stays eligible.",
    )
    max_open: int = Field(
        default=16,
        ge=1,
        description="Creators: proposals awaiting their solve rate before the creator waits "
        "(up to wait_s per step) instead of proposing more; a creator with no training work of "
        "its own is paced by its solvers this way rather than spinning.",
    )
    wait_s: float = Field(
        default=5.0,
        ge=0.0,
        description="Creators: longest wait per step for open proposals to settle.",
    )
    count_own_rollouts: bool = Field(
        default=True,
        description="A creator that is also a solver counts its own attempts at its proposals "
        "in their solve rate (it is part of the swarm that the task should teach).",
    )
    queue_size: int = Field(default=64, ge=1, description="Solvers: proposals held.")
    per_creator: int = Field(
        default=16, ge=1, description="Solvers: proposals held from any one creator."
    )
    max_attempts: int = Field(
        default=2,
        ge=1,
        description="Solvers: times one proposal is attempted before it leaves the queue.",
    )
    curriculum: bool = Field(
        default=True,
        description="Solvers: online difficulty filtering. A proposal this node always or never "
        "solved on its last attempt leaves the queue; ones with 0 < p < 1 are preferred.",
    )
    curriculum_own: bool = Field(
        default=False,
        description="Also skip the node's own recurring tasks it always or never solved within "
        "curriculum_memory_steps (draws up to 4x the tasks needed, keeps the first useful ones).",
    )
    curriculum_memory_steps: int = Field(
        default=20,
        ge=1,
        description="How long an always/never-solved own task stays skipped (skill changes).",
    )
    free_form_min_answers: int = Field(
        default=4,
        ge=1,
        description="Solvers: own answers needed before a free-form task can be verified (its "
        "reference must be the majority answer); unverified ones are published, not trained on.",
    )
    lm_verifier: Literal["numeric", "exact", "math"] = Field(
        default="numeric", description="LM creator: verifier named in its free-form tasks."
    )
    lm_family: str = Field(
        default="arith",
        description="LM creator: family whose example problem opens the creator prompt.",
    )
