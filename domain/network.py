"""The network's rules in the log: the operator set and the ``LedgerPolicy`` in force.

One stream (``network:rules``) holds them. Its first record, ``GenesisDeclared``, is signed by
one of the operators it names and is the first record of a new store (``prior_records`` 0).
A store written before rules were recorded gets its genesis appended later, declaring the
rules that governed its first ``prior_records`` records; the audit checks that history
against it. Later records change the policy (``PolicyChanged``) or the operator set
(``OperatorsChanged``), signed by an operator in force before the change.

Rules are versioned by log position: a change recorded at position P governs the records
after P, never the ones before (``NetworkRules.at``), so a store stays auditable under the
rules that were in force when each record was written.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, decode_event, ns_to_datetime
from domain.policy import OPERATORS_MAX, LedgerPolicy
from domain.records import Record

NETWORK_STREAM_ID = "network:rules"
NETWORK_STREAM_TYPE = "network"


def strip_operators(policy: LedgerPolicy) -> LedgerPolicy:
    """The policy as a network record stores it: its parameters, the operators apart."""
    return msgspec.structs.replace(policy, operators=())


def check_operators(operators: tuple[str, ...]) -> None:
    """An operator set is 1..OPERATORS_MAX distinct ids (``operators_invalid``)."""
    if not 1 <= len(operators) <= OPERATORS_MAX or len(set(operators)) != len(operators):
        raise Rejection(
            f"an operator set is 1..{OPERATORS_MAX} distinct ids, not {len(operators)}",
            code=RejectionCode.OPERATORS_INVALID,
        )


class Network(FlopAggregate):
    """Stream ``network:rules``: the operators and policy in force, and their changes."""

    STREAM_TYPE: ClassVar[str] = NETWORK_STREAM_TYPE

    class GenesisDeclared(FlopAggregate.Created):
        operators: tuple[str, ...]
        policy: LedgerPolicy
        prior_records: int

        def apply(self, network: Network) -> None:
            network.operators = tuple(self.operators)
            network.policy = self.policy
            network.prior_records = self.prior_records

    class PolicyChanged(FlopAggregate.Event):
        policy: LedgerPolicy

        def apply(self, network: Network) -> None:
            network.policy = self.policy

    class OperatorsChanged(FlopAggregate.Event):
        operators: tuple[str, ...]

        def apply(self, network: Network) -> None:
            network.operators = tuple(self.operators)

    operators: tuple[str, ...]
    policy: LedgerPolicy
    prior_records: int

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def declare_genesis(
        cls,
        *,
        signer: str,
        operators: tuple[str, ...],
        policy: LedgerPolicy,
        prior_records: int,
        head_position: int,
        now_ns: int,
    ) -> Network:
        """The genesis: signed by an operator it names, and the store's next record."""
        check_operators(operators)
        if signer not in operators:
            raise Unauthorized(
                f"the genesis is signed by {signer}, who is not one of the operators it names",
                code=RejectionCode.GENESIS_SIGNER_NOT_OPERATOR,
            )
        if prior_records != head_position:
            raise Rejection(
                f"the genesis declares {prior_records} prior records but the store holds "
                f"{head_position}: it must be the store's next record",
                code=RejectionCode.GENESIS_NOT_NEXT,
            )
        return cls._create(
            cls.GenesisDeclared,
            id=NETWORK_STREAM_ID,
            operators=operators,
            policy=strip_operators(policy),
            prior_records=prior_records,
            timestamp=ns_to_datetime(now_ns),
        )

    def change_policy(self, policy: LedgerPolicy, *, now_ns: int) -> None:
        stored = strip_operators(policy)
        if stored == self.policy:
            raise InvalidTransition(
                "the policy is already in force", code=RejectionCode.POLICY_UNCHANGED
            )
        self._trigger(self.PolicyChanged, now_ns, policy=stored)

    def change_operators(self, operators: tuple[str, ...], *, now_ns: int) -> None:
        check_operators(operators)
        if operators == self.operators:
            raise InvalidTransition(
                "the operator set is already in force", code=RejectionCode.OPERATORS_UNCHANGED
            )
        self._trigger(self.OperatorsChanged, now_ns, operators=operators)

    def rules(self) -> LedgerPolicy:
        """The policy in force now, with the operator set in ``operators``."""
        return msgspec.structs.replace(self.policy, operators=self.operators)


class RulesEntry(msgspec.Struct, frozen=True):
    """Rules that govern the records from ``from_position`` on (until the next entry)."""

    from_position: int
    policy: LedgerPolicy


class NetworkRules:
    """The rules in force at each log position, built from the network stream's records.

    The genesis governs from position 1 (a late genesis also covers the records before it);
    a change recorded at position P governs from P + 1.
    """

    def __init__(self) -> None:
        self.entries: list[RulesEntry] = []
        self.genesis_position = 0
        self.version = 0
        self._network: Network | None = None

    @property
    def has_genesis(self) -> bool:
        return self.genesis_position > 0

    @property
    def current(self) -> LedgerPolicy:
        if not self.entries:
            raise Rejection(
                "this ledger has no genesis record yet: no operators or policy are in force",
                code=RejectionCode.GENESIS_MISSING,
            )
        return self.entries[-1].policy

    def at(self, position: int) -> LedgerPolicy:
        """The rules in force for the record at ``position``."""
        if not self.entries:
            raise Rejection(
                "no genesis record: no rules are in force", code=RejectionCode.GENESIS_MISSING
            )
        found = self.entries[0]
        for entry in self.entries:
            if entry.from_position > position:
                break
            found = entry
        return found.policy

    def add(self, record: Record) -> None:
        """Take the next record of the network stream (in stream order)."""
        if record.version != self.version + 1:
            raise ValueError(f"network record version {record.version} after {self.version}")
        network = decode_event(record).mutate(self._network)
        if not isinstance(network, Network):
            raise TypeError(f"{record.stream_id} is not the network stream")
        self._network, self.version = network, record.version
        if record.version == 1:
            self.genesis_position = record.position
            self.entries.append(RulesEntry(from_position=1, policy=network.rules()))
        else:
            self.entries.append(
                RulesEntry(from_position=record.position + 1, policy=network.rules())
            )


def compute_network_rules(records: list[Record]) -> NetworkRules:
    """The rules of a network stream's records (pure)."""
    rules = NetworkRules()
    for record in records:
        rules.add(record)
    return rules
