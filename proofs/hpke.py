"""HPKE base mode (RFC 9180) for one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
ChaCha20-Poly1305 (kem_id 0x0020, kdf_id 0x0001, aead_id 0x0003).

Written on ``cryptography``'s X25519 and ChaCha20-Poly1305 and the standard library's HMAC,
section by section of the RFC, because ``proofs/`` depends on nothing else (the layering rule),
and so that the test vectors of RFC 9180 appendix A.2 can drive the intermediate values too.
Only base mode (no PSK, no sender authentication) is needed: a job's data key is wrapped to a
recipient's registered key, and the sender's authority comes from the signed ledger command
that carries the wrapped key, not from the HPKE mode.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

KEM_ID = 0x0020  # DHKEM(X25519, HKDF-SHA256), RFC 9180 section 7.1
KDF_ID = 0x0001  # HKDF-SHA256, section 7.2
AEAD_ID = 0x0003  # ChaCha20Poly1305, section 7.3
MODE_BASE = 0x00

N_SECRET = 32  # KEM shared secret length
N_ENC = 32  # encapsulated key length (a serialized X25519 public key)
N_PK = 32
N_SK = 32
N_K = 32  # AEAD key length
N_N = 12  # AEAD nonce length
N_H = 32  # KDF output length
N_T = 16  # AEAD tag length

_VERSION_LABEL = b"HPKE-v1"
_KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")  # section 4.1
_HPKE_SUITE_ID = (  # section 5.1
    b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
)
# Section 5.2: the sequence number may not reach 2^(8*Nn) - 1.
_SEQ_MAX = (1 << (8 * N_N)) - 1


class HpkeError(ValueError):
    """A key does not decode, a DH result is all zero, or a ciphertext does not open."""


@dataclass(frozen=True)
class KeySchedule:
    """The outputs of KeySchedule (section 5.1): what an encryption context is built from."""

    key: bytes
    base_nonce: bytes
    exporter_secret: bytes


@dataclass
class Context:
    """An HPKE encryption context (section 5.2) with its sequence number."""

    schedule: KeySchedule
    seq: int = 0
    _aead: ChaCha20Poly1305 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._aead = ChaCha20Poly1305(self.schedule.key)

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        ct = self._aead.encrypt(self._next_nonce(), plaintext, aad)
        self.seq += 1
        return ct

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        try:
            pt = self._aead.decrypt(self._next_nonce(), ciphertext, aad)
        except InvalidTag as exc:
            raise HpkeError("HPKE ciphertext does not open (AEAD tag mismatch)") from exc
        self.seq += 1
        return pt

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """Secret export (section 5.3)."""
        return labeled_expand(
            self.schedule.exporter_secret, b"sec", exporter_context, length, _HPKE_SUITE_ID
        )

    def _next_nonce(self) -> bytes:
        # ComputeNonce (section 5.2): base_nonce XOR I2OSP(seq, Nn).
        if self.seq >= _SEQ_MAX:
            raise HpkeError("HPKE message limit reached")
        seq_bytes = self.seq.to_bytes(N_N, "big")
        return bytes(a ^ b for a, b in zip(self.schedule.base_nonce, seq_bytes, strict=True))


def seal(recipient_public: bytes, info: bytes, aad: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """Single-shot SealBase (section 6.1): the encapsulated key and the ciphertext."""
    enc, ctx = setup_base_sender(recipient_public, info)
    return enc, ctx.seal(aad, plaintext)


def open_(recipient_private: bytes, enc: bytes, info: bytes, aad: bytes, ct: bytes) -> bytes:
    """Single-shot OpenBase (section 6.1); raises HpkeError when the ciphertext does not open."""
    return setup_base_recipient(enc, recipient_private, info).open(aad, ct)


def setup_base_sender(
    recipient_public: bytes, info: bytes, *, ephemeral_private: bytes | None = None
) -> tuple[bytes, Context]:
    """SetupBaseS (section 5.1.1). ``ephemeral_private`` fixes skE, for the RFC's test vectors
    only: a real sender draws a fresh one each time."""
    shared_secret, enc = encap(recipient_public, ephemeral_private=ephemeral_private)
    return enc, Context(key_schedule(shared_secret, info))


def setup_base_recipient(enc: bytes, recipient_private: bytes, info: bytes) -> Context:
    """SetupBaseR (section 5.1.1)."""
    return Context(key_schedule(decap(enc, recipient_private), info))


def derive_key_pair(ikm: bytes) -> tuple[bytes, bytes]:
    """DeriveKeyPair for X25519 (section 7.1.3): (skXm, pkXm) from input keying material."""
    dkp_prk = labeled_extract(b"", b"dkp_prk", ikm, _KEM_SUITE_ID)
    sk = labeled_expand(dkp_prk, b"sk", b"", N_SK, _KEM_SUITE_ID)
    return sk, public_key_of(sk)


def public_key_of(private: bytes) -> bytes:
    """SerializePublicKey(pk(skX)) for a serialized X25519 private key."""
    return (
        _private_key(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def encap(
    recipient_public: bytes, *, ephemeral_private: bytes | None = None
) -> tuple[bytes, bytes]:
    """Encap (section 4.1): (shared_secret, enc)."""
    pk_r = _public_key(recipient_public)
    sk_e = (
        X25519PrivateKey.generate()
        if ephemeral_private is None
        else _private_key(ephemeral_private)
    )
    enc = sk_e.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    dh = _exchange(sk_e, pk_r)
    return _extract_and_expand(dh, enc + recipient_public), enc


def decap(enc: bytes, recipient_private: bytes) -> bytes:
    """Decap (section 4.1): the shared secret."""
    sk_r = _private_key(recipient_private)
    dh = _exchange(sk_r, _public_key(enc))
    return _extract_and_expand(dh, enc + public_key_of(recipient_private))


def key_schedule(shared_secret: bytes, info: bytes) -> KeySchedule:
    """KeySchedule (section 5.1) for mode_base, where psk and psk_id are empty."""
    psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"", _HPKE_SUITE_ID)
    info_hash = labeled_extract(b"", b"info_hash", info, _HPKE_SUITE_ID)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = labeled_extract(shared_secret, b"secret", b"", _HPKE_SUITE_ID)
    return KeySchedule(
        key=labeled_expand(secret, b"key", context, N_K, _HPKE_SUITE_ID),
        base_nonce=labeled_expand(secret, b"base_nonce", context, N_N, _HPKE_SUITE_ID),
        exporter_secret=labeled_expand(secret, b"exp", context, N_H, _HPKE_SUITE_ID),
    )


def labeled_extract(salt: bytes, label: bytes, ikm: bytes, suite_id: bytes) -> bytes:
    """LabeledExtract (section 4): HKDF-Extract over the version label, suite id and label."""
    return _hkdf_extract(salt, _VERSION_LABEL + suite_id + label + ikm)


def labeled_expand(prk: bytes, label: bytes, info: bytes, length: int, suite_id: bytes) -> bytes:
    """LabeledExpand (section 4)."""
    labeled_info = length.to_bytes(2, "big") + _VERSION_LABEL + suite_id + label + info
    return _hkdf_expand(prk, labeled_info, length)


def _extract_and_expand(dh: bytes, kem_context: bytes) -> bytes:
    # ExtractAndExpand (section 4.1).
    eae_prk = labeled_extract(b"", b"eae_prk", dh, _KEM_SUITE_ID)
    return labeled_expand(eae_prk, b"shared_secret", kem_context, N_SECRET, _KEM_SUITE_ID)


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    # RFC 5869 section 2.2; an empty salt is HashLen zero bytes, which HMAC's key padding equals.
    return hmac.new(salt or bytes(N_H), ikm, hashlib.sha256).digest()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869 section 2.3.
    if length > 255 * N_H:
        raise HpkeError("HKDF-Expand length too large")
    out, block = b"", b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _exchange(private: X25519PrivateKey, public: X25519PublicKey) -> bytes:
    # Section 7.1.4: an all-zero X25519 output (a low-order public key) must be refused.
    try:
        dh = private.exchange(public)
    except ValueError as exc:
        raise HpkeError("X25519 exchange failed (low-order public key)") from exc
    if not any(dh):
        raise HpkeError("X25519 shared secret is all zero (low-order public key)")
    return dh


def _public_key(raw: bytes) -> X25519PublicKey:
    if len(raw) != N_PK:
        raise HpkeError(f"an X25519 public key is {N_PK} bytes, got {len(raw)}")
    return X25519PublicKey.from_public_bytes(raw)


def _private_key(raw: bytes) -> X25519PrivateKey:
    if len(raw) != N_SK:
        raise HpkeError(f"an X25519 private key is {N_SK} bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)
