"""Peer identities: ed25519 keys, libp2p-compatible peer ids, signatures, key files.

A peer id is derived exactly as libp2p derives it from an ed25519 public key, so the same key
file can drive a libp2p host and sign swarm envelopes. Ed25519 peer ids *inline* the public key
(identity multihash), so a verifier recovers the key from the sender id alone.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from swarmrl.protocol.atomic_file import write_bytes_atomic
from swarmrl.protocol.errors import IdentityError, ProtocolError

if TYPE_CHECKING:  # libp2p is imported lazily: most users of this module never need it
    from libp2p.crypto.keys import KeyPair

# identity multihash (code 0x00, length 36) of the protobuf PublicKey{Type=Ed25519(1), Data=32B}:
# field 1 varint (0x08) = 1, field 2 bytes (0x12) of length 32 (0x20).
_PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
_PEER_ID_LEN = len(_PEER_ID_PREFIX) + 32
_MAX_PEER_ID_CHARS = 128  # a valid ed25519 id is 52 chars; refuse long garbage before decoding
_MAX_KEY_FILE_BYTES = 4096
SIGNATURE_LEN = 64


def peer_id_from_public_key(public_key: Ed25519PublicKey) -> str:
    """The libp2p peer id ('12D3KooW...') of an ed25519 public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base58.b58encode(_PEER_ID_PREFIX + raw).decode("ascii")


@functools.lru_cache(maxsize=4096)
def public_key_from_peer_id(peer_id: str) -> Ed25519PublicKey:
    """Recover the ed25519 public key inlined in a peer id.

    Raises ProtocolError for anything that is not the canonical id of an ed25519 key (RSA or
    secp256k1 ids, sha256 multihashes, garbage). Cached: verifying a busy peer's messages should
    not re-parse its id every time.
    """
    if not isinstance(peer_id, str) or not 0 < len(peer_id) <= _MAX_PEER_ID_CHARS:
        raise ProtocolError("peer id: not a string of sensible length")
    try:
        raw = base58.b58decode(peer_id.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ProtocolError("peer id: not base58btc") from exc
    if len(raw) != _PEER_ID_LEN or not raw.startswith(_PEER_ID_PREFIX):
        raise ProtocolError("peer id: not an inline ed25519 key")
    # base58 has exactly one spelling per byte string; refuse others so ids compare as strings.
    if base58.b58encode(raw).decode("ascii") != peer_id:
        raise ProtocolError("peer id: non-canonical base58")
    try:
        return Ed25519PublicKey.from_public_bytes(raw[len(_PEER_ID_PREFIX) :])
    except ValueError as exc:  # pragma: no cover - any 32 bytes load; kept for safety
        raise ProtocolError("peer id: bad ed25519 key") from exc


def verify(peer_id: str, data: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is ``peer_id``'s ed25519 signature of ``data``; never raises."""
    try:
        public_key_from_peer_id(peer_id).verify(signature, data)
    except (ProtocolError, InvalidSignature, TypeError, ValueError):
        return False
    return True


class Identity:
    """A node's ed25519 key pair and the peer id derived from it."""

    __slots__ = ("_key", "_peer_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._peer_id = peer_id_from_public_key(private_key.public_key())

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, seed: bytes) -> Identity:
        """From the 32-byte ed25519 seed (the format libp2p and PyNaCl call the private key)."""
        if len(seed) != 32:
            raise IdentityError("an ed25519 private key is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def peer_id(self) -> str:
        return self._peer_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def private_bytes(self) -> bytes:
        """The raw 32-byte seed. Secret: hand it only to code that needs the key (libp2p)."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def to_libp2p_keypair(self) -> KeyPair:
        """The same key as a py-libp2p KeyPair, so a libp2p host gets this node's peer id."""
        from libp2p.crypto.ed25519 import Ed25519PrivateKey as Libp2pPrivateKey
        from libp2p.crypto.keys import KeyPair

        private = Libp2pPrivateKey.from_bytes(self.private_bytes())
        return KeyPair(private, private.get_public_key())

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the key as unencrypted PKCS#8 PEM, atomically, with mode 0600.

        Atomic (temp file + rename in the same directory) so a crash never leaves a truncated
        key; the temp file is created 0600 so the secret is never briefly world-readable.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise IdentityError(f"{path}: key file exists (pass overwrite=True to replace it)")
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_bytes_atomic(path, pem)  # 0600 from the start, fsynced, no temp file left

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Read a key written by :meth:`save`; refuse files others could read or write."""
        path = Path(path)
        try:
            with open(path, "rb") as f:
                # fstat the opened file, not the path, so a swap between check and read is moot.
                mode = os.fstat(f.fileno()).st_mode
                _check_key_mode(path, mode)
                data = f.read(_MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise IdentityError(f"{path}: cannot read key file: {exc}") from exc
        return cls(_parse_private_key(path, data))

    def __repr__(self) -> str:
        return f"Identity({self._peer_id})"


def _check_key_mode(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise IdentityError(f"{path}: not a regular file")
    if os.name == "posix" and mode & 0o077:
        raise IdentityError(
            f"{path}: key file permissions {stat.S_IMODE(mode):04o} let group/others access it; "
            f"run 'chmod 600 {path}'"
        )


def _parse_private_key(path: Path, data: bytes) -> Ed25519PrivateKey:
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise IdentityError(f"{path}: too large to be a key file")
    try:
        key: Any = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"{path}: not an unencrypted PKCS#8 PEM private key") from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for exotic keys
        raise IdentityError(f"{path}: unsupported key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{path}: not an ed25519 key ({type(key).__name__})")
    return key
