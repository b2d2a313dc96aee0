"""The network's parameters and named limits: every bound lives here, in one place."""

from __future__ import annotations

import re
from typing import ClassVar

import msgspec

SECOND_NS = 1_000_000_000

# Hard limits on input (a test sits at each bound and one past it).
AMOUNT_MAX = 2**63 - 1  # one transfer, in base units
PRICE_MAX = 10**15
REDUNDANCY_MAX = 16
REGION_CHARS_MAX = 32
REGION_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
GPUS_PER_NODE_MAX = 16
DEVICE_MODEL_KEY_CHARS_MAX = 32  # a key of domain/devices.toml (issue 15)
GPU_UUID_CHARS_MAX = 96  # an NVML UUID is "GPU-" and 36 characters; MIG ones are longer
CHALLENGE_GROUP_NODES_MAX = 16
"""Nodes reporting one GPU UUID challenged along with the one challenged (issue 15): so that
many nodes registered with one UUID cannot make a challenge unbounded."""
REASON_CHARS_MAX = 256
SOLANA_RENT_EXEMPT_MIN_LAMPORTS = 890_880
"""What a new Solana account with no data must hold to exist (rent exemption, 0 bytes): a
payout of less to an unfunded address fails on chain (issue 16, item 7)."""
EVIDENCE_BYTES_MAX = 64 * 1024
DIGEST_BYTES = 32
WORKLOAD_PARAMS_BYTES_MAX = 16 * 1024
# Attestation matmul sizes. Below the minimum a claimed GPU and a CPU take about the same
# time, so the timing check could not tell them apart (a node chooses its challenge size).
ATTESTATION_SIZE_MIN = 1024
ATTESTATION_SIZE_MAX = 4096
"""Equal to ``proofs.matmul.MATRIX_SIZE_MAX``: rules v1/v2 reports stop there, so a larger
challenge could never be answered (issue 15)."""
OPERATORS_MAX = 64  # one operator set (domain.network)
# Fraud proofs (issue 14, attack 5): a matmul row is at most 4·4096 bytes (float32), its
# inclusion path at most 64 hashes; a zk proof artifact and a zkey travel in one command body.
FRAUD_ROWS_MAX = 4096
FRAUD_ROW_BYTES_MAX = 4 * FRAUD_ROWS_MAX
FRAUD_PATH_HASHES_MAX = 64
FRAUD_ARTIFACT_BYTES_MAX = 16 * 1024
FRAUD_ZKEY_BYTES_MAX = 160 * 1024
ATTEMPT_MAX = 2**31 - 1
# Issue 16, item 2: the retention rule of artifacts (docs/design.md, "Re-verifying work").
ARTIFACT_RETENTION_NS = 30 * 86_400 * SECOND_NS
"""How long after a job's or attestation's decision the object store keeps its objects
(result, proof, zkey, report): an audit with ``--verify-work`` re-runs the verifiers on them
until then, and counts a decision older than this whose objects are gone ``past_retention``.
A policy whose fraud exposure is longer keeps them that long (``compute_artifact_retention_ns``)."""
OBJECT_BYTES_MAX = 2**40  # issue 16, item 6: the size an object-stored record may name
# Issue 17, item 2: a wrapped job key is HPKE's enc (32) and the sealed 32-byte data key with
# its tag (48): 80 bytes for our suite; the bounds leave room for a suite with larger keys.
WRAPPED_KEY_BYTES_MIN = 48
WRAPPED_KEY_BYTES_MAX = 256

# GPU classes in increasing capability; a job's requirement is a minimum class.
RULES_V1 = 1
"""The rules of the releases before issue 14 (protocol soundness): validators drawn from the
log head, openings from the node's own commitment, no quorum or claim minimums."""
RULES_V2 = 2
"""The rules of issue 14 (protocol soundness): quorum minimums, zk proofs bound to the job."""
RULES_V3 = 3
"""The rules of issue 15 (hardware attestation): validator-timed probes sized from the device
table, attestations that expire, re-challenges, liveness epochs, reputation in scheduling."""
RULES_V4 = 4
"""The rules of issue 16 (an audit that holds against the operator): every command records the
clock it was decided at, and the ledger's hardening (network ids, chain references of deposits,
withdrawal minimums, spam fees, operator overrides with reasons)."""
RULES_V5 = 5
"""The rules of issue 17 (real jobs): workload params parsed at the door (``domain.workloads``:
every input object recorded as stored by the job's consumer, at a size its params accept; any
signer records its own uploads), inputs by digest, ``job.cancel``, encryption keys registered
and job keys released on the log, a private job's claim lapsing without blame when its inputs
key never came (``domain.key_releases``)."""
RULES_VERSION = RULES_V5
"""The rules this code writes records under. ``LedgerPolicy.rules_version`` names the version
a record was written under, so the audit checks each record under its own rules: a store
written before a rule existed declares ``rules_version`` 1 in its late genesis
(``flopledger db genesis`` with ``FLOP_POLICY_JSON='{"rules_version": 1}'``)."""

GPU_CLASSES: tuple[str, ...] = ("cpu", "consumer", "workstation", "datacenter")


def gpu_class_rank(name: str) -> int:
    return GPU_CLASSES.index(name)


class LedgerPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Economic and timing parameters, passed into every decision (never read from globals)."""

    node_stake_min: int = 1_000
    validator_stake_min: int = 1_000
    region_stagger_ns: int = 5 * SECOND_NS
    result_window_ns: int = 600 * SECOND_NS
    reassign_attempts_max: int = 3
    unbonding_period_ns: int = 3_600 * SECOND_NS
    jail_period_ns: int = 3_600 * SECOND_NS
    attestation_window_ns: int = 120 * SECOND_NS
    validator_fee_bps: int = 500
    treasury_fee_bps: int = 200
    slash_bps: int = 1_000
    slash_to_consumer_bps: int = 5_000
    quorum_numerator: int = 2
    quorum_denominator: int = 3
    quorum_by_stake: bool = False
    """Rules v1 only: a quorum of the drawn stake instead of a head count. From rules v2 the
    quorum is always by drawn stake (``domain.verdicts.has_quorum``): a head count lets many
    cheap validators outvote the stake that carries the risk."""
    verdict_commit_window_ns: int = 60 * SECOND_NS
    verdict_reveal_window_ns: int = 60 * SECOND_NS
    validator_replacements_max: int = 2
    attestation_validators: int = 3
    equivocation_slash_bps: int = 5_000
    operators: tuple[str, ...] = ()
    rules_version: int = RULES_VERSION
    """Which protocol rules govern the records written under this policy (``RULES_V1``,
    ``RULES_VERSION``); the audit applies a rule only to records whose version has it."""
    # issue 14, attack 9: quorum minimums (rules v2; domain.verdicts, validator.audit_quorum)
    redundancy_min: int = 3
    """Fewest validators a job may ask for (``redundancy_below_minimum`` at submit)."""
    quorum_signers_min: int = 2
    """Fewest signers a decision needs, whatever stake they hold (no lone whale decides)."""
    # issue 14, attacks 4/6: a claim reserves, of the node's bonded stake, the slash it risks
    # (``slash_bps`` of the stake at the claim) and a claim bond, forfeited to the consumer
    # when the result window is missed (``domain.claims``).
    claim_bond_bps: int = 2_000
    """The claim bond as a share of the job's ``max_price`` (what the consumer escrowed, so
    a node cannot shrink its bond by asking a lower price)."""
    claim_bond_min: int = 10
    """The least claim bond, so that vanishing on a cheap job is never free."""
    # issue 14, attack 5: validators paid for every decided job, fraud proofs, canaries.
    fraud_window_ns: int = 3_000 * SECOND_NS
    """How long after a round's decision a fraud proof against its pass votes is accepted
    (settlement stays immediate; a proof later reverses nothing, it slashes and repays).
    With the round's windows it must fit in ``unbonding_period_ns`` (``find_policy_problem``),
    so a validator cannot withdraw before its last vote stops being provable."""
    fraud_slash_bps: int = 5_000
    """Share of its bonded stake a validator loses for each pass vote on a result proven
    wrong (by a fraud proof or a revealed canary)."""
    fraud_challenger_reward_bps: int = 5_000
    """Share of the validators' fraud slashes paid to the challenger who proved it; the rest
    goes to the consumer when the wrong result was paid for, else it is burned."""
    canary_rate_bps: int = 200
    """Target share of jobs the operators plant as canaries (known-bad results sealed in the
    log before submission); the planters' rate, published so validators can price it."""
    # Issue 14, attack 2 (steering the validator draw): draws wait for a beacon epoch
    # (``domain.beacon``), which takes contributions this long before anyone may close it.
    beacon_window_ns: int = 30 * SECOND_NS
    # issue 14, attack 8: zk keys with a public trapdoor (rules v2; domain.job, validators)
    insecure_setups_allowed: bool = False
    """Whether zk-prove jobs may name ``setup_seed`` keys, whose toxic waste anyone derives
    from the job's params (devnets and tests only: ``insecure_setup_not_allowed``)."""

    # issue 15: validator-timed hardware probes (proofs.probe, proofs.device_table).
    attestation_ttl_ns: int = 3_600 * SECOND_NS
    """How long a passed attestation lets a node claim (rules v3): then it must pass again."""
    rechallenge_interval_min_ns: int = 600 * SECOND_NS
    """Fewest nanoseconds between two challenges of one node, so that re-challenges at random
    times cannot be turned into a denial of service against it."""
    probe_target_ns: int = 1_500_000_000
    """Compute a probe asks of the claimed device at its table rate and the least efficiency."""
    probe_efficiency_min_bps: int = 5_000
    """The least share of its datasheet rate an honest device reaches on the probe (50%): the
    deadline allows that, so a device half as fast would need 100% of its own peak."""
    probe_side: int = 8_192
    """Rows and columns of the compute probe's product (its inner size is what scales)."""
    probe_memory_fraction_bps: int = 500
    """Share of the claimed device memory the memory probe's working set fills (5%: with
    hashing on the host, the fill grows with it, and every drawn validator's slot must end
    within the commit window: (attestation_validators + 1) × the longest probe's slot, 55 s
    for an H200 at the defaults, under ``verdict_commit_window_ns``)."""
    probe_hash_bytes_per_s: int = 16 * 1024**3
    """Rate at which an honest node hashes probe rows (SHA-256 on its host, in threads: about
    1-2 GiB/s a core with SHA extensions): the hashing allowance of a deadline."""
    probe_rtt_max_ns: int = 200_000_000
    """The most round-trip time a deadline allows (the measured RTT, bounded by this)."""
    probe_regen_factor: int = 4
    """How many times longer regenerating the memory working set takes than reading it back
    at the claimed bandwidth (so a node that did not hold it misses the read deadline)."""
    probe_openings: int = 8
    """Rows a validator opens after each probe commitment."""
    probe_entries_per_row: int = 4
    """Entries of each opened row a validator recomputes (O(k) each)."""
    probe_slot_ns: int = 10 * SECOND_NS
    """The drawn validators of one attestation round probe in turn, one slot each, so an
    honest device serves one probe at a time; nodes challenged together share slots."""
    probe_misses_slash: int = 3
    """Consecutive failed or missed challenges after which the node is slashed (rules v3)."""
    # issue 15: liveness epochs, reputation, scheduling (domain.liveness, domain.reputation).
    liveness_epoch_ns: int = 600 * SECOND_NS
    liveness_probers: int = 3
    """Validators assigned to probe each active node per liveness epoch."""
    reputation_half_life_ns: int = 86_400 * SECOND_NS
    # issue 16, item 7: the gateway (domain.services.handlers_jobs.handle_withdraw).
    withdrawal_min: int = SOLANA_RENT_EXEMPT_MIN_LAMPORTS
    """The least withdrawal (rules v4, ``withdrawal_below_minimum``): a payout to a new
    address below Solana's rent-exempt minimum fails on chain, so it is refused up front."""
    # issue 16, item 8: appending costs money (rules v4; domain.services.fees)
    log_fee: int = 10
    """Fee the signer pays the treasury for each command that only moves its own stake
    (``LOG_FEE_KINDS``): such appends change no one else's state, so without a fee they are
    free spam (the draw-grinding attack of issue 14 appended 1-unit bonds)."""
    # issue 16, item 9: the network every envelope is signed for (proofs.envelope).
    network_id: str = ""
    """The network's name (``NETWORK_ID_PATTERN``); from rules v4 every envelope must be
    signed for it (``network_mismatch``), so a command signed for one deployment cannot run
    on another. Named once (genesis, or the change to rules v4), never changed after."""
    # issue 16, item 5: operator powers split between keys (``domain.operator_powers``).
    log_key: str = ""
    """From rules v4, when named: the one key that seals tree heads (an operator)."""
    deposit_authority: str = ""
    """From rules v4, when named: the one key that credits deposits (an operator, never the
    log key)."""
    # issue 17, item 2: private payloads (rules v5; ``domain.key_releases``).
    key_release_window_ns: int = 120 * SECOND_NS
    """How long after a claim of a private job its consumer has to release the inputs key
    to the claiming node; without a release by then the claim lapses (``job.expire``): the
    job goes back to the market, the claim bond is returned and the node is not blamed."""

    # issue 17, item 1: the object routes (``api.objects``)
    object_upload_bytes_max: int = 2**30
    """The largest object ``PUT /v1/objects`` accepts (413 past it)."""

    # issue 18: LLM completions (rules v5; ``domain.completions``)
    completion_signers: tuple[str, ...] = ()
    """The keys that may open and abort completions (the OpenAI endpoint's signer: it holds
    no consumer signature, only the consumer's delegation); empty: any operator."""
    completion_sample_rate_ppm: int = 100_000
    """Share of committed completions (parts per million) that drawn validators check, drawn
    from the beacon randomness that closes after the commit."""
    completion_commit_window_ns: int = 120 * SECOND_NS
    """How long after its opening only the serving node may end a completion (by committing
    it); after that anyone may abort it, so a vanished node never holds an escrow for good."""
    completion_challenge_window_ns: int = 3_600 * SECOND_NS
    """The charges a node was paid for completions committed this long before a rejected one
    are what its slash covers (times ``completion_slash_multiple``)."""
    completion_slash_multiple: int = 10
    """What a rejected sampled check takes, as a multiple of the window's charges: at least
    1 / the sample rate, so that skipping the work loses in expectation."""

    LATE_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "object_upload_bytes_max",
            "key_release_window_ns",
            "completion_signers",
            "completion_sample_rate_ppm",
            "completion_commit_window_ns",
            "completion_challenge_window_ns",
            "completion_slash_multiple",
        }
    )
    """Fields added after records of this policy existed: a record stores them only when
    they differ from their default (``domain.events.encode_event``), so that re-running a
    recorded genesis or policy change writes the bytes recorded before they existed."""

    def quorum_size(self, assigned: int) -> int:
        """Smallest count that is at least numerator/denominator of the assigned validators."""
        return -(-assigned * self.quorum_numerator // self.quorum_denominator)


BPS = 10_000
PPM = 1_000_000
POLICY_INT_MAX = 2**63 - 1
NETWORK_ID_CHARS_MAX = 64
NETWORK_ID_PATTERN = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"
"""A network id: lower-case letters, digits, dots and dashes (``devnet-3f2a``)."""


def find_policy_problem(policy: LedgerPolicy) -> str | None:
    """Why a policy cannot govern a ledger (a number outside 0..2**63-1, a zero quorum
    denominator), or None when it can."""
    for name in policy.__struct_fields__:
        value = getattr(policy, name)
        is_number = isinstance(value, int) and not isinstance(value, bool)
        if is_number and not 0 <= value <= POLICY_INT_MAX:
            return f"{name} must be 0..{POLICY_INT_MAX}, not {value}"
    if policy.quorum_denominator == 0:
        return "quorum_denominator must be positive"
    if policy.completion_sample_rate_ppm > PPM:
        return f"completion_sample_rate_ppm must be 0..{PPM}"
    if not RULES_V1 <= policy.rules_version <= RULES_VERSION:
        return f"rules_version must be {RULES_V1}..{RULES_VERSION}, not {policy.rules_version}"
    problem = find_key_problem(policy)
    if problem is not None:
        return problem
    if policy.rules_version > RULES_V1 and compute_fraud_exposure_ns(policy) > (
        policy.unbonding_period_ns
    ):
        return (
            f"unbonding_period_ns ({policy.unbonding_period_ns}) must cover the fraud window "
            f"after a validator's last vote ({compute_fraud_exposure_ns(policy)}): else it "
            "withdraws its stake before a fraud proof of that vote can slash it"
        )
    return None


def find_key_problem(policy: LedgerPolicy) -> str | None:
    """Issue 16 (items 9, 5): a well-formed network id; a deposit authority apart from the
    log key. None when the policy's names are sound."""
    network_id = policy.network_id
    if network_id and (
        len(network_id) > NETWORK_ID_CHARS_MAX or not re.match(NETWORK_ID_PATTERN, network_id)
    ):
        return (
            f"network_id {network_id!r} must be 1..{NETWORK_ID_CHARS_MAX} lower-case letters, "
            "digits, dots and dashes"
        )
    if policy.log_key and policy.log_key == policy.deposit_authority:
        return "deposit_authority must be another key than log_key (issue 16, item 5)"
    return None


def compute_fraud_exposure_ns(policy: LedgerPolicy) -> int:
    """How long a validator's pass vote stays provable after it stopped being drawn: its
    last round may run its commit and reveal windows once more per replacement before it is
    decided, then the fraud window runs (issue 14, attack 5). A validator that unbonds
    everything is drawn no more; its stake must stay slashable at least this long."""
    round_ns = policy.verdict_commit_window_ns + policy.verdict_reveal_window_ns
    return policy.fraud_window_ns + round_ns * (1 + policy.validator_replacements_max)


def compute_artifact_retention_ns(policy: LedgerPolicy | None) -> int:
    """How long the objects of a decision made under ``policy`` are kept (issue 16, item 2):
    ``ARTIFACT_RETENTION_NS``, or the policy's fraud exposure when that is longer, so that
    no object is deleted while a fraud proof that needs it could still be made."""
    if policy is None:
        return ARTIFACT_RETENTION_NS
    return max(ARTIFACT_RETENTION_NS, compute_fraud_exposure_ns(policy))
