"""Command bodies: what each signed envelope kind carries, with its limits next to the type.

Parsed once at the edge (``decode_command``); a body that does not fit its type is rejected
with the field path in the message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from domain.api_keys import API_KEY_HASH_BYTES, API_KEY_ID_PATTERN
from domain.completions import (
    COMPLETION_ID_HEX_CHARS,
    COMPLETION_ID_PATTERN,
    COMPLETION_ID_PREFIX,
    COMPLETION_TOKENS_MAX,
    LLM_ENDPOINT_CHARS_MAX,
    LLM_ENDPOINT_PATTERN,
    PROMPT_TOKENS_MAX,
    WARM_CAPACITY_MAX,
    WARM_MODELS_MAX,
)
from domain.errors import Rejection, RejectionCode
from domain.liveness import LIVENESS_REPORT_NODES_MAX, LIVENESS_RTT_US_MAX
from domain.models import (
    CONTEXT_TOKENS_MAX,
    MODEL_ID_CHARS_MAX,
    MODEL_ID_PATTERN,
    PRICE_PER_1K_TOKENS_MAX,
)
from domain.policy import (
    AMOUNT_MAX,
    ATTEMPT_MAX,
    ATTESTATION_SIZE_MAX,
    ATTESTATION_SIZE_MIN,
    DEVICE_MODEL_KEY_CHARS_MAX,
    DIGEST_BYTES,
    FRAUD_ARTIFACT_BYTES_MAX,
    FRAUD_PATH_HASHES_MAX,
    FRAUD_ROW_BYTES_MAX,
    FRAUD_ROWS_MAX,
    FRAUD_ZKEY_BYTES_MAX,
    GPU_UUID_CHARS_MAX,
    GPUS_PER_NODE_MAX,
    OBJECT_BYTES_MAX,
    OPERATORS_MAX,
    PRICE_MAX,
    REASON_CHARS_MAX,
    REDUNDANCY_MAX,
    REGION_CHARS_MAX,
    REGION_PATTERN,
    WRAPPED_KEY_BYTES_MAX,
    WRAPPED_KEY_BYTES_MIN,
    LedgerPolicy,
)
from domain.validators import CHECK_MODELS_MAX
from domain.verdicts import SALT_BYTES_MAX, SALT_BYTES_MIN

ActorId = Annotated[
    str, msgspec.Meta(min_length=32, max_length=44, pattern="^[1-9A-HJ-NP-Za-km-z]+$")
]
JobId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[a-z0-9-]+$")]
Amount = Annotated[int, msgspec.Meta(ge=1, le=AMOUNT_MAX)]
Price = Annotated[int, msgspec.Meta(ge=1, le=PRICE_MAX)]
Region = Annotated[
    str, msgspec.Meta(min_length=1, max_length=REGION_CHARS_MAX, pattern=REGION_PATTERN)
]
GpuClass = Literal["cpu", "consumer", "workstation", "datacenter"]
Digest = Annotated[bytes, msgspec.Meta(min_length=DIGEST_BYTES, max_length=DIGEST_BYTES)]
Reason = Annotated[str, msgspec.Meta(max_length=REASON_CHARS_MAX)]
TimeNs = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
WorkloadKind = Literal["matmul", "inference", "zk-prove"]
ParamKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ParamValue = Annotated[str, msgspec.Meta(max_length=1024)] | int | bool
BlsSignature = Annotated[bytes, msgspec.Meta(min_length=96, max_length=96)]
Salt = Annotated[bytes, msgspec.Meta(max_length=SALT_BYTES_MAX)]
ChallengeNonce = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
DeviceModelKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=DEVICE_MODEL_KEY_CHARS_MAX, pattern="^[a-z0-9-]+$")
]
GpuUuid = Annotated[
    str, msgspec.Meta(min_length=1, max_length=GPU_UUID_CHARS_MAX, pattern="^[A-Za-z0-9-]+$")
]


class Command(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of command bodies."""


class GpuSpec(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    memory_mib: Annotated[int, msgspec.Meta(ge=0, le=10**7)]
    # issue 15: hardware attestation (rules v3; ``domain.devices``)
    model: DeviceModelKey | None = None
    """The device table key of this GPU; without it, the model its NVML ``name`` identifies."""
    uuid: GpuUuid | None = None
    """The GPU's UUID as NVML reports it (self-reported: nodes sharing one are challenged at
    the same moment)."""


class RegisterNode(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    owner: ActorId | None = None
    region: Region
    gpus: Annotated[list[GpuSpec], msgspec.Meta(max_length=GPUS_PER_NODE_MAX)]
    gpu_class: GpuClass
    price: Price


class BondStake(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    target: ActorId
    amount: Amount


class RequestUnbond(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    target: ActorId
    amount: Amount


class WithdrawStake(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    target: ActorId


class RequestAttestationChallenge(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node_id: ActorId
    size: Annotated[int, msgspec.Meta(ge=ATTESTATION_SIZE_MIN, le=ATTESTATION_SIZE_MAX)] = (
        ATTESTATION_SIZE_MIN
    )


class SubmitAttestation(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node_id: ActorId
    nonce: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    inventory_digest: Digest
    commitment: Digest
    timings_ns: Annotated[list[TimeNs], msgspec.Meta(max_length=GPUS_PER_NODE_MAX)]


class RechallengeNode(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Challenge a node's attestation again (rules v3): by an active validator or the node's
    owner, at most once per ``rechallenge_interval_min_ns``."""

    node_id: ActorId


class UpdateInventory(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The node's new GPU list (rules v3): it claims again once the new list is attested."""

    node_id: ActorId
    gpus: Annotated[list[GpuSpec], msgspec.Meta(max_length=GPUS_PER_NODE_MAX)]
    gpu_class: GpuClass | None = None
    """The node's class with the new GPUs (default: the class it registered)."""


class DecideAttestation(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node_id: ActorId
    accepted: bool
    reason: Reason = ""
    certificate: Annotated[bytes, msgspec.Meta(max_length=4096)] = b""


class Deposit(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    account_owner: ActorId
    amount: Amount
    chain_reference: Annotated[str, msgspec.Meta(max_length=128)] = ""


class Withdraw(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    amount: Amount
    destination: ActorId | None = None


class Workload(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    kind: WorkloadKind
    gpu_class_min: GpuClass = "cpu"
    params: Annotated[dict[ParamKey, ParamValue], msgspec.Meta(max_length=32)] = {}


class SubmitJob(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    workload: Workload
    max_price: Price
    region: Region
    redundancy: Annotated[int, msgspec.Meta(ge=1, le=REDUNDANCY_MAX)] = 3
    deadline_ns: TimeNs


class ClaimJob(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    job_id: JobId
    node_id: ActorId


class CommitResult(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    job_id: JobId
    commitment: Digest
    artifact_digest: Digest
    proof_digest: Digest


class CommitVerdict(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A validator's salted verdict hash (``domain.verdicts.compute_verdict_commitment``)."""

    job_id: JobId
    verdict_hash: Digest


class RecordVerdict(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Reveal a committed verdict: the verdict, its BLS signature and the commit's salt."""

    job_id: JobId
    passed: bool
    reason: Reason = ""
    signature: BlsSignature
    salt: Salt = b""


class CommitAttestationVerdict(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node_id: ActorId
    nonce: ChallengeNonce
    verdict_hash: Digest


class RecordAttestationVerdict(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node_id: ActorId
    nonce: ChallengeNonce
    passed: bool
    reason: Reason = ""
    signature: BlsSignature
    salt: Salt


class ExpireAttestation(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Crank an attestation vote whose reveal window closed: replace the absent, or give up."""

    node_id: ActorId


class ReportEquivocation(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Two BLS signatures by one validator, one passing and one failing the same result."""

    validator_id: ActorId
    subject_kind: Literal["job", "attestation", "completion"]
    subject_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    nonce: Annotated[str, msgspec.Meta(max_length=128)] = ""
    commitment: Digest
    signature_pass: BlsSignature
    signature_fail: BlsSignature


class MatmulRowEvidence(
    Command,
    frozen=True,
    forbid_unknown_fields=True,
    kw_only=True,
    tag="matmul_row",
    tag_field="type",
):
    """A committed row of C (its inclusion path to the result's root) that is not A·B's."""

    index: Annotated[int, msgspec.Meta(ge=0, lt=FRAUD_ROWS_MAX)]
    row: Annotated[bytes, msgspec.Meta(max_length=FRAUD_ROW_BYTES_MAX)]
    path: Annotated[list[Digest], msgspec.Meta(max_length=FRAUD_PATH_HASHES_MAX)]


class Groth16Evidence(
    Command,
    frozen=True,
    forbid_unknown_fields=True,
    kw_only=True,
    tag="groth16",
    tag_field="type",
):
    """The committed proof artifact (its SHA-256 is the result commitment) that does not prove
    the job's statement; ``zkey`` is the job's proving key when the job names one."""

    artifact: Annotated[bytes, msgspec.Meta(max_length=FRAUD_ARTIFACT_BYTES_MAX)]
    zkey: Annotated[bytes, msgspec.Meta(max_length=FRAUD_ZKEY_BYTES_MAX)] = b""


class MatmulEntryEvidence(
    Command,
    frozen=True,
    forbid_unknown_fields=True,
    kw_only=True,
    tag="matmul_entry",
    tag_field="type",
):
    """A Freivalds fraud proof on a data matmul job (rules v5): entry (``row``, ``column``)
    of C, with A's row (its path under the params' ``a_rows_root``), B's column (under
    ``b_cols_root``) and C's row (under the result commitment), beyond the rounding bound of
    that row times that column (``proofs.matmul_data``, "Entry check")."""

    row: Annotated[int, msgspec.Meta(ge=0, lt=FRAUD_ROWS_MAX)]
    column: Annotated[int, msgspec.Meta(ge=0, lt=FRAUD_ROWS_MAX)]
    a_row: Annotated[bytes, msgspec.Meta(max_length=FRAUD_ROW_BYTES_MAX)]
    a_path: Annotated[list[Digest], msgspec.Meta(max_length=FRAUD_PATH_HASHES_MAX)]
    b_column: Annotated[bytes, msgspec.Meta(max_length=FRAUD_ROW_BYTES_MAX)]
    b_path: Annotated[list[Digest], msgspec.Meta(max_length=FRAUD_PATH_HASHES_MAX)]
    c_row: Annotated[bytes, msgspec.Meta(max_length=FRAUD_ROW_BYTES_MAX)]
    c_path: Annotated[list[Digest], msgspec.Meta(max_length=FRAUD_PATH_HASHES_MAX)]


FraudEvidence = MatmulRowEvidence | Groth16Evidence | MatmulEntryEvidence
Attempt = Annotated[int, msgspec.Meta(ge=1, le=ATTEMPT_MAX)]


class ProveFraud(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Prove the result judged in a job's ``attempt`` wrong: its pass voters are slashed."""

    job_id: JobId
    attempt: Attempt
    evidence: FraudEvidence


class SealCanary(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An operator seals a canary before planting it: ``digest`` is
    ``domain.canary.compute_canary_digest(job id, salt)``."""

    digest: Digest


class RevealCanary(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """After the decision, reveal a sealed canary; ``evidence`` proves its result wrong
    (needed when anyone voted pass on it)."""

    job_id: JobId
    attempt: Attempt
    salt: Annotated[bytes, msgspec.Meta(min_length=SALT_BYTES_MIN, max_length=SALT_BYTES_MAX)]
    evidence: FraudEvidence | None = None


class ReleaseJob(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    job_id: JobId
    reason: Reason = ""


class ExpireJob(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    job_id: JobId


class CancelJob(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The consumer withdraws a job no node has claimed; its escrow goes back (rules v5)."""

    job_id: JobId


class RegisterValidator(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    owner: ActorId | None = None
    bls_public_key: Annotated[bytes, msgspec.Meta(min_length=48, max_length=48)]
    proof_of_possession: Annotated[bytes, msgspec.Meta(min_length=96, max_length=96)]
    region: Region | None = None
    """Where the validator measures liveness from (issue 15: latency to a consumer's region
    is what validators in that region measure)."""
    stake: Amount | None = None
    """Bonded at registration from the registering key's account: at least
    ``validator_stake_min`` under rules v4 (issue 16, item 8), so registering is never free."""


class UnjailNode(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node_id: ActorId


class DeregisterNode(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    node_id: ActorId


Epoch = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class ContributeBeacon(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A snapshot validator's BLS signature over the epoch's beacon message
    (``domain.beacon.compute_beacon_message``)."""

    epoch: Epoch
    signature: BlsSignature


class CloseBeacon(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Close an epoch past its deadline (anyone; the missing contributors are recorded)."""

    epoch: Epoch


# issue 15: liveness epochs (domain.liveness)
LivenessEpochNumber = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
RttUs = Annotated[int, msgspec.Meta(ge=0, le=LIVENESS_RTT_US_MAX)]


class ReportLiveness(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A prober's results for its nodes in one liveness epoch: ``nodes[i]`` is up when bit
    ``i`` of ``up`` is set (``domain.liveness.encode_bitmap``), ``rtt_us[i]`` its RTT."""

    epoch: LivenessEpochNumber
    nodes: Annotated[
        list[ActorId], msgspec.Meta(min_length=1, max_length=LIVENESS_REPORT_NODES_MAX)
    ]
    up: Annotated[bytes, msgspec.Meta(max_length=(LIVENESS_REPORT_NODES_MAX + 7) // 8)]
    rtt_us: Annotated[list[RttUs], msgspec.Meta(max_length=LIVENESS_REPORT_NODES_MAX)]


class CloseLiveness(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Decide a liveness epoch whose reports are in (anyone, once the epoch after it ended)."""

    epoch: LivenessEpochNumber


TreeSize = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
ChainSignature = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Slot = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
TRANSACTION_BYTES_MAX = 1232  # a Solana packet
CommandIdHex = Annotated[str, msgspec.Meta(min_length=64, max_length=64, pattern="^[0-9a-f]+$")]


class SealTreeHead(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The sealer's signed tree head (Ed25519 by the actor's key, ``proofs.tree_head``)."""

    size: TreeSize
    root: Digest
    tree_timestamp_ns: TimeNs
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


class CosignTreeHead(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A validator's BLS co-signature of a signed tree head it checked (``domain.log``)."""

    size: TreeSize
    signature: Annotated[bytes, msgspec.Meta(min_length=96, max_length=96)]


class AnchorTreeHead(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where a tree head's memo landed on Solana."""

    size: TreeSize
    chain_signature: ChainSignature
    slot: Slot


class RecordWithdrawalSubmitted(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The bridge signed a payout for an ``account.withdraw`` command and will send it."""

    withdrawal_id: CommandIdHex
    chain_signature: ChainSignature
    last_valid_block_height: Slot
    transaction: Annotated[bytes, msgspec.Meta(max_length=TRANSACTION_BYTES_MAX)] = b""


class ConfirmWithdrawal(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The payout of a withdrawal landed on chain."""

    withdrawal_id: CommandIdHex
    chain_signature: ChainSignature
    slot: Slot


class VoidWithdrawal(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The chain refused a withdrawal's payout for good and every attempt has expired
    unlanded: close it and give the amount back to its owner (issue 16, item 7)."""

    withdrawal_id: CommandIdHex
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=REASON_CHARS_MAX)]


class DeclareGenesis(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The network's first rules: its operators and its whole policy (``domain.network``).

    ``prior_records`` is 0 for a new store; a store written before rules were recorded
    declares how many records came before (they were written under these rules)."""

    operators: Annotated[list[ActorId], msgspec.Meta(min_length=1, max_length=OPERATORS_MAX)]
    policy: LedgerPolicy
    prior_records: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0


class ChangePolicy(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A new policy (every field, the operators apart), in force after its record."""

    policy: LedgerPolicy


class ChangeOperators(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A new operator set, in force after its record."""

    operators: Annotated[list[ActorId], msgspec.Meta(min_length=1, max_length=OPERATORS_MAX)]


class RecordObjectStored(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An upload to the object store completed (issue 16, item 6; ``domain.objects``)."""

    digest: Digest
    size_bytes: Annotated[int, msgspec.Meta(ge=0, le=OBJECT_BYTES_MAX)]
    uploader: ActorId


EncryptionPublicKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class RegisterEncryptionKey(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The signer's X25519 public key, others wrap job keys to (issue 17; rules v5)."""

    public_key: EncryptionPublicKey


class ReleaseJobKey(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A job's data key wrapped to a recipient's registered key (``domain.key_releases``)."""

    job_id: JobId
    attempt: Annotated[int, msgspec.Meta(ge=1, le=ATTEMPT_MAX)]
    recipient: ActorId
    purpose: Literal["inputs", "result"]
    recipient_key: EncryptionPublicKey
    wrapped: Annotated[
        bytes, msgspec.Meta(min_length=WRAPPED_KEY_BYTES_MIN, max_length=WRAPPED_KEY_BYTES_MAX)
    ]


ModelId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MODEL_ID_CHARS_MAX, pattern=MODEL_ID_PATTERN)
]
PricePer1kTokens = Annotated[int, msgspec.Meta(ge=0, le=PRICE_PER_1K_TOKENS_MAX)]


class RegisterModel(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A model the network serves, by the digest of its files (issue 18; ``domain.models``)."""

    model_id: ModelId
    content_digest: Digest
    architecture: Literal["llama"]
    dtype: Literal["float32", "bfloat16", "float16"]
    context_tokens: Annotated[int, msgspec.Meta(ge=1, le=CONTEXT_TOKENS_MAX)]
    price_per_1k_input_tokens: PricePer1kTokens
    price_per_1k_output_tokens: PricePer1kTokens


ApiKeyId = Annotated[str, msgspec.Meta(min_length=64, max_length=64, pattern=API_KEY_ID_PATTERN)]


class CreateApiKey(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A spending delegation under the signer's account (issue 18; ``domain.api_keys``): the
    key's id (hex SHA-256 of ``key_hash``), the SHA-256 of the secret key, the cap in base
    units and the expiry (0: never)."""

    key_id: ApiKeyId
    key_hash: Annotated[
        bytes, msgspec.Meta(min_length=API_KEY_HASH_BYTES, max_length=API_KEY_HASH_BYTES)
    ]
    spend_limit: Amount
    expires_ns: TimeNs = 0


class RevokeApiKey(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """End one of the signer's own delegations (issue 18; ``domain.api_keys``)."""

    key_id: ApiKeyId


# issue 18, items 3-4: LLM completions (``domain.completions``)
CompletionId = Annotated[
    str,
    msgspec.Meta(
        min_length=len(COMPLETION_ID_PREFIX) + COMPLETION_ID_HEX_CHARS,
        max_length=len(COMPLETION_ID_PREFIX) + COMPLETION_ID_HEX_CHARS,
        pattern=COMPLETION_ID_PATTERN,
    ),
]


class WarmModelSpec(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model_id: ModelId
    capacity: Annotated[int, msgspec.Meta(ge=1, le=WARM_CAPACITY_MAX)]
    """How many completions of this model the node serves at once."""


class AdvertiseModels(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The registered models a node holds warm now, signed by the node's own key like its
    heartbeats (an empty list: none), and the URL the API reaches its completion server at."""

    node_id: ActorId
    models: Annotated[list[WarmModelSpec], msgspec.Meta(max_length=WARM_MODELS_MAX)]
    endpoint: Annotated[
        str, msgspec.Meta(max_length=LLM_ENDPOINT_CHARS_MAX, pattern="^$|" + LLM_ENDPOINT_PATTERN)
    ] = ""
    """Required with any model; "" with none."""


class DeclareCheckModels(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The registered models a validator checks (holds loaded to replay a completion's
    bundle), signed by the validator's own key; an empty list: none. A sampled completion's
    round draws only among the validators that declared its model (issue 18)."""

    validator_id: ActorId
    models: Annotated[list[ModelId], msgspec.Meta(max_length=CHECK_MODELS_MAX)]


class OpenCompletion(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A completion signer opens a completion under a consumer's key: its escrow (the bound
    of the prompt's tokens plus ``max_tokens`` at the model's prices) is held at once."""

    key_id: ApiKeyId
    model_id: ModelId
    node_id: ActorId
    request_digest: Digest
    """``proofs.llm_request.compute_request_digest`` of the request the node is sent."""
    prompt_tokens_max: Annotated[int, msgspec.Meta(ge=1, le=PROMPT_TOKENS_MAX)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=COMPLETION_TOKENS_MAX)]
    greedy: bool
    """The request's temperature is 0 (its tokens are then checked as argmax)."""


class CommitCompletion(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The serving node's usage and commitment: settled at once (``domain.completions``)."""

    completion_id: CompletionId
    prompt_tokens: Annotated[int, msgspec.Meta(ge=0, le=PROMPT_TOKENS_MAX)]
    completion_tokens: Annotated[int, msgspec.Meta(ge=0, le=COMPLETION_TOKENS_MAX)]
    commitment: Digest
    """``proofs.toploc.compute_completion_commitment`` of the bundle."""
    proof_digest: Digest
    """The object digest of the uploaded ``proofs.llm_request.CompletionBundle``."""


class AbortCompletion(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Void an uncommitted completion: by a completion signer, or anyone past its window."""

    completion_id: CompletionId
    reason: Reason = ""


class CommitCompletionVerdict(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A drawn validator's salted verdict hash on a sampled completion
    (``domain.verdicts.compute_verdict_commitment`` over ``completion:<id>``)."""

    completion_id: CompletionId
    verdict_hash: Digest


class RecordCompletionVerdict(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Reveal a committed verdict on a sampled completion: its BLS signature covers
    ``proofs.quorum.completion_verdict_message`` (id, commitment, passed)."""

    completion_id: CompletionId
    passed: bool
    reason: Reason = ""
    signature: BlsSignature
    salt: Salt = b""


class ExpireCompletion(Command, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Anyone cranks an overdue completion: an uncommitted one past its commit window is
    aborted; a sampled one whose reveal window closed has its absent validators replaced
    (or its round given up: it clears)."""

    completion_id: CompletionId


COMMAND_TYPES: dict[str, type[Command]] = {
    "node.register": RegisterNode,
    "stake.bond": BondStake,
    "stake.unbond": RequestUnbond,
    "stake.withdraw": WithdrawStake,
    "node.attestation.challenge": RequestAttestationChallenge,
    "node.attestation.submit": SubmitAttestation,
    "node.attestation.decide": DecideAttestation,
    "node.unjail": UnjailNode,
    "node.deregister": DeregisterNode,
    "account.deposit": Deposit,
    "account.withdraw": Withdraw,
    "job.submit": SubmitJob,
    "job.claim": ClaimJob,
    "job.commit_result": CommitResult,
    "job.commit_verdict": CommitVerdict,
    "job.record_verdict": RecordVerdict,
    "job.expire": ExpireJob,
    "job.release": ReleaseJob,
    "validator.register": RegisterValidator,
    "log.seal": SealTreeHead,
    "log.cosign": CosignTreeHead,
    "log.anchor": AnchorTreeHead,
    "withdrawal.submit": RecordWithdrawalSubmitted,
    "withdrawal.confirm": ConfirmWithdrawal,
    "withdrawal.void": VoidWithdrawal,  # issue 16, item 7
    "validator.report_equivocation": ReportEquivocation,
    "node.attestation.commit_verdict": CommitAttestationVerdict,
    "node.attestation.record_verdict": RecordAttestationVerdict,
    "node.attestation.expire": ExpireAttestation,
    "network.genesis": DeclareGenesis,
    "network.change_policy": ChangePolicy,
    "network.change_operators": ChangeOperators,
    "job.prove_fraud": ProveFraud,
    "canary.seal": SealCanary,
    "canary.reveal": RevealCanary,
    "beacon.contribute": ContributeBeacon,
    "beacon.close": CloseBeacon,
    # issue 15: hardware attestation
    "node.attestation.rechallenge": RechallengeNode,
    "node.inventory.update": UpdateInventory,
    # issue 15: liveness and reputation
    "liveness.report": ReportLiveness,
    "liveness.close": CloseLiveness,
    # issue 16, item 6: object-stored records
    "object.record_stored": RecordObjectStored,
    # issue 17, item 2: encryption keys and job key releases
    "key.register": RegisterEncryptionKey,
    "job.release_key": ReleaseJobKey,
    # issue 17: the consumer withdraws an unclaimed job
    "job.cancel": CancelJob,
    # issue 18, item 2: registered language models
    "model.register": RegisterModel,
    # issue 18, item 1: delegated API keys
    "apikey.create": CreateApiKey,
    "apikey.revoke": RevokeApiKey,
    # issue 18, items 3-4: LLM completions
    "node.advertise_models": AdvertiseModels,
    "validator.declare_models": DeclareCheckModels,
    "completion.open": OpenCompletion,
    "completion.commit": CommitCompletion,
    "completion.abort": AbortCompletion,
    "completion.commit_verdict": CommitCompletionVerdict,
    "completion.record_verdict": RecordCompletionVerdict,
    "completion.expire": ExpireCompletion,
}
_KINDS_BY_TYPE: dict[type[Command], str] = {t: kind for kind, t in COMMAND_TYPES.items()}


def decode_command(kind: str, body: dict[str, Any]) -> Command:
    """Turn an envelope's kind and JSON body into a typed command, or reject it."""
    command_type = COMMAND_TYPES.get(kind)
    if command_type is None:
        raise Rejection(
            f"unknown command kind {kind!r}; known: {sorted(COMMAND_TYPES)}",
            code=RejectionCode.UNKNOWN_COMMAND_KIND,
        )
    try:
        return msgspec.convert(body, type=command_type, strict=False)
    except msgspec.ValidationError as exc:
        raise Rejection(f"{kind}: {exc}", code=RejectionCode.COMMAND_BODY_INVALID) from exc


def encode_command_body(command: Command) -> dict[str, Any]:
    """The JSON body of a command, as it is signed (bytes become base64 text)."""
    result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(command))
    return result


def command_kind(command: Command) -> str:
    """The envelope kind of a typed command (KeyError for a type that is no command kind)."""
    return _KINDS_BY_TYPE[type(command)]
