"""A tiny LM that sometimes answers right, shared by the node and simulator tests."""

from __future__ import annotations

from swarmrl.brain.base import Brain, Completion, RolloutRequest
from swarmrl.config import NodeConfig


def oracle_lm_brain(cfg: NodeConfig) -> Brain:
    """A fresh tiny LM whose first completion per group is the right answer.

    A random tiny model never answers right, so without this every group has zero advantage
    and nothing would train or cross the swarm. The injected completion is tokenized with the
    policy's own tokenizer, so the learner trains on it like any sampled completion.
    """
    from swarmrl.brain.lm import LMBrain

    class OracleLMBrain(LMBrain):
        def rollout(self, requests: list[RolloutRequest], group_size: int):
            out = super().rollout(requests, group_size)
            for req, comps in zip(requests, out, strict=True):
                text = f"{req.answer}</answer>"
                if not req.prompt.endswith("<answer>"):
                    text = "<answer>" + text
                ids = self.policy.retokenize(text)
                comps[0] = Completion(text, False, ids, len(ids))
            return out

    return OracleLMBrain.from_config(cfg, progress=False)
