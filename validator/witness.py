"""Witness cosigning: check each signed tree head against the replayed stream, then co-sign.

A validator that replays the log (from the store, the API's event feed or the NATS mirror)
feeds every record to ``Witness.observe``. The witness keeps its own RFC 6962 tree over the
record hashes; when it meets a ``TreeHeadSigned`` record it checks, with ``check_tree_head``,
that the head's signature is the sealer's, that its size grows past the previous head and
that its root is the root of the first ``size`` records it replayed itself (which implies
consistency with every earlier head it checked). A head that passes is returned to be
co-signed: ``make_cosign_envelope`` signs a ``log.cosign`` command whose BLS signature is over
``domain.log.compute_witness_message(size, root)``. The co-signatures are recorded on the log
stream and served with the head (``GET /v1/log/tree-head``), so a log operator cannot show
different histories to different readers without some witness refusing to co-sign.

For a reader that only has the API: ``check_served_head`` verifies a served head against an
earlier one it trusts with the consistency proof the API serves (``proofs.merkle``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from domain.commands import CosignTreeHead, command_kind, encode_command_body
from domain.events import decode_event
from domain.log import Log, compute_witness_message
from domain.records import Record
from proofs import bls, merkle
from proofs.envelope import CommandEnvelope, sign_command
from proofs.identity import Identity
from proofs.tree_head import SignedTreeHead, verify_tree_head
from validator.audit_log import LogView


@dataclass(frozen=True)
class HeadToCosign:
    """A tree head the witness checked and is ready to co-sign."""

    size: int
    root: bytes
    position: int


@dataclass(frozen=True)
class RefusedHead:
    """A tree head the witness refuses to co-sign, and why (an alarm for a human)."""

    size: int
    root: bytes
    position: int
    reason: str


class Witness:
    """Replays records, checks tree heads against them; ``log_signers`` pins the sealer keys
    (raw 32-byte Ed25519 public keys); empty: any key whose signature verifies."""

    def __init__(self, log_signers: Sequence[bytes] = ()) -> None:
        self.log_signers = frozenset(log_signers)
        self.view = LogView()
        self.position = 0
        self.refused: list[RefusedHead] = []

    def observe(self, record: Record) -> HeadToCosign | RefusedHead | None:
        """Feed the next record (position order); a head to co-sign or refuse, or None."""
        if record.position != self.position + 1:
            raise ValueError(f"expected record {self.position + 1}, got {record.position}")
        outcome: HeadToCosign | RefusedHead | None = None
        if record.stream_type == Log.STREAM_TYPE and record.event_type == "TreeHeadSigned":
            event = decode_event(record)
            assert isinstance(event, Log.TreeHeadSigned)
            head = SignedTreeHead(
                event.size, event.root, event.tree_timestamp_ns, event.signer, event.signature
            )
            reason = self.check_tree_head(head, record.position)
            if reason is None:
                self.view.heads[head.size] = head.root
                self.view.last_size = head.size
                outcome = HeadToCosign(head.size, head.root, record.position)
            else:
                outcome = RefusedHead(head.size, head.root, record.position, reason)
                self.refused.append(outcome)
        self.view.add_leaf(record.hash)
        self.position = record.position
        return outcome

    def check_tree_head(self, head: SignedTreeHead, position: int) -> str | None:
        """Why this head must not be co-signed, or None when it holds."""
        if self.log_signers and head.signer not in self.log_signers:
            return "signed by a key that is not the log's"
        if not verify_tree_head(head):
            return "tree head signature does not verify"
        if not self.view.last_size < head.size < position:
            return f"size {head.size} does not grow past {self.view.last_size} before {position}"
        root = self.view.root_at(head.size)
        if root != head.root:
            return f"root differs from the replayed root {root.hex()} of {head.size} records"
        return None


def sign_cosignature(bls_secret: int, size: int, root: bytes) -> bytes:
    """The witness's BLS signature over (size, root)."""
    return bls.sign(bls_secret, compute_witness_message(size, root))


def make_cosign_envelope(
    identity: Identity,
    bls_secret: int,
    head: HeadToCosign,
    *,
    nonce: str,
    issued_at_ns: int,
    network: str = "",
) -> CommandEnvelope:
    """A signed ``log.cosign`` command for ``head`` (execute it or POST /v1/log/cosignatures)."""
    command = CosignTreeHead(
        size=head.size, signature=sign_cosignature(bls_secret, head.size, head.root)
    )
    return sign_command(
        identity,
        command_kind(command),
        encode_command_body(command),
        nonce=nonce,
        issued_at_ns=issued_at_ns,
        network=network,
    )


def make_cosign_envelopes(
    identity: Identity,
    bls_secret: int,
    records: Iterable[Record],
    *,
    issued_at_ns: int,
    from_position: int = 1,
    nonce_prefix: str = "cosign",
    network: str = "",
) -> list[CommandEnvelope]:
    """What a witness replaying ``records`` co-signs: a signed ``log.cosign`` for every head
    it checked, sealed at ``from_position`` or later (tests and benchmarks play witnesses)."""
    witness = Witness()
    envelopes = []
    for record in records:
        head = witness.observe(record)
        if isinstance(head, HeadToCosign) and record.position >= from_position:
            envelopes.append(
                make_cosign_envelope(
                    identity,
                    bls_secret,
                    head,
                    nonce=f"{nonce_prefix}-{head.size}",
                    issued_at_ns=issued_at_ns,
                    network=network,
                )
            )
    return envelopes


def check_served_head(
    trusted_size: int,
    trusted_root: bytes,
    head: SignedTreeHead,
    consistency_proof: Sequence[bytes],
    log_signer: bytes | None = None,
) -> bool:
    """True iff ``head`` is signed (by ``log_signer`` if given) and extends the trusted head."""
    if not verify_tree_head(head, log_signer):
        return False
    return merkle.verify_consistency(
        trusted_size, head.size, trusted_root, head.root, list(consistency_proof)
    )
