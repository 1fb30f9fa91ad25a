"""The one-line warning a user gets when many steps in a row taught nothing."""

from __future__ import annotations

import logging

from swarmrl.node.metrics import Metrics

log = logging.getLogger("swarmrl.node")

NO_SIGNAL_STEPS = 20
"""Steps in a row without a group with signal before the node says so (once per streak)."""


class SignalWatch:
    """Say once, in one line, when many steps in a row taught nothing: GRPO learns only from
    groups whose rewards differ, and a model that never (or always) solves its tasks sees
    none. A user would otherwise watch a reward of 0.000 forever without a word."""

    def __init__(self, name: str, metrics: Metrics) -> None:
        self.name = name
        self.metrics = metrics
        self.steps = 0  # steps in a row whose groups all had equal rewards
        self.said = False  # the warning is said once per run, not every 20 steps

    def observe(self, reward: float, groups_with_signal: int) -> None:
        self.steps = 0 if groups_with_signal else self.steps + 1
        if self.steps != NO_SIGNAL_STEPS or self.said:
            return
        self.said = True
        reward = reward if reward == reward else 0.0  # NaN when no group was sampled
        if reward >= 0.99:
            fix = "the tasks are too easy: raise tasks.family_params (more digits, terms)"
        else:
            fix = ("the model never solves its tasks: try tasks.prompt_style = 'instruct', a "
                   "larger generation.max_new_tokens, tasks.format_reward = 0.2 or easier "
                   "tasks.family_params")
        log.warning("%s: no learning signal for %d steps (every group's completions got equal "
                    "rewards, reward %.3f; GRPO learns nothing from them): %s", self.name,
                    NO_SIGNAL_STEPS, reward, fix)
        self.metrics.count("no_signal_warnings")
