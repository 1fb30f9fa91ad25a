"""``[tasks]``: where a node's own tasks come from (read by tasks/sampler.py through its
TaskMix Protocol; the validator checks names and bounds against tasks/)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from swarmrl.config.base import _Section


class TaskConfig(_Section):
    """Where a node's own tasks come from."""

    families: dict[str, float] = Field(
        default_factory=lambda: {"arith": 1.0},
        description="Task family name -> sampling weight. Names: 'arith' (built in) or any "
        "reasoning-gym dataset name (e.g. 'basic_arithmetic', 'chain_sum').",
    )
    family_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-family generator config, e.g. {arith = {ops = '+-', max_digits = 2}}.",
    )
    bounds: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="How far a peer's task may set each generator param, per family: [lo, hi] "
        "for a number, the longest text for text, e.g. {count_primes = {max_n = [2, 5000]}}. "
        "Unnamed params keep the shipped bounds (swarmrl/tasks/bounds.py); a param with no "
        "bound may only keep its default or this node's value. Tasks outside are dropped "
        "('out_of_bounds') before anything is generated. A genesis sets them for its swarm.",
    )
    pool_size: int = Field(
        default=0,
        ge=0,
        description="If > 0, draw tasks from a fixed recurring pool of this many problems "
        "(learning within minutes on tiny models needs tasks that recur); 0 = fresh tasks forever.",
    )
    seed: int = Field(default=0, ge=0, description="Seed of this node's task stream.")
    prompt_style: Literal["auto", "short", "instruct", "chat"] = Field(
        default="auto",
        description="'short': 'Q: ... A: <answer>' for tiny models; 'instruct': full instructions "
        "asking for the answer inside <answer>...</answer>; 'chat': those instructions as a user "
        "turn of the tokenizer's chat template; 'auto': 'chat' if the model's tokenizer has a "
        "chat template, else 'short' for the built-in tiny models and 'instruct' for others.",
    )
    format_reward: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Weight of a small reward for a well-formed <answer> tag (0 = off).",
    )

    @model_validator(mode="after")
    def _weights_positive(self) -> TaskConfig:
        if not self.families:
            raise ValueError("families: at least one task family is needed")
        for name, w in self.families.items():
            if not w > 0:
                raise ValueError(f"families.{name}: weight must be > 0, got {w}")
        # Imported here: tasks/ reads this module, and a wrong name should fail at load time
        # in one line (it was a traceback after the model had loaded).
        from swarmrl.tasks.families import get_family
        from swarmrl.tasks.problem import TaskError

        for name in self.families:
            try:
                get_family(name)
            except TaskError as e:
                raise ValueError(f"families.{name}: {e}") from None
        from swarmrl.tasks.bounds import TaskSpace

        try:  # this node's own params must lie inside the task space it accepts from peers
            TaskSpace.build(set(self.families), self.family_params, self.bounds)
        except TaskError as e:
            raise ValueError(str(e)) from None
        return self
