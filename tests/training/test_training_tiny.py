"""Tiny models: byte tokenizer, parameter counts, save/load through the generic loader."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmrl.config import ModelConfig
from swarmrl.training.policy import load_policy, load_tokenizer
from swarmrl.training.tiny import (
    EOS_TOKEN,
    TINY_CONFIGS,
    build_tiny_model,
    build_tiny_tokenizer,
    param_count,
    tokenizer_fingerprint,
)

TOK = build_tiny_tokenizer()


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_text(text: str) -> None:
    ids = TOK.encode(text, add_special_tokens=False)
    assert TOK.decode(ids) == text
    # One token per UTF-8 byte, and token id == byte value.
    if EOS_TOKEN not in text and "<pad>" not in text:
        assert ids == list(text.encode("utf-8"))


def test_known_ids_and_specials() -> None:
    text = "Q: 68 - 32 =\nA: <answer>  héllo 日本 🎉\t"
    assert TOK.encode(text, add_special_tokens=False) == list(text.encode())
    assert TOK.eos_token_id == 256 and TOK.pad_token_id == 257 and len(TOK) == 258
    assert TOK.encode("36" + EOS_TOKEN, add_special_tokens=False) == [51, 54, 256]
    assert TOK.decode([51, 54, 256], skip_special_tokens=True) == "36"
    assert TOK.padding_side == "left"


def test_param_counts() -> None:
    counts = {name: param_count(build_tiny_model(name)) for name in TINY_CONFIGS}
    assert 0.5e6 <= counts["tiny-0.5m"] <= 0.6e6
    assert 3.8e6 <= counts["tiny-4m"] <= 4.5e6
    assert 0.55e6 <= counts["tiny-bpe-0.5m"] <= 0.65e6  # tiny-0.5m with a 512-id vocabulary


def test_the_subword_tokenizer_is_deterministic_and_really_subword() -> None:
    """Built from a fixed corpus, so every node builds the same ids (same fingerprint), and
    unlike the byte tokenizer it merges: numbers and words become few tokens."""
    from swarmrl.training import tiny

    bpe = build_tiny_tokenizer("tiny-bpe-0.5m")
    first = tokenizer_fingerprint(bpe)
    tiny._bpe_json.cache_clear()  # train it again from scratch
    assert tokenizer_fingerprint(build_tiny_tokenizer("tiny-bpe-0.5m")) == first != (
        tokenizer_fingerprint(TOK))
    assert len(bpe) == tiny.BPE_VOCAB_SIZE and bpe.padding_side == "left"
    text = "Q: 68 - 32 =\nA: <answer>36</answer>"
    ids = bpe.encode(text, add_special_tokens=False)
    assert bpe.decode(ids) == text and len(ids) <= len(text.encode()) // 2
    config = tiny.tiny_config("tiny-bpe-0.5m")
    assert (config.vocab_size, config.eos_token_id, config.pad_token_id) == (
        len(bpe), bpe.eos_token_id, bpe.pad_token_id)


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_the_subword_tokenizer_round_trips_any_text(text: str) -> None:
    bpe = build_tiny_tokenizer("tiny-bpe-0.5m")
    assert bpe.decode(bpe.encode(text, add_special_tokens=False)) == text


def test_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = (build_tiny_model("tiny-0.5m", seed=s) for s in (1, 1, 2))
    assert torch.equal(torch.get_rng_state(), before)
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_fingerprint_tracks_vocab() -> None:
    assert tokenizer_fingerprint(TOK) == tokenizer_fingerprint(build_tiny_tokenizer())
    other = build_tiny_tokenizer()
    other.add_special_tokens({"additional_special_tokens": ["<extra>"]})
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(TOK)


def test_save_and_reload_through_generic_loader(tmp_path) -> None:
    """A local directory written by save_pretrained is how we test loading a 'real' model."""
    pol = load_policy(ModelConfig(name="tiny-0.5m", warm_start=False, device="cpu", init_seed=3))
    pol.model.save_pretrained(tmp_path)
    pol.tokenizer.save_pretrained(tmp_path)
    # Plain AutoTokenizer would pick Qwen2Tokenizer (another pre-tokenizer); ours must not.
    tok = load_tokenizer(str(tmp_path))
    text = "Q: 5 + 7 =\nA: <answer>e\u0301 日本"
    assert tok.encode(text, add_special_tokens=False) == list(text.encode())
    loaded = load_policy(ModelConfig(name=str(tmp_path), device="cpu", dtype="float32"))
    assert loaded.fingerprint == pol.fingerprint
    assert loaded.model_id == str(tmp_path)
    ids = torch.tensor([TOK.encode(text, add_special_tokens=False)])
    with torch.no_grad():
        assert torch.allclose(pol.model(ids).logits, loaded.model(ids).logits, atol=1e-6)
    head, emb = loaded.model.lm_head.weight, loaded.model.model.embed_tokens.weight
    assert head.data_ptr() == emb.data_ptr()  # still tied
