"""Encryption keys and job key releases through the API (issue 17, item 2), for consumers,
nodes and validators alike.

- ``ensure_encryption_key``: register the signer's X25519 key (derived from its Ed25519 key
  file, ``proofs.encryption_keys``) on first use, or rotate a registered key that is not the
  derived one; a no-op when the ledger has it already.
- ``release_job_key``: wrap a job's data key (HPKE, ``proofs.sealed_object.wrap_key``) to the
  recipient's *registered* key, read from the ledger, and record the release; the ledger
  refuses a key that is not the recipient's (``recipient_key_mismatch``).
- ``get_released_keys``: the releases on a job addressed to the signer's current key,
  unwrapped; one that does not open is returned with ``data_key`` None (its sender released
  bytes that are no key: the recipient holds what shows it).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem
from adapters.ledger_api.wire import CommandAccepted, KeyReleaseView
from domain.commands import RegisterEncryptionKey, ReleaseJobKey
from domain.errors import RejectionCode
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.sealed_object import SealedObjectError, unwrap_key, wrap_key


@dataclass(frozen=True)
class ReleasedKey:
    """A release addressed to the signer, and the data key it opened to (None: it did not)."""

    release: KeyReleaseView
    data_key: bytes | None


def ensure_encryption_key(client: ApiClient, identity: Identity) -> bytes:
    """The signer's encryption public key, registered on the ledger (registering or rotating
    it first when the ledger has none or another)."""
    public = derive_encryption_keypair(identity)[1]
    try:
        registered = bytes.fromhex(client.get_encryption_key(identity.id).public_key)
    except NotFoundProblem:
        registered = b""
    if registered != public:
        try:
            client.send(RegisterEncryptionKey(public_key=public), identity=identity)
        except ApiProblem as problem:
            # Two clients of one actor (e.g. concurrent ``job submit``s) both saw no key and
            # both registered it: the second's refusal says the key is in place.
            if problem.code != RejectionCode.ENCRYPTION_KEY_UNCHANGED:
                raise
    return public


def release_job_key(
    client: ApiClient,
    identity: Identity,
    *,
    job_id: str,
    attempt: int,
    recipient: str,
    purpose: str,
    data_key: bytes,
) -> CommandAccepted:
    """Wrap ``data_key`` to ``recipient``'s registered key for this job and purpose, and
    record the release (NotFoundProblem when the recipient registered no key)."""
    recipient_key = bytes.fromhex(client.get_encryption_key(recipient).public_key)
    wrapped = wrap_key(data_key, recipient_key, job_id=job_id, purpose=purpose)
    command = ReleaseJobKey(
        job_id=job_id,
        attempt=attempt,
        recipient=recipient,
        purpose=purpose,  # type: ignore[arg-type]  # checked by the command's Literal
        recipient_key=recipient_key,
        wrapped=wrapped,
    )
    return client.send(command, identity=identity)


def get_released_keys(
    client: ApiClient,
    identity: Identity,
    job_id: str,
    *,
    purpose: str | None = None,
    attempt: int | None = None,
) -> list[ReleasedKey]:
    """The releases on ``job_id`` to the signer's current key (optionally of one purpose and
    attempt), oldest first, each unwrapped with the signer's derived private key."""
    private, public = derive_encryption_keypair(identity)
    found = []
    for release in client.get_job(job_id).key_releases:
        if release.recipient != identity.id or release.recipient_key != public.hex():
            continue
        if purpose is not None and release.purpose != purpose:
            continue
        if attempt is not None and release.attempt != attempt:
            continue
        try:
            data_key: bytes | None = unwrap_key(
                bytes.fromhex(release.wrapped), private, job_id=job_id, purpose=release.purpose
            )
        except SealedObjectError:
            data_key = None
        found.append(ReleasedKey(release=release, data_key=data_key))
    return found
