"""``[model]`` (with ``[model.lora]``), ``[generation]`` and ``[grpo]``: the policy, how it
samples and how it is updated (training/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from swarmrl.config.base import _Section


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
