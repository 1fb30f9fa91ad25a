"""The one config model: every knob of a node, a training run or a simulation, documented.

Sections are small pydantic models composed into :class:`NodeConfig`. Configs load from TOML
(``load_config``); any error is reported as one line naming the field and the reason
(``ConfigError``). This module imports no torch so every layer may use it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A config could not be loaded; the message is one line naming the field and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


class LoRAConfig(_Section):
    """LoRA adapters (through peft) in place of full fine-tuning, for nodes whose memory cannot
    hold a model's gradients and optimizer state."""

    enabled: bool = Field(
        default=False,
        description="Train low-rank adapters on the model's linear layers and keep its own "
        "weights frozen. The optimizer holds only the adapters, and checkpoints hold only the "
        "adapters and their optimizer state (the base model is read from model.name). Needs "
        "peft (pip install 'swarmrl[lora]').",
    )
    r: int = Field(default=16, ge=1, le=1024, description="Rank of each adapter.")
    alpha: float = Field(
        default=32.0, gt=0.0, description="Scale: an adapter adds alpha / r * B @ A to its weight."
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Dropout on the adapters' input while training (0: an update's log-probs "
        "are those sampling saw).",
    )
    target_modules: list[str] = Field(
        default=["all-linear"],
        description="Which layers get adapters: names of linear modules (e.g. ['q_proj', "
        "'v_proj']), or ['all-linear']: every linear layer but the LM head.",
    )


class ModelConfig(_Section):
    """The node's policy."""

    name: str = Field(
        default="tiny-4m",
        description="'tiny-0.5m', 'tiny-4m' or 'tiny-bpe-0.5m' (built in code; the last with a "
        "subword tokenizer), a hub id or a local path.",
    )
    warm_start: bool = Field(
        default=True, description="Tiny models only: start from the cached supervised warm start."
    )
    warm_start_steps: int = Field(
        default=600, ge=0, description="Supervised steps of the warm start."
    )
    init_seed: int = Field(
        default=0,
        ge=0,
        description="Tiny models only: seed of the initial weights and of the warm start's data.",
    )
    warm_start_ops: str = Field(
        default="+-",
        pattern=r"^[+*-]+$",
        description="Tiny models only: the operators the warm start's arithmetic uses (a mix of "
        "'+', '-', '*'). Nodes warm-started on different operators start with different skills "
        "(the 'skills' preset of `swarmrl sim experiment sapo`).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="'auto' = bfloat16 on GPUs that support it, else float32."
    )
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    cache_dir: str = Field(
        default="~/.cache/swarmrl", description="Where warm starts and built tokenizers are cached."
    )
    lora: LoRAConfig = Field(
        default_factory=LoRAConfig, description="LoRA adapters instead of full fine-tuning."
    )


class GenerationConfig(_Section):
    """How completions are sampled."""

    backend: Literal["fast", "hf", "vllm"] = Field(
        default="fast",
        description="'fast': swarmrl's own KV-cached sampling loop (one prefill per prompt, "
        "finished rows leave the batch; fastest on CPU); 'hf': transformers generate; 'vllm': "
        "a vLLM engine in the node's process on the policy's GPU, refreshed with the policy's "
        "weights after each update (extra swarmrl[gpu]; falls back to 'hf' with a log line "
        "when vLLM is missing or the policy is not on CUDA).",
    )
    decode: Literal["auto", "lean", "lean-bf16", "model"] = Field(
        default="auto",
        description="The 'fast' backend's per-token step. 'lean': swarmrl's own step for "
        "Llama-family models (Llama, SmolLM2, Mistral without sliding windows, Qwen2, Qwen3; "
        "LoRA adapters merged in): fused q/k/v and gate/up weights re-read after each update, "
        "preallocated KV cache, RoPE tables, SDPA; samples the same tokens with the same "
        "log-probs as 'model' in float32 (up to rounding with grouped k/v heads), with less "
        "overhead. 'lean-bf16': the same step on a bf16 copy of the weights (faster from a few "
        "million parameters on hardware with fast bf16; the sampling distribution then differs "
        "from the policy's by bf16 rounding, as with vLLM). 'model': the model's own forward "
        "(any architecture). 'auto': 'lean-bf16' for those fp32 models of >= 2M parameters on "
        "a CUDA GPU with bf16 or a CPU with AVX512-BF16/AMX, 'lean' for the others of that "
        "family, 'model' for other architectures. The lean step holds its fused weights next "
        "to the model's (about 2/3 of the non-embedding weights again; half that in bf16).",
    )
    group_size: int = Field(default=8, ge=1, le=64, description="G: completions per task.")
    max_new_tokens: int = Field(default=16, ge=1, le=8192, description="Per completion.")
    temperature: float = Field(
        default=1.0, ge=0.0, le=10.0, description="Sampling temperature; 0 = greedy decoding."
    )
    top_p: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass (1 = off)."
    )
    vllm_gpu_memory_utilization: float = Field(
        default=0.3,
        gt=0.0,
        lt=1.0,
        description="'vllm' only: share of the GPU's memory the engine may take (weights and KV "
        "cache); the rest is the trainer's (TRL's colocate default).",
    )
    vllm_max_lag: int = Field(
        default=0,
        ge=0,
        le=64,
        description="'vllm' only: how many policy versions the engine's weights may trail before "
        "they are refreshed (0: after every update). A lag trades refresh time for off-policy "
        "samples, which grpo.tis_cap corrects.",
    )
    vllm_enforce_eager: bool = Field(
        default=False,
        description="'vllm' only: no CUDA graphs (starts faster, decodes slower).",
    )


class GRPOConfig(_Section):
    """The GRPO update (names follow TRL where they overlap)."""

    learning_rate: float = Field(
        default=3e-5,
        gt=0.0,
        le=1.0,
        description="AdamW learning rate. Measured on warm-started tiny models, arith pool of 16, "
        "G=8, 4 tasks/step: tiny-4m learns steadily at 1e-5..5e-5 and is unstable from 1e-4 "
        "(3e-4 loses reward); tiny-0.5m learns fastest at 1e-4..3e-4 and slowly at 3e-5.",
    )
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay.")
    adam_betas: tuple[float, float] = Field(default=(0.9, 0.999), description="AdamW betas.")
    max_grad_norm: float = Field(default=1.0, gt=0.0, description="Gradient clipping norm.")
    epsilon_low: float = Field(default=0.2, ge=0.0, le=1.0, description="Lower clip (1-eps).")
    epsilon_high: float = Field(default=0.28, ge=0.0, le=10.0, description="Upper clip (1+eps).")
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = Field(
        default="dapo",
        description="'grpo': per-sequence mean; 'dr_grpo': sum / (batch x max_new_tokens); "
        "'dapo': token-level mean over the batch.",
    )
    scale_rewards: Literal["group", "none"] = Field(
        default="group", description="'group': (r-mean)/std per group; 'none': Dr. GRPO mean-only."
    )
    beta: float = Field(
        default=0.0, ge=0.0, description="KL coefficient to the reference (0 = off)."
    )
    kl_estimator: Literal["k1", "k3"] = Field(
        default="k3",
        description="KL estimator: k1 = logp - ref; k3 = exp(ref - logp) - (ref - logp) - 1.",
    )
    num_iterations: int = Field(
        default=1, ge=1, le=32, description="Optimizer passes per batch (>1 lets the clip act)."
    )
    mask_truncated: bool = Field(
        default=False, description="Exclude completions cut by max_new_tokens from the loss."
    )
    drop_zero_advantage: bool = Field(
        default=True, description="Skip groups whose advantages are all zero (no signal)."
    )
    tis_cap: float = Field(
        default=2.0,
        ge=0.0,
        le=100.0,
        description="Truncated importance sampling (Yao et al. 2025, verl's default cap): each "
        "token of the node's own samples is weighted by min(pi_trainer(t) / pi_sampler(t), cap), "
        "with pi_sampler the sampling engine's own log-prob of the token. Corrects what differs "
        "between what sampled and what trains: vLLM's or the 'lean-bf16' step's kernels and "
        "precision, and weights that lag the policy (generation.vllm_max_lag). 0 = off. Swarm "
        "completions carry no sampler log-probs and are not re-weighted.",
    )
    micro_batch_groups: int = Field(
        default=0,
        ge=0,
        description="Groups per forward/backward pass of an update, with the gradients of the "
        "step's passes accumulated before the one optimizer step: the same update (to float "
        "rounding) in less memory, since a pass's activations scale with its rows. 0 = every "
        "group in one pass (fastest). 1 is the least memory (one group's G rows at a time).",
    )
    autocast: Literal["auto", "bf16", "off"] = Field(
        default="auto",
        description="Precision of the update's forward/backward. 'bf16': bf16 autocast with fp32 "
        "master weights, optimizer state and loss (log-probs are upcast to fp32); about 2x "
        "faster on hardware that multiplies bf16 natively. 'off': the model's own dtype. "
        "'auto': 'bf16' for fp32 models on a CUDA GPU with bf16 support or a CPU with "
        "AVX512-BF16/AMX (where bf16 is faster than fp32; elsewhere it is emulated and slower), "
        "else 'off'. The old/reference log-probs of the same step use the same precision.",
    )


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


class EvalConfig(_Section):
    """Held-out evaluation: a fixed set of problems of the node's own task families, never
    drawn by its task stream, scored greedily and sampled every k steps."""

    every: int = Field(
        default=0, ge=0, description="Evaluate after every k-th update (0 = never)."
    )
    on_start: bool = Field(
        default=False, description="Also evaluate before the first update (the starting point)."
    )
    problems: int = Field(
        default=64, ge=1, le=4096, description="Size of the held-out set."
    )
    samples: int = Field(
        default=4,
        ge=0,
        le=64,
        description="Sampled completions per problem at the generation temperature, besides "
        "one greedy completion (0 = greedy only).",
    )
    seed: int = Field(
        default=987_654_321,
        ge=0,
        description="Task seed of the held-out set: one no node's task stream uses, so every "
        "node with the same task families evaluates on the same problems.",
    )


class CheckpointConfig(_Section):
    every: int = Field(default=50, ge=0, description="Checkpoint every k steps (0 = only at exit).")
    keep: int = Field(default=2, ge=1, description="How many recent checkpoints to keep.")


class NetworkConfig(_Section):
    """The real network (libp2p): where to listen, whom to dial, limits and NAT traversal.

    Used by the daemon (`swarmrl node run`) and by `swarmrl sim --transport libp2p`; the
    in-memory simulator ignores it.
    """

    key_file: str = Field(
        default="node.key",
        description="The node's ed25519 key (mode 0600); relative paths are relative to the "
        "config file. Its libp2p peer id is the node's peer id.",
    )
    genesis: str = Field(
        default="",
        description="The swarm's genesis file (TOML); empty = a private swarm named by swarm_id. "
        "Peers on another genesis or protocol version are refused.",
    )
    listen: list[str] = Field(
        default_factory=lambda: ["/ip4/0.0.0.0/tcp/0"],
        max_length=16,
        description="Multiaddrs to listen on (tcp/0 = any free port; give a bootstrap node a "
        "fixed port).",
    )
    announce: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Public multiaddrs to advertise in peer cards instead of the listen ones "
        "(behind NAT or port forwarding).",
    )
    bootstrap: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Multiaddrs with /p2p/<peer-id> to dial at start and redial with backoff.",
    )
    target_peers: int = Field(
        default=8, ge=0, le=1024, description="Dial peers learned from peer cards up to this many."
    )
    max_peers: int = Field(
        default=64, ge=1, le=4096, description="Refuse connections beyond this many peers."
    )
    reconnect_min_s: float = Field(
        default=1.0, gt=0.0, description="First redial delay for a lost bootstrap peer."
    )
    reconnect_max_s: float = Field(
        default=60.0, gt=0.0, description="Redial delay cap (the delay doubles up to it)."
    )
    max_message_bytes: int = Field(
        default=1024 * 1024 - 4096,
        ge=1024,
        le=1024 * 1024,
        description="Largest message published or accepted; gossipsub's RPC limit is 1 MiB, "
        "so larger ones are refused and counted.",
    )
    messages_per_topic_per_second: float = Field(
        default=100.0,
        gt=0.0,
        description="Per peer and topic rate allowed by gossipsub before it drops (its default, "
        "10, silently drops honest bursts).",
    )
    publish_per_second: float = Field(
        default=20.0, gt=0.0, description="This node's own publishing pace per topic."
    )
    messages_per_connection_per_s: float = Field(
        default=200.0,
        ge=0.0,
        description="Gossip messages per second one connection may forward to us, whatever keys "
        "sign them, checked before any signature or decoding (0 = unlimited); more is dropped "
        "and not relayed ('dropped_connection_budget').",
    )
    connection_burst: float = Field(
        default=400.0, ge=1.0, description="Messages one connection may forward at once."
    )
    ban_after: int = Field(
        default=1000,
        ge=0,
        description="Hang up on a connection once this many of its messages stand dropped over "
        "its budgets (connection or newcomer), and refuse that peer for ban_s (0 = never): past "
        "it a flood costs nothing.",
    )
    ban_forgive_per_s: float = Field(
        default=20.0,
        ge=0.0,
        description="Drops forgiven per second toward ban_after, so an honest relay forwarding "
        "a new fast peer's groups until it is trusted (~20/s for a tiny model, over "
        "trust_after_s) is not hung up on; a flood is, within seconds, however slowly this node "
        "reads it.",
    )
    ban_s: float = Field(
        default=600.0, gt=0.0, description="How long a peer hung up on for flooding is refused."
    )
    newcomer_messages_per_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Messages per second one connection may forward from authors this node does "
        "not trust yet, shared by all of them (0 = unlimited): a thousand fresh keys get what "
        "one new peer gets ('dropped_newcomer_budget'). 1/s is about what a node with a real "
        "model publishes; a fast tiny-model node starts slower until it is trusted.",
    )
    newcomer_burst: float = Field(
        default=16.0, ge=1.0, description="Newcomers' messages one connection may forward at once."
    )
    trust_after: int = Field(
        default=5,
        ge=0,
        description="An author is trusted (out of the newcomer share) once this many of its "
        "groups entered this node's pool (0 = everyone is trusted)...",
    )
    trust_after_s: float = Field(
        default=30.0,
        ge=0.0,
        description="...over at least this many seconds since the first one.",
    )
    queue_size: int = Field(
        default=1024, ge=1, description="Messages held per subscription before the oldest drops."
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0.0, description="Request/response (teacher queries) timeout."
    )
    relay: bool = Field(
        default=False,
        description="Circuit relay v2: reach and be reached through relays (behind NAT).",
    )
    relay_hop: bool = Field(
        default=False, description="Act as a relay for others (bootstrap nodes on public IPs)."
    )
    autonat: bool = Field(default=False, description="AutoNAT: ask peers whether we are reachable.")
    hole_punching: bool = Field(
        default=False, description="DCUtR hole punching through a relayed connection."
    )

    @model_validator(mode="after")
    def _check(self) -> NetworkConfig:
        for field in ("listen", "announce", "bootstrap"):
            for addr in getattr(self, field):
                if not addr.startswith("/"):
                    raise ValueError(f"{field}: {addr!r} is not a multiaddr (starts with '/')")
        for addr in self.bootstrap:
            if "/p2p/" not in addr:
                raise ValueError(f"bootstrap: {addr!r} needs /p2p/<peer-id> at its end")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class GuardConfig(_Section):
    """What a node checks on everything that enters from the swarm (node/guard.py)."""

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
        "(node/plausibility.py). Language-model brains only (the simulator's stub has no "
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


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "[::1]", "localhost")


def split_host_port(addr: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 as '[::1]:PORT') -> (host, port); ValueError if it is not one."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{addr!r} is not HOST:PORT (e.g. 127.0.0.1:7850)")
    return host, int(port)


class ControlConfig(_Section):
    """The control and inspection API (`swarmrl inspect`) and the Prometheus endpoint.

    The API belongs to the node's owner: every call presents a token as gRPC metadata
    (`authorization: Bearer <token>`). Without `token` or `token_file`, a daemon (and `swarmrl
    sim --control`) creates one in `<run dir>/control.token`, readable by its owner only, where
    `swarmrl inspect --dir RUN_DIR` finds it; other users of the machine cannot pause the node,
    read its config or submit tasks. The traffic is not encrypted: reach a remote node through an
    SSH tunnel or a TLS proxy.
    """

    listen: str = Field(
        default="127.0.0.1:0",
        description="HOST:PORT of the gRPC control API (port 0 = any free port; the bound "
        "address is written to <run dir>/control.addr and status.json); empty = no control API. "
        "Simulations serve it only with `swarmrl sim --control HOST:PORT` (or this field set in "
        "the scenario's [control]).",
    )
    token: str = Field(
        default="",
        description="Secret clients must present (`swarmrl inspect --token`, env SWARMRL_TOKEN); "
        "required when `listen` is not a loopback address.",
    )
    token_file: str = Field(
        default="",
        description="Read the token from this file instead (first line; relative paths are "
        "relative to the config file).",
    )
    allow_no_token: bool = Field(
        default=False,
        description="Serve the control API on loopback without a token. Any local user can then "
        "pause the node, read its whole config and submit tasks: only for a machine of your own.",
    )
    metrics_listen: str = Field(
        default="",
        description="HOST:PORT of a Prometheus /metrics endpoint (e.g. 127.0.0.1:9464; the same "
        "figures as metrics.jsonl); empty = off. It has no token: it shows figures, no text.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Allow metrics_listen on a non-loopback address (anyone who reaches it reads "
        "the node's figures); without it such an address is refused.",
    )

    @model_validator(mode="after")
    def _check(self) -> ControlConfig:
        # Beyond loopback only when explicitly allowed: a token for the API, a flag for metrics.
        rules = (
            ("listen", self.has_token,
             "set control.token or control.token_file so only you can control the node"),
            ("metrics_listen", self.metrics_public,
             "set control.metrics_public = true to publish the node's figures there"),
        )
        for name, allowed, hint in rules:
            value = getattr(self, name)
            if not value:
                continue
            host, _ = split_host_port(value)
            if host not in LOOPBACK_HOSTS and not allowed:
                raise ValueError(f"{name}: {value} is not a loopback address; {hint}")
        return self

    @property
    def has_token(self) -> bool:
        return bool(self.token or self.token_file)


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


class NodeConfig(_Section):
    """One node: alone (`swarmrl train`), in a simulation, or as a daemon in a swarm."""

    name: str = Field(default="node", max_length=64, description="Human-readable node name.")
    swarm_id: str = Field(
        default="local",
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Swarm namespace; topics are /swarmrl/<swarm_id>/<topic>/1.",
    )
    roles: list[Literal["solver", "creator", "teacher", "bootstrap"]] = Field(
        default_factory=lambda: ["solver"],
        description="What this node does in the swarm ('bootstrap': no model, relays and helps "
        "discovery).",
    )
    steps: int = Field(default=200, ge=0, description="Training steps to run (0 = until stopped).")
    seed: int = Field(default=0, ge=0, description="Seed of torch and sampling.")
    peer_card_every_s: float = Field(
        default=30.0, gt=0.0, description="Seconds between peer-card announcements."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy.")
    tasks: TaskConfig = Field(
        default_factory=TaskConfig, description="Where this node's own tasks come from."
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="How completions are sampled."
    )
    grpo: GRPOConfig = Field(default_factory=GRPOConfig, description="The GRPO update.")
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="When checkpoints are written."
    )
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="Held-out evaluation every k steps."
    )
    sapo: SAPOConfig = Field(
        default_factory=SAPOConfig, description="Sharing with the swarm (I local + J external)."
    )
    threads: int = Field(
        default=0, ge=0, description="torch CPU threads (0 = leave torch's default)."
    )
    network: NetworkConfig = Field(
        default_factory=NetworkConfig, description="The real network (daemon and libp2p sims)."
    )
    guard: GuardConfig = Field(
        default_factory=GuardConfig, description="Checks on everything from the swarm."
    )
    selfplay: SelfPlayConfig = Field(
        default_factory=SelfPlayConfig, description="Asymmetric self-play (creator / solver)."
    )
    control: ControlConfig = Field(
        default_factory=ControlConfig,
        description="The control/inspection API (`swarmrl inspect`) and Prometheus metrics.",
    )
    distill: DistillConfig = Field(
        default_factory=DistillConfig,
        description="On-policy distillation from a teacher peer (student side).",
    )
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig,
        description="Limits when serving as a teacher ('teacher' in roles).",
    )

    @model_validator(mode="after")
    def _search_space_inside_the_task_space(self) -> NodeConfig:
        # A parametric creator's proposals outside the bounds would be dropped by every member
        # (and cost it reputation): say so at load time.
        if "creator" not in self.roles or self.selfplay.creator != "parametric":
            return self
        from swarmrl.tasks.bounds import TaskSpace
        from swarmrl.tasks.problem import TaskError

        t = self.tasks
        try:
            space = TaskSpace.build(set(t.families), t.family_params, t.bounds)
            space.check_search_space(self.selfplay.search_space)
        except TaskError as e:
            raise ValueError(str(e)) from None
        return self


def format_validation_error(err: ValidationError) -> str:
    """One line: the first failing field and why (pydantic's own words, made compact)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "config"
    msg = first.get("msg", "invalid")
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{loc}: {msg}{extra}"


def parse_config(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None


def load_config(model: type[BaseModel], path: str | Path | None, **overrides: Any) -> Any:
    """Load a config section model from TOML (or defaults), then apply dotted overrides."""
    data: dict[str, Any] = load_toml(path) if path else {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_config(model, data)


def describe(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted field, default, description) for every field, sections expanded: the docs table."""
    rows = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.append((prefix + name, "", f.description or ""))
            rows += describe(ann, prefix + name + ".")
        else:
            default = "" if f.is_required() else repr(f.get_default(call_default_factory=True))
            rows.append((prefix + name, default, f.description or ""))
    return rows
