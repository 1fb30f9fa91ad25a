"""``[distill]`` and ``[teacher]``: on-policy distillation, the student's side and the
limits of a node serving as a teacher."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from swarmrl.config.base import _Section

_PEER_ID_CHARS = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


class DistillConfig(_Section):
    """On-policy distillation (student side): a teacher peer scores the tokens this node samples.

    Per token, the advantage -(log p_student - log p_teacher) (reverse KL on the student's own
    samples, no discount) is added to the GRPO advantage (KDRL) or used alone. Teachers are peers
    whose card has the 'teacher' role and this node's tokenizer fingerprint, plus any listed in
    ``teachers``. A step whose teacher does not answer in time trains on plain GRPO.
    """

    mode: Literal["off", "distill", "grpo+kl"] = Field(
        default="off",
        description="'off'; 'distill': local groups the teacher scored train on the reverse-KL "
        "advantage alone (pure on-policy distillation); 'grpo+kl': GRPO advantage + coef x the "
        "reverse-KL advantage (KDRL). Groups without a teacher's answer train on plain GRPO.",
    )
    coef: float = Field(
        default=1.0, ge=0.0, le=100.0, description="Weight of the reverse-KL advantage."
    )
    schedule: Literal["constant", "linear", "warmup"] = Field(
        default="constant",
        description="How coef changes over steps: 'constant'; 'linear': from coef down to "
        "final_coef over schedule_steps, then final_coef; 'warmup': from 0 up to coef over "
        "schedule_steps, then coef.",
    )
    schedule_steps: int = Field(
        default=100, ge=1, description="Length of the linear decay or the warmup, in steps."
    )
    final_coef: float = Field(
        default=0.0, ge=0.0, le=100.0, description="Where the 'linear' schedule ends."
    )
    teachers: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Peer ids to ask besides (or instead of) those discovered from peer cards.",
    )
    discover: bool = Field(
        default=True,
        description="Also ask peers whose card has the 'teacher' role and our tokenizer "
        "fingerprint.",
    )
    pick: Literal["round_robin", "least_loaded"] = Field(
        default="round_robin",
        description="Which teacher a step asks: in turn, or the one that answered fastest "
        "recently (a loaded teacher answers slowly; untried teachers first).",
    )
    timeout_s: float = Field(
        default=5.0, gt=0.0, le=600.0,
        description="How long a step waits for the teacher before training on plain GRPO.",
    )
    max_advantage: float = Field(
        default=5.0, gt=0.0, le=1e4,
        description="Clip of each token's reverse-KL advantage: bounds what one lying or broken "
        "teacher can do to an update.",
    )

    @model_validator(mode="after")
    def _check(self) -> DistillConfig:
        for peer in self.teachers:
            if not peer or len(peer) > 128 or not set(peer) <= _PEER_ID_CHARS:
                raise ValueError(f"teachers: {peer!r} is not a peer id (base58)")
        return self


class TeacherConfig(_Section):
    """Serving as a teacher (nodes with 'teacher' in roles): limits on what peers may ask."""

    max_tokens_per_request: int = Field(
        default=4096, ge=1, le=65_536,
        description="Largest request scored: the sum over its completions of prompt + "
        "completion tokens. Larger ones are refused ('too_large').",
    )
    peer_tokens_per_s: float = Field(
        default=20_000.0, gt=0.0,
        description="Per-peer rate limit: a token bucket on the verified sender, refilled at "
        "this many tokens per second. Requests beyond it are refused ('rate_limited').",
    )
    peer_burst_tokens: int = Field(
        default=16_384, ge=1, description="The bucket's size: tokens a peer may ask for at once."
    )
    batch_wait_s: float = Field(
        default=0.02, ge=0.0, le=10.0,
        description="How long the first queued request waits for others to share its forward "
        "pass (requests are scored together in one batch).",
    )
    max_batch_tokens: int = Field(
        default=32_768, ge=1, description="Tokens scored in one forward pass at most."
    )
    max_queue: int = Field(
        default=64, ge=1, description="Requests waiting to be scored; more are refused ('busy')."
    )

    @model_validator(mode="after")
    def _check(self) -> TeacherConfig:
        if self.peer_burst_tokens < self.max_tokens_per_request:
            raise ValueError(
                "peer_burst_tokens must be >= max_tokens_per_request, or no request could pass"
            )
        return self
