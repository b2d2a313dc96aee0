"""Wire types of the ledger API: request bounds and response bodies (msgspec Structs).

The API renders them (and its OpenAPI document from them); the client parses answers into
them, so both sides share one definition that neither owns. Read types mirror the
aggregates' ``view()`` dicts so that the schema documents every field. Hashes and keys are
hex text. The signed command envelope on the wire is ``proofs.envelope.EnvelopeIn``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from domain.devices import ProbeSpec

PAGE_LIMIT_MAX = 100
PAGE_LIMIT_DEFAULT = 50
EVENTS_LIMIT_MAX = 1000
EVENTS_LIMIT_DEFAULT = 100
OFFSET_MAX = 1_000_000
# Integer bounds in the OpenAPI document are rendered as floats: keep them exact (< 2**53).
POSITION_MAX = 2**53 - 1
FILTER_CHARS_MAX = 64
ID_CHARS_MAX = 80
IDEMPOTENCY_KEY_CHARS_MAX = 128

HexHash = Annotated[str, msgspec.Meta(description="32 bytes, hex")]

SAMPLE_ACTOR = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"


class CommandAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """What a command did: the aggregate it concerned and the log positions it wrote."""

    command_id: str
    kind: str
    subject: str
    first_position: int
    last_position: int


class Escrow(msgspec.Struct, frozen=True, kw_only=True):
    """The pending transfer that holds a job's maximum price until settlement or expiry."""

    account: str
    hold_id: str
    amount: int


class JobAccepted(CommandAccepted, frozen=True, kw_only=True):
    """A submitted job: its id and its escrow."""

    job_id: str
    escrow: Escrow


class CompletionAccepted(CommandAccepted, frozen=True, kw_only=True):
    """An opened completion (issue 18): its id (``cmpl-...``); its escrow is on its record."""

    completion_id: str


class WarmModelView(msgspec.Struct, frozen=True, kw_only=True):
    """A registered model a node holds warm, and how many completions it serves at once."""

    model_id: str
    capacity: int


class GpuView(msgspec.Struct, frozen=True):
    name: str
    memory_mib: int
    model: str = ""
    """Its device table key (rules v3)."""
    uuid: str = ""


class ChallengeView(msgspec.Struct, frozen=True):
    nonce: str
    seed: str
    size: int
    deadline_ns: int
    probes: list[ProbeSpec] = []
    """What the drawn validators ask of each device (rules v3; empty: a report challenge)."""
    group: str = ""
    """Shared by the nodes reporting one GPU UUID challenged together."""


class ReputationView(msgspec.Struct, frozen=True, kw_only=True):
    """A node's reputation (``domain.reputation``): its score at ``as_of_ns`` (now for one
    node, the node's last record in lists) and its observations since registration."""

    score_bps: int
    as_of_ns: int
    counts: dict[str, int]


class UptimeView(msgspec.Struct, frozen=True, kw_only=True):
    """A node's decided liveness epochs and its latest measured round-trip times."""

    epochs_up: int
    epochs_down: int
    last_epoch: int
    last_up: bool
    rtt_us: int
    rtt_by_region: dict[str, int]


class NodeView(msgspec.Struct, frozen=True, kw_only=True):
    """A node as the ledger sees it."""

    id: str
    owner: str
    region: str
    gpus: list[GpuView]
    gpu_class: str
    price: int
    state: str
    stake: int
    unbonding: int
    unbond_ready_ns: int
    jailed_until_ns: int
    slashed_total: int
    version: int
    challenge: ChallengeView | None = None
    attestation_validators: list[str] = []
    """The validators drawn to judge the open challenge (they alone may probe the node)."""
    # issue 15: liveness and reputation
    reputation: ReputationView | None = None
    uptime: UptimeView | None = None
    # issue 15: hardware attestation (rules v3)
    models: list[str] = []
    """Each GPU's device table key, in GPU order."""
    uuids: list[str] = []
    attestation_tier: str = ""
    """How the last attestation passed: "timed", "cc" or "operator" ("" before rules v3)."""
    attested_at_ns: int = 0
    attestation_expires_ns: int = 0
    """When the attestation stops letting the node claim (0: none, or a report attestation)."""
    inventory_attested: bool = False
    """Whether the attestation covers the GPUs the node has now."""
    failed_challenges: int = 0
    """Failed challenges since the last pass or misses slash."""
    group: str = ""
    """The open challenge's group of nodes sharing a GPU UUID ("" alone)."""
    # issue 18: LLM completions
    warm_models: list[WarmModelView] = []
    """The registered models the node holds warm (``node.advertise_models``)."""
    llm_endpoint: str = ""
    """Where the API reaches the node's completion server ("" when it serves none)."""


class WorkloadView(msgspec.Struct, frozen=True):
    kind: str
    gpu_class_min: str
    params: dict[str, str | int | bool]


class PayoutView(msgspec.Struct, frozen=True):
    account: str
    amount: int
    role: str


class KeyReleaseView(msgspec.Struct, frozen=True, kw_only=True):
    """A job key wrapped by ``sender`` to ``recipient``'s registered key (issue 17; hex)."""

    sender: str
    recipient: str
    purpose: str
    attempt: int
    recipient_key: str
    wrapped: str
    at_ns: int


class ResultView(msgspec.Struct, frozen=True, kw_only=True):
    """A job's committed result (issue 17; hex): the commitment the ledger settles, and the
    digests of the node's signed manifest and of the proof object the consumer downloads."""

    commitment: str
    artifact_digest: str
    proof_digest: str


class EncryptionKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """An actor's registered X25519 encryption key (issue 17; hex)."""

    actor: str
    public_key: str
    rotations: int
    version: int


class ApiKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """A delegated API key's record (issue 18): its hash (hex), never the secret."""

    key_id: str
    key_hash: str
    consumer: str
    spend_limit: int
    spent: int
    expires_ns: int
    revoked: bool
    revoked_at_ns: int | None
    version: int


class RegisteredModelView(msgspec.Struct, frozen=True, kw_only=True):
    """A registered language model (issue 18): identity by content digest (hex), shape, prices
    in base units per 1,000 tokens."""

    model_id: str
    content_digest: str
    architecture: str
    dtype: str
    context_tokens: int
    price_per_1k_input_tokens: int
    price_per_1k_output_tokens: int
    registered_by: str
    version: int


class CompletionRecordView(msgspec.Struct, frozen=True, kw_only=True):
    """A completion's ledger record (issue 18; digests hex): what was opened under which key
    and escrow, what the node committed and was charged, and where its check stands
    (``state``: opened, committed, aborted, cleared, verified or rejected)."""

    id: str
    consumer: str
    key_id: str
    model_id: str
    node_id: str
    provider: str
    request_digest: str
    prompt_tokens_max: int
    max_tokens: int
    greedy: bool
    escrow: int
    state: str
    prompt_tokens: int
    completion_tokens: int
    charge: int
    commitment: str
    proof_digest: str
    committed_at_ns: int
    opened_at_ns: int
    commit_due_ns: int
    """Until then only the serving node may end it (by committing); then anyone may abort."""
    payouts: list[PayoutView]
    fees: list[PayoutView]
    """What the signers of its sampled check were paid."""
    validators: list[str]
    verdicts: dict[str, bool]
    outcome: str
    """Why it was aborted, cleared or rejected ("" otherwise)."""
    version: int


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """A job and where it stands."""

    id: str
    consumer: str
    state: str
    workload: WorkloadView
    max_price: int
    region: str
    redundancy: int
    deadline_ns: int
    attempt: int
    node_id: str | None
    price: int
    result_due_ns: int
    validators: list[str]
    verdicts: dict[str, bool]
    payouts: list[PayoutView]
    version: int
    key_releases: list[KeyReleaseView] = []
    """The data keys released for a private job, oldest first (issue 17)."""
    result: ResultView | None = None
    """The committed result, once there is one (issue 17)."""


class ValidatorView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    bls_public_key: str
    stake: int
    unbonding: int
    slashed_total: int
    version: int
    region: str = ""
    """Where it measures liveness from (issue 15)."""
    check_models: list[str] = []
    """The registered models it checks (``validator.declare_models``, issue 18)."""


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """Paging facts of a list: pass ``next_offset`` as ``offset`` for the next page."""

    offset: int
    limit: int
    total: int
    next_offset: int | None


class NodeList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[NodeView]
    page: Page


class RegisteredModelList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[RegisteredModelView]
    page: Page


class JobList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[JobView]
    page: Page


class ValidatorList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ValidatorView]
    page: Page


class BalanceView(msgspec.Struct, frozen=True, kw_only=True):
    """An account's balances (TigerBeetle style): posted and pending, both sides."""

    account: str
    balance: int
    available: int
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    version: int


class EntryView(msgspec.Struct, frozen=True, kw_only=True):
    """One event of an account's stream: a transfer leg, a hold, or its posting/voiding."""

    version: int
    position: int
    event_type: str
    transfer_id: str | None = None
    counterparty: str | None = None
    amount: int | None = None
    side: str | None = None
    reason: str | None = None
    at_us: int | None = None


class EntryList(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    items: list[EntryView]
    next_version: int | None


class EventView(msgspec.Struct, frozen=True, kw_only=True):
    """One record of the global log; ``hash = sha256(prev_hash || canonical record)``."""

    position: int
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    data: dict[str, Any]
    command_id: str
    metadata: dict[str, Any] | None
    prev_hash: HexHash
    hash: HexHash


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[EventView]
    next_position: int
    head_position: int


TREE_HEAD_SEALED = "sealed"
"""A head the sealer signed and recorded on the log stream (``log.seal``)."""
TREE_HEAD_IN_PROCESS = "in_process"
"""A head this API process signed on the fly: nothing is sealed yet (or the size asked for
is not a sealed one). It carries no co-signatures and no anchor."""
TreeHeadSource = Annotated[
    str,
    msgspec.Meta(
        description="sealed: a head the sealer recorded on the log; in_process: signed by "
        "this API process because no sealed head of that size exists"
    ),
]


class CosignatureView(msgspec.Struct, frozen=True, kw_only=True):
    """One witness's BLS12-381 signature over ``domain.log.compute_witness_message``."""

    validator_id: str
    signature: Annotated[str, msgspec.Meta(description="96-byte BLS signature, hex")]


class AnchorView(msgspec.Struct, frozen=True, kw_only=True):
    """Where the head's memo landed on Solana."""

    chain_signature: str
    slot: int


class TreeHeadView(msgspec.Struct, frozen=True, kw_only=True):
    """A signed tree head over the first ``size`` record hashes (proofs.tree_head), with the
    witnesses' co-signatures and the Solana anchor when it is a sealed head."""

    size: int
    root: HexHash
    timestamp_ns: int
    signer: str
    signature: str
    source: TreeHeadSource = TREE_HEAD_SEALED
    cosignatures: list[CosignatureView] = []
    anchor: AnchorView | None = None


class InclusionProofView(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9162 audit path of the record at ``position`` (leaf index position-1)."""

    position: int
    leaf_index: int
    tree_size: int
    leaf_hash: HexHash
    root: HexHash
    proof: list[HexHash]
    source: TreeHeadSource = TREE_HEAD_SEALED


class ConsistencyProofView(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9162 consistency proof between trees of ``first`` and ``second`` records."""

    first: int
    second: int
    first_root: HexHash
    second_root: HexHash
    proof: list[HexHash]
    source: TreeHeadSource = TREE_HEAD_SEALED


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    checks: dict[str, str] = {}


class NetworkView(msgspec.Struct, frozen=True, kw_only=True):
    """The network a client signs for (issue 16, item 9) and who holds the operator powers:
    ``network_id`` goes into every envelope (empty on a network that names none, rules
    before v4); ``log_key`` seals tree heads and ``deposit_authority`` credits deposits
    (empty: any operator, rules before v4)."""

    network_id: str
    rules_version: int
    operators: list[str]
    log_key: str = ""
    deposit_authority: str = ""


OBJECT_DIGEST_PATTERN = "^[0-9a-f]{64}$"


class ObjectView(msgspec.Struct, frozen=True, kw_only=True):
    """An object stored by ``PUT /v1/objects`` (issue 17): its address, size and mark."""

    digest: Annotated[
        str,
        msgspec.Meta(pattern=OBJECT_DIGEST_PATTERN, description="hex SHA-256 of the bytes stored"),
    ]
    size_bytes: Annotated[int, msgspec.Meta(ge=0)]
    encrypted: Annotated[
        bool, msgspec.Meta(description="marked ciphertext: readable by anyone who names it")
    ]
