"""BLS12-381 signatures, Ethereum's G2ProofOfPossession, over bytes.

The scheme of draft-irtf-cfrg-bls-signature-05 §3.3 with ciphersuite
``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` (§4.2.3), as the Ethereum consensus specs use it
(phase0 ``bls`` helpers). Names follow the draft; arguments and results are bytes (48-byte
public keys, 96-byte signatures), secret keys an ``int`` in 1..r-1 or its 32-byte big-endian
encoding. Verification functions return a bool and never raise on malformed input; functions
that produce bytes (``sign``, ``aggregate``) raise ``ValueError`` when they cannot.

Backend: blst through pyblst when importable, py_ecc otherwise; ``FLOP_BLS_BACKEND=py_ecc``
or ``=blst`` forces one (read once, at import). Both give identical bytes and verdicts.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from py_ecc.bls import G2ProofOfPossession as _PyEccPoP

from proofs.bls_backend import (
    CURVE_ORDER,
    DST_POP,
    DST_SIGNATURE,
    PUBLIC_KEY_SIZE,
    SECRET_KEY_SIZE,
    SIGNATURE_SIZE,
    BlsBackend,
)
from proofs.bls_pyecc import PyEccBackend

BACKEND_ENV = "FLOP_BLS_BACKEND"
VERIFIED_CACHE_SIZE = 8192
# verify's answers computed in other processes (remember_verified), by backend and values.
_REMEMBERED: dict[tuple[str, bytes, bytes, bytes], bool] = {}
BACKEND_NAMES = ("blst", "py_ecc")
KEY_GEN_IKM_MIN = 32
"""draft §2.3: KeyGen's input keying material must be at least 32 bytes."""

DST_LENGTH_MAX = 255
"""RFC 9380 §3.1: a domain separation tag is at most 255 bytes."""

SecretKey = int | bytes


def get_backend(name: str | None = None) -> BlsBackend:
    """The backend called ``name``; None picks ``$FLOP_BLS_BACKEND`` or blst when importable."""
    chosen = name if name is not None else os.environ.get(BACKEND_ENV, "")
    if chosen == "py_ecc":
        return PyEccBackend()
    try:
        from proofs.bls_blst import BlstBackend
    except ImportError:
        if chosen == "blst":
            raise
        return PyEccBackend()
    if chosen not in ("", "blst"):
        raise ValueError(f"{BACKEND_ENV} must be one of {BACKEND_NAMES}, got {chosen!r}")
    return BlstBackend()


BACKEND: BlsBackend = get_backend()
"""The backend every function of this module uses."""


def key_gen(ikm: bytes, key_info: bytes = b"") -> int:
    """KeyGen (draft §2.3): derive a secret key from >= 32 bytes of secret randomness."""
    if not isinstance(ikm, bytes) or len(ikm) < KEY_GEN_IKM_MIN:
        raise ValueError(f"KeyGen needs at least {KEY_GEN_IKM_MIN} bytes of input keying material")
    return int(_PyEccPoP.KeyGen(ikm, key_info))


def sk_to_pk(sk: SecretKey) -> bytes:
    """SkToPk (draft §2.4): the 48-byte public key of ``sk``."""
    return BACKEND.sk_to_pk(_secret_key(sk))


def key_validate(pk: bytes) -> bool:
    """KeyValidate (draft §2.5): a G1 point in the prime-order subgroup, not the identity."""
    return _is_bytes(pk, PUBLIC_KEY_SIZE) and BACKEND.key_validate(pk)


def sign(sk: SecretKey, message: bytes) -> bytes:
    """Sign (draft §3.1 via §2.6): the 96-byte signature of ``message``."""
    _require(isinstance(message, bytes), "message must be bytes")
    return BACKEND.sign(_secret_key(sk), message, DST_SIGNATURE)


def verify(pk: bytes, message: bytes, signature: bytes) -> bool:
    """Verify (draft §2.7): is ``signature`` a signature of ``message`` under ``pk``?"""
    if not (_is_bytes(pk, PUBLIC_KEY_SIZE) and _is_bytes(signature, SIGNATURE_SIZE)):
        return False
    if not isinstance(message, bytes):
        return False
    key = (type(BACKEND).__qualname__, bytes(pk), message, bytes(signature))
    known = _REMEMBERED.get(key)
    if known is not None:
        return known
    return _verify_once(*key)


def remember_verified(pk: bytes, message: bytes, signature: bytes, verified: bool) -> None:
    """Take the answer of ``verify`` computed by this backend in another process (the audit's
    workers, forked from this one, check coming signatures while the replay runs), so that
    ``verify`` of the same values answers without verifying again."""
    if len(_REMEMBERED) >= VERIFIED_CACHE_SIZE:
        _REMEMBERED.clear()
    _REMEMBERED[(type(BACKEND).__qualname__, bytes(pk), message, bytes(signature))] = verified


@functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def _verify_once(backend: str, pk: bytes, message: bytes, signature: bytes) -> bool:
    """The answer of a pure function, kept: the audit checks a verdict's signature and then
    re-executes the command whose handler checks it again (``validator.audit_reexec``). Keyed
    by the backend's name, so a test that switches backends gets the other backend's answer."""
    del backend  # part of the key only
    return BACKEND.verify(pk, message, signature, DST_SIGNATURE)


def forget_verified() -> None:
    """Empty the cache of verified signatures (a benchmark's cold start)."""
    _verify_once.cache_clear()
    _REMEMBERED.clear()


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """Aggregate (draft §2.8): the sum of the signatures; ValueError if empty or invalid."""
    _require(len(signatures) > 0, "Aggregate needs at least one signature")
    for signature in signatures:
        _require(_is_bytes(signature, SIGNATURE_SIZE), "a signature is 96 bytes")
    return BACKEND.aggregate(signatures)


def aggregate_verify(pks: Sequence[bytes], messages: Sequence[bytes], signature: bytes) -> bool:
    """AggregateVerify (draft §3.3.1 with §2.9): one signature over distinct signers' messages."""
    if not _are_bytes(pks, PUBLIC_KEY_SIZE) or not _are_bytes(messages, None):
        return False
    if not pks or len(pks) != len(messages) or not _is_bytes(signature, SIGNATURE_SIZE):
        return False
    return BACKEND.aggregate_verify(pks, messages, signature)


def fast_aggregate_verify(pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """FastAggregateVerify (draft §3.3.4): every key of ``pks`` signed the same ``message``."""
    if not _are_bytes(pks, PUBLIC_KEY_SIZE) or not pks or not isinstance(message, bytes):
        return False
    if not _is_bytes(signature, SIGNATURE_SIZE):
        return False
    return BACKEND.fast_aggregate_verify(pks, message, signature)


def batch_verify(
    pks: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
) -> bool:
    """True iff every ``verify(pks[i], messages[i], signatures[i])``: a batch of signature sets.

    An empty batch is False: a caller that verified nothing must not read it as success.
    """
    if not (_are_bytes(pks, PUBLIC_KEY_SIZE) and _are_bytes(signatures, SIGNATURE_SIZE)):
        return False
    if not _are_bytes(messages, None) or not pks:
        return False
    if not len(pks) == len(messages) == len(signatures):
        return False
    return BACKEND.batch_verify(pks, messages, signatures)


def pop_prove(sk: SecretKey) -> bytes:
    """PopProve (draft §3.3.2): a signature over the public key with the PoP DST."""
    secret = _secret_key(sk)
    return BACKEND.sign(secret, BACKEND.sk_to_pk(secret), DST_POP)


def pop_verify(pk: bytes, proof: bytes) -> bool:
    """PopVerify (draft §3.3.3): does ``proof`` show possession of ``pk``'s secret key?"""
    if not (_is_bytes(pk, PUBLIC_KEY_SIZE) and _is_bytes(proof, SIGNATURE_SIZE)):
        return False
    return BACKEND.verify(pk, pk, proof, DST_POP)


def is_g1_encoding(data: bytes) -> bool:
    """Does ``data`` decode to a G1 point (draft Appendix A, subgroup checked; identity allowed)?"""
    return _is_bytes(data, PUBLIC_KEY_SIZE) and BACKEND.is_g1_encoding(data)


def is_g2_encoding(data: bytes) -> bool:
    """Does ``data`` decode to a G2 point (draft Appendix A, subgroup checked; identity allowed)?"""
    return _is_bytes(data, SIGNATURE_SIZE) and BACKEND.is_g2_encoding(data)


def hash_to_g2(message: bytes, dst: bytes) -> bytes:
    """RFC 9380 §3 hash_to_curve, suite BLS12381G2_XMD:SHA-256_SSWU_RO_, compressed (96 bytes)."""
    _require(isinstance(message, bytes) and isinstance(dst, bytes), "message and dst are bytes")
    _require(0 < len(dst) <= DST_LENGTH_MAX, "RFC 9380 §3.1: a DST is 1..255 bytes")
    return BACKEND.hash_to_g2(message, dst)


def _secret_key(sk: SecretKey) -> int:
    """An ``int`` secret key in 1..r-1, from an int or 32 big-endian bytes (EIP-2333 form)."""
    if isinstance(sk, bytes):
        _require(len(sk) == SECRET_KEY_SIZE, f"a secret key is {SECRET_KEY_SIZE} bytes")
        sk = int.from_bytes(sk, "big")
    _require(isinstance(sk, int) and not isinstance(sk, bool), "a secret key is an int or bytes")
    _require(0 < sk < CURVE_ORDER, "secret key out of range 1..r-1")
    return sk


def _is_bytes(value: object, size: int | None) -> bool:
    return isinstance(value, bytes) and (size is None or len(value) == size)


def _are_bytes(values: object, size: int | None) -> bool:
    if isinstance(values, (bytes, str)) or not isinstance(values, Sequence):
        return False
    return all(_is_bytes(v, size) for v in values)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
