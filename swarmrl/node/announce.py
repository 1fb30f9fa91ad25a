"""What a node says of itself to the swarm: its peer card, and the sampler facts and log-probs
each of its rollout groups carries. Only public facts: a local model folder is named by its last
part, never its path."""

from __future__ import annotations

from pathlib import Path

from swarmrl import __version__
from swarmrl.brain.base import Brain, ScoredGroup
from swarmrl.config import NodeConfig
from swarmrl.protocol.messages import (
    MAX_PER_TOKEN_LOGPROBS,
    PROTOCOL_VERSION,
    PeerCard,
    SampledLogprobs,
    SamplerInfo,
)


def public_model_id(model_id: str) -> str:
    """What a peer card says of the model: a hub id or tiny name as is, a local folder by its
    last part only (its absolute path tells the whole swarm about this machine's disk)."""
    path = Path(model_id)
    if path.is_absolute() or model_id.startswith(("~", ".")) or path.exists():
        return path.expanduser().name or "local"
    return model_id


def sampler_info(cfg: NodeConfig, brain: Brain, model_id: str) -> SamplerInfo:
    """How this node's rollout groups were sampled, as every group it publishes says."""
    return SamplerInfo(
        model_id=model_id,
        tokenizer_fingerprint=brain.tokenizer_fingerprint[:128],
        policy_version=brain.policy_version,
        temperature=cfg.generation.temperature,
        top_p=cfg.generation.top_p,
        max_new_tokens=cfg.generation.max_new_tokens,
    )


def sampled_logprobs(g: ScoredGroup) -> SampledLogprobs | None:
    """What a group tells peers of how likely its sampler found each completion (None when the
    brain gave no log-probs). Per token only while the group is small; sums always."""
    rows = [c.sampler_logprobs for c in g.completions]
    if not rows or any(r is None for r in rows):
        return None
    rows = [[min(0.0, max(-1e4, x)) for x in r] for r in rows]
    small = sum(map(len, rows)) <= MAX_PER_TOKEN_LOGPROBS
    return SampledLogprobs(
        sums=[sum(r) for r in rows], counts=[len(r) for r in rows], tokens=rows if small else None
    )


def peer_card(
    cfg: NodeConfig, brain: Brain, peer_id: str, model_id: str, addrs: list[str]
) -> PeerCard:
    """The card a node announces every ``peer_card_every_s``: who it is, what it runs, where."""
    return PeerCard(
        peer_id=peer_id,
        swarm_id=cfg.swarm_id,
        roles=list(cfg.roles),
        model_id=model_id,
        tokenizer_fingerprint=brain.tokenizer_fingerprint[:128],
        policy_version=brain.policy_version,
        software_version=__version__,
        protocol_version=PROTOCOL_VERSION,
        listen_addrs=addrs[:16],
    )
