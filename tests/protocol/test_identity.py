"""Identities: libp2p-compatible peer ids, signatures, key files and their permissions."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import base58
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.secp256k1 import create_new_key_pair as create_secp256k1_key_pair
from libp2p.peer.id import ID

from swarmrl.protocol import Identity, IdentityError, ProtocolError, public_key_from_peer_id, verify
from swarmrl.protocol.identity import peer_id_from_public_key

# --- peer ids ------------------------------------------------------------------------------


def test_peer_id_matches_py_libp2p() -> None:
    for _ in range(20):
        ident = Identity.generate()
        keypair = ident.to_libp2p_keypair()
        assert ID.from_pubkey(keypair.public_key).to_base58() == ident.peer_id
        assert ident.peer_id.startswith("12D3KooW")


@given(st.binary(min_size=32, max_size=32))
@settings(max_examples=50, deadline=None)
def test_peer_id_matches_py_libp2p_for_any_seed(seed: bytes) -> None:
    libp2p_keys = create_new_key_pair(seed)
    ident = Identity.from_private_bytes(seed)
    assert ID.from_pubkey(libp2p_keys.public_key).to_base58() == ident.peer_id
    assert ident.private_bytes() == seed


def test_libp2p_keypair_signs_like_us(identity: Identity) -> None:
    keypair = identity.to_libp2p_keypair()
    data = b"same key, same signature"
    assert keypair.private_key.sign(data) == identity.sign(data)  # ed25519 is deterministic
    assert verify(identity.peer_id, data, keypair.private_key.sign(data))


def test_public_key_roundtrip(identity: Identity) -> None:
    key = public_key_from_peer_id(identity.peer_id)
    assert peer_id_from_public_key(key) == identity.peer_id
    # libp2p extracts the same key from the id
    extracted = ID.from_base58(identity.peer_id).extract_public_key()
    assert extracted is not None
    assert extracted.to_bytes() == key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _sha256_peer_id() -> str:  # how RSA keys (and any key over 42 bytes) get their ids
    return base58.b58encode(b"\x12\x20" + hashlib.sha256(b"rsa key").digest()).decode()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0OIl",  # not base58
        "1" * 200,  # too long
        "12D3KooW",  # truncated
        "Qm" + "1" * 44,
        "é",
    ],
)
def test_garbage_peer_ids_are_refused(bad: str) -> None:
    with pytest.raises(ProtocolError):
        public_key_from_peer_id(bad)
    assert not verify(bad, b"x", b"\0" * 64)


def test_non_ed25519_peer_ids_are_refused(identity: Identity) -> None:
    secp = ID.from_pubkey(create_secp256k1_key_pair().public_key).to_base58()
    for bad in (secp, _sha256_peer_id(), identity.peer_id[:-1]):
        with pytest.raises(ProtocolError):
            public_key_from_peer_id(bad)


def test_non_canonical_base58_is_refused(identity: Identity) -> None:
    raw = base58.b58decode(identity.peer_id)
    assert base58.b58encode(raw).decode() == identity.peer_id
    with pytest.raises(ProtocolError):
        public_key_from_peer_id(123)  # type: ignore[arg-type]


# --- signatures ----------------------------------------------------------------------------


def test_sign_and_verify(identity: Identity, other_identity: Identity) -> None:
    sig = identity.sign(b"hello")
    assert len(sig) == 64
    assert verify(identity.peer_id, b"hello", sig)
    assert not verify(identity.peer_id, b"hellO", sig)
    assert not verify(other_identity.peer_id, b"hello", sig)
    assert not verify(identity.peer_id, b"hello", sig[:-1])
    assert not verify(identity.peer_id, b"hello", "not bytes")  # type: ignore[arg-type]


def test_from_private_bytes_checks_length() -> None:
    with pytest.raises(IdentityError):
        Identity.from_private_bytes(b"short")


# --- key files -----------------------------------------------------------------------------


def test_save_writes_0600_and_load_roundtrips(tmp_path: Path, identity: Identity) -> None:
    old = os.umask(0o000)  # even with a permissive umask the file must be private
    try:
        identity.save(tmp_path / "node.key")
    finally:
        os.umask(old)
    path = tmp_path / "node.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Identity.load(path).peer_id == identity.peer_id
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]  # no temp file left behind
    assert "12D3KooW" in repr(Identity.load(path))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o666])
def test_load_refuses_group_or_other_access(tmp_path: Path, identity: Identity, mode: int) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    path.chmod(mode)
    with pytest.raises(IdentityError, match="chmod 600"):
        Identity.load(path)


def test_load_accepts_0400(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    path.chmod(0o400)
    assert Identity.load(path).peer_id == identity.peer_id


def test_save_refuses_to_overwrite(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    other = Identity.generate()
    with pytest.raises(IdentityError, match="exists"):
        other.save(path)
    other.save(path, overwrite=True)
    assert Identity.load(path).peer_id == other.peer_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_load_refuses_bad_files(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="cannot read"):
        Identity.load(tmp_path / "missing.key")
    with pytest.raises(IdentityError, match="PEM"):
        Identity.load(_write_private(tmp_path / "junk.key", b"not a key"))
    with pytest.raises(IdentityError, match="too large"):
        Identity.load(_write_private(tmp_path / "big.key", b"x" * 10_000))
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(IdentityError, match="not an ed25519"):
        Identity.load(_write_private(tmp_path / "ec.key", ec_pem))
    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(IdentityError):
        Identity.load(directory)


def test_failed_save_leaves_no_temp_file(
    tmp_path: Path, identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        identity.save(tmp_path / "node.key")
    assert list(tmp_path.iterdir()) == []
