"""Tiny models built in code: their tokenizers and small Qwen2-architecture configs.

No hub download is needed for anything here, which is what lets tests, the simulator and CPU
demos run offline. The byte-level tokenizer maps every byte to its own token (ids 0-255 are the
byte values), so any text round-trips, and adds two special tokens: ``<|endoftext|>`` (EOS) and
``<pad>``. ``tiny-bpe-0.5m`` has a subword tokenizer instead, a byte-level BPE trained here on
arithmetic text (digits merge into multi-digit tokens, as in GPT-2-style tokenizers), so a swarm
of tiny models can hold members whose token ids do not line up, as real swarms do.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, trainers
from tokenizers.pre_tokenizers import ByteLevel, Sequence, Split
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from transformers.convert_slow_tokenizer import bytes_to_unicode

from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks import format_prompt, format_target, get_family, materialize

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<pad>"
BYTE_VOCAB = 256
TINY_VOCAB_SIZE = BYTE_VOCAB + 2  # bytes, then EOS (256) and PAD (257)

# name -> Qwen2 shape. Param counts (tied embeddings): tiny-0.5m ~0.56M, tiny-4m ~4.27M; the same
# shapes as the prototypes whose numbers REFERENCES.md quotes, so those numbers stay comparable.
TINY_CONFIGS: dict[str, dict[str, int]] = {
    "tiny-0.5m": {"hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 512,
                  "num_attention_heads": 4, "num_key_value_heads": 4},
    "tiny-4m": {"hidden_size": 256, "num_hidden_layers": 4, "intermediate_size": 1024,
                "num_attention_heads": 4, "num_key_value_heads": 4},
    "tiny-bpe-0.5m": {"hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 512,
                      "num_attention_heads": 4, "num_key_value_heads": 4},
}
BPE_MODELS = {"tiny-bpe-0.5m"}
"""Tiny models with the subword tokenizer (:func:`build_bpe_tokenizer`); others: byte-level."""
BPE_VOCAB_SIZE = 512
TINY_MAX_POSITIONS = 1024


def is_tiny(name: str) -> bool:
    return name in TINY_CONFIGS


def build_tiny_tokenizer(name: str = "tiny-0.5m") -> PreTrainedTokenizerFast:
    """The tokenizer of tiny model ``name``: byte-level unless it is one of BPE_MODELS."""
    if name in BPE_MODELS:
        return build_bpe_tokenizer()
    return build_byte_tokenizer()


def build_byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: one token per UTF-8 byte, plus EOS and PAD; pads on the left."""
    byte_to_char = bytes_to_unicode()
    vocab = {byte_to_char[b]: b for b in range(BYTE_VOCAB)}
    vocab[EOS_TOKEN] = BYTE_VOCAB
    vocab[PAD_TOKEN] = BYTE_VOCAB + 1
    # WordLevel needs an unk token; every byte is in the vocab so it is never produced.
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD_TOKEN))
    # use_regex=False keeps whitespace attached as bytes; the Split makes every (byte-)character its
    # own pre-token, otherwise WordLevel would look up whole words and map them to unk.
    tok.pre_tokenizer = Sequence(
        [ByteLevel(add_prefix_space=False, use_regex=False),
         Split(Regex("."), behavior="isolated")]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in (EOS_TOKEN, PAD_TOKEN)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, padding_side="left"
    )


def build_bpe_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE of BPE_VOCAB_SIZE ids trained on arithmetic text (deterministic: the
    same corpus and trainer give the same merges, so every node builds the same tokenizer);
    EOS and PAD are ids 0 and 1; pads on the left."""
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_bpe_json()), eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN, padding_side="left",
    )


@functools.cache
def _bpe_json() -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE, special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_bpe_corpus(), trainer=trainer)
    return tok.to_str()


def _bpe_corpus() -> list[str]:
    """Arithmetic prompts and answers in every prompt style, a fixed stream (the warm start's
    and RL's text), plus the words of the instruct prompt."""
    version = get_family("arith").version
    lines = []
    for i in range(2000):
        spec = TaskSpec(family="arith", family_version=version, seed=424242, index=i,
                        params={"ops": "+-*", "min_digits": 1, "max_digits": 3,
                                "terms": 2 + i % 2})
        problem = materialize(spec)
        style = ("short", "instruct")[i % 2]
        lines.append(format_prompt(problem, style) + format_target(problem, style))
    return lines


def tiny_config(name: str) -> Qwen2Config:
    if name not in TINY_CONFIGS:
        raise ValueError(f"unknown tiny model {name!r}; known: {sorted(TINY_CONFIGS)}")
    if name in BPE_MODELS:
        tok = build_bpe_tokenizer()
        vocab, eos, pad = len(tok), tok.eos_token_id, tok.pad_token_id
    else:
        vocab, eos, pad = TINY_VOCAB_SIZE, BYTE_VOCAB, BYTE_VOCAB + 1
    return Qwen2Config(
        vocab_size=vocab,
        max_position_embeddings=TINY_MAX_POSITIONS,
        tie_word_embeddings=True,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        **TINY_CONFIGS[name],
    )


def build_tiny_model(name: str, seed: int = 0) -> Qwen2ForCausalLM:
    """A freshly initialised tiny Qwen2 (fp32); the same name and seed give the same weights."""
    config = tiny_config(name)
    # A private RNG context so building a model does not consume the caller's global torch RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    return model


def param_count(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of the vocabulary and special tokens: equal fingerprints mean equal token ids.

    Published in peer cards so a student can tell whether a teacher's log-probs line up with its
    own tokens. Independent of file layout or library version (hashes the id mapping itself).
    """
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    specials = {
        "eos": tokenizer.eos_token, "pad": tokenizer.pad_token, "bos": tokenizer.bos_token,
        "all": sorted(str(t) for t in tokenizer.all_special_tokens),
    }
    data = json.dumps([vocab, specials], ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()
