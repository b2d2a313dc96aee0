"""Typed errors shared by the domain, the services and the ports.

Three kinds (STYLE.md): rejections (a rule said no; stable ``code``, the user can act),
operating errors (a store, broker or chain failed; raised by adapters with ``raise ... from``)
and bugs (anything else: crash loudly). The API maps ``Rejection.code`` to a problem type URI.
"""

from __future__ import annotations

import enum


class RejectionCode(enum.StrEnum):
    """Every stable rejection code. The values are API: the problem type URI is
    ``PROBLEM_TYPE_BASE + code``, and daemons compare against these members."""

    # the defaults of the Rejection classes below
    REJECTED = "rejected"
    NOT_FOUND = "not_found"
    INVALID_TRANSITION = "invalid_transition"
    JOB_ALREADY_CLAIMED = "job_already_claimed"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    ACTOR_NOT_AUTHORIZED = "actor_not_authorized"

    # an aggregate in a state that does not allow the command (``job_<state>``, ``node_<state>``)
    JOB_CANCELLED = "job_cancelled"
    JOB_CLAIMED = "job_claimed"
    JOB_EXPIRED = "job_expired"
    JOB_REFUNDED = "job_refunded"
    JOB_REJECTED = "job_rejected"
    JOB_RESULT_COMMITTED = "job_result_committed"
    JOB_SETTLED = "job_settled"
    JOB_SUBMITTED = "job_submitted"
    JOB_VERIFIED = "job_verified"
    NODE_ACTIVE = "node_active"
    NODE_ATTESTED = "node_attested"
    NODE_DEREGISTERED = "node_deregistered"
    NODE_JAILED = "node_jailed"
    NODE_REGISTERED = "node_registered"

    # a named aggregate that does not exist (``<stream type>_not_found``)
    ACCOUNT_NOT_FOUND = "account_not_found"
    CANARY_NOT_FOUND = "canary_not_found"
    DECISION_NOT_FOUND = "decision_not_found"
    BEACON_NOT_FOUND = "beacon_not_found"
    DIRECTORY_NOT_FOUND = "directory_not_found"
    JOB_NOT_FOUND = "job_not_found"
    LOG_NOT_FOUND = "log_not_found"
    NETWORK_NOT_FOUND = "network_not_found"
    NODE_NOT_FOUND = "node_not_found"
    VALIDATOR_NOT_FOUND = "validator_not_found"
    WITHDRAWAL_NOT_FOUND = "withdrawal_not_found"

    # envelope checks: raised by ``proofs.envelope`` (which imports nothing of ours), whose
    # classes carry the same values
    ACTOR_MISMATCH = "actor_mismatch"
    ENVELOPE_EXPIRED = "envelope_expired"
    ENVELOPE_INVALID = "envelope_invalid"
    ENVELOPE_MALFORMED = "envelope_malformed"
    SIGNATURE_INVALID = "signature_invalid"

    # rules, by name
    ARTIFACT_NOT_FOUND = "artifact_not_found"
    ARTIFACT_TOO_LARGE = "artifact_too_large"
    ACCOUNTS_MUST_DIFFER = "accounts_must_differ"
    AMOUNT_EXCEEDS_MAXIMUM = "amount_exceeds_maximum"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    ATTESTATION_ALREADY_SUBMITTED = "attestation_already_submitted"
    ATTESTATION_VOTE_OPEN = "attestation_vote_open"
    BEACON_ALREADY_CONTRIBUTED = "beacon_already_contributed"
    BEACON_DEADLINE_NOT_REACHED = "beacon_deadline_not_reached"
    BEACON_EPOCH_NOT_OPEN = "beacon_epoch_not_open"
    BEACON_NOT_A_CONTRIBUTOR = "beacon_not_a_contributor"
    BEACON_SIGNATURE_INVALID = "beacon_signature_invalid"
    BLS_KEY_MALFORMED = "bls_key_malformed"
    BOND_MUST_BE_SIGNED_BY_OWNER = "bond_must_be_signed_by_owner"
    CHALLENGE_ALREADY_OPEN = "challenge_already_open"
    CHALLENGE_EXPIRED = "challenge_expired"
    CHALLENGE_NONCE_MISMATCH = "challenge_nonce_mismatch"
    CLAIM_CAPACITY_REACHED = "claim_capacity_reached"
    CLAIM_TOO_EARLY_FOR_REGION = "claim_too_early_for_region"
    COMMAND_BODY_INVALID = "command_body_invalid"
    COMMIT_WINDOW_CLOSED = "commit_window_closed"
    COMMIT_WINDOW_OPEN = "commit_window_open"
    COSIGNATURE_INVALID = "cosignature_invalid"
    DEADLINE_IN_PAST = "deadline_in_past"
    DEADLINE_NOT_REACHED = "deadline_not_reached"
    EQUIVOCATION_SIGNATURE_INVALID = "equivocation_signature_invalid"
    EVIDENCE_ALREADY_USED = "evidence_already_used"
    EXCEEDS_AVAILABLE = "exceeds_available"
    GENESIS_ALREADY_RECORDED = "genesis_already_recorded"
    GENESIS_MISSING = "genesis_missing"
    GENESIS_NOT_NEXT = "genesis_not_next"
    GENESIS_SIGNER_NOT_OPERATOR = "genesis_signer_not_operator"
    GPU_CLASS_TOO_LOW = "gpu_class_too_low"
    HEAD_ALREADY_ANCHORED = "head_already_anchored"
    HEAD_ALREADY_COSIGNED = "head_already_cosigned"
    HOLD_ALREADY_CLOSED = "hold_already_closed"
    HOLD_ID_MUST_BE_UNIQUE = "hold_id_must_be_unique"
    HOLD_NOT_FOUND = "hold_not_found"
    JAIL_NOT_SERVED = "jail_not_served"
    JOB_DEADLINE_PASSED = "job_deadline_passed"
    MAX_PRICE_MUST_BE_POSITIVE = "max_price_must_be_positive"
    NO_OPEN_CHALLENGE = "no_open_challenge"
    NO_RESULT_COMMITTED = "no_result_committed"
    NO_SUBMITTED_ATTESTATION = "no_submitted_attestation"
    NO_VALIDATORS_AVAILABLE = "no_validators_available"
    NODE_ALREADY_REGISTERED = "node_already_registered"
    NODE_EXCLUDED_FROM_JOB = "node_excluded_from_job"
    NODE_NOT_ACTIVE = "node_not_active"
    NONCE_ALREADY_USED = "nonce_already_used"
    NOT_THE_CLAIMING_NODE = "not_the_claiming_node"
    NOT_THE_NODE = "not_the_node"
    NOTHING_TO_REPLACE = "nothing_to_replace"
    NOTHING_TO_WITHDRAW = "nothing_to_withdraw"
    OPERATOR_ONLY = "operator_only"
    OPERATORS_INVALID = "operators_invalid"
    OPERATORS_UNCHANGED = "operators_unchanged"
    PAYOUT_PENDING = "payout_pending"
    POLICY_INVALID = "policy_invalid"
    POLICY_UNCHANGED = "policy_unchanged"
    PRICE_ABOVE_MAXIMUM = "price_above_maximum"
    PROOF_OF_POSSESSION_INVALID = "proof_of_possession_invalid"
    QUORUM_NOT_REACHED = "quorum_not_reached"
    QUORUM_REACHED = "quorum_reached"
    RANDOMNESS_PENDING = "randomness_pending"
    RESULT_TOO_LATE = "result_too_late"
    RESULT_WINDOW_CLOSED = "result_window_closed"
    RESULT_WINDOW_OPEN = "result_window_open"
    REVEAL_DOES_NOT_MATCH_COMMIT = "reveal_does_not_match_commit"
    REVEAL_WINDOW_CLOSED = "reveal_window_closed"
    REVEAL_WINDOW_OPEN = "reveal_window_open"
    SALT_LENGTH_INVALID = "salt_length_invalid"
    SLASH_AMOUNT_OUT_OF_RANGE = "slash_amount_out_of_range"
    SLASH_NEEDS_EVIDENCE = "slash_needs_evidence"
    STAKE_BELOW_CLAIM_RESERVE = "stake_below_claim_reserve"
    STAKE_BELOW_MINIMUM = "stake_below_minimum"
    STAKE_MUST_BE_WITHDRAWN = "stake_must_be_withdrawn"
    STAKE_TARGET_NOT_FOUND = "stake_target_not_found"
    # issue 16, item 8: validators register with their stake (rules v4)
    REGISTRATION_STAKE_BELOW_MINIMUM = "registration_stake_below_minimum"
    TOO_MUCH_CONTENTION = "too_much_contention"
    TREE_HEAD_NOT_FOUND = "tree_head_not_found"
    TREE_HEAD_SIGNATURE_INVALID = "tree_head_signature_invalid"
    TREE_SIZE_BEYOND_LOG = "tree_size_beyond_log"
    TREE_SIZE_MUST_GROW = "tree_size_must_grow"
    UNBOND_AMOUNT_OUT_OF_RANGE = "unbond_amount_out_of_range"
    UNBOND_BELOW_CLAIM_RESERVE = "unbond_below_claim_reserve"
    UNBONDING_NOT_COMPLETE = "unbonding_not_complete"
    UNKNOWN_COMMAND_KIND = "unknown_command_kind"
    VALIDATOR_ALREADY_REGISTERED = "validator_already_registered"
    VALIDATOR_NOT_ASSIGNED = "validator_not_assigned"
    VALIDATOR_REPLACEMENTS_EXHAUSTED = "validator_replacements_exhausted"
    VALIDATORS_ALREADY_ASSIGNED = "validators_already_assigned"
    VALIDATORS_NOT_ASSIGNED = "validators_not_assigned"
    VERDICT_ALREADY_COMMITTED = "verdict_already_committed"
    VERDICT_ALREADY_RECORDED = "verdict_already_recorded"
    VERDICT_NOT_COMMITTED = "verdict_not_committed"
    VERDICT_SIGNATURE_INVALID = "verdict_signature_invalid"
    WITHDRAWAL_ALREADY_SENT = "withdrawal_already_sent"
    WITHDRAWAL_ATTEMPT_ALREADY_RECORDED = "withdrawal_attempt_already_recorded"
    WITHDRAWAL_ATTEMPT_UNKNOWN = "withdrawal_attempt_unknown"
    WITHDRAWAL_ATTEMPTS_EXHAUSTED = "withdrawal_attempts_exhausted"
    # issue 16, items 3 and 7: money against the chain, the gateway (rules v4)
    WITHDRAWAL_BELOW_MINIMUM = "withdrawal_below_minimum"
    WITHDRAWAL_VOIDED = "withdrawal_voided"
    DEPOSIT_CHAIN_REFERENCE_REQUIRED = "deposit_chain_reference_required"
    DEPOSIT_CHAIN_REFERENCE_REUSED = "deposit_chain_reference_reused"
    # issue 14, attack 9: quorum minimums
    REDUNDANCY_BELOW_MINIMUM = "redundancy_below_minimum"
    # issue 14, attack 5: fraud proofs and canaries
    CANARY_ALREADY_SEALED = "canary_already_sealed"
    CANARY_EVIDENCE_REQUIRED = "canary_evidence_required"
    CANARY_NOT_SEALED = "canary_not_sealed"
    CANARY_SEALED_AFTER_JOB = "canary_sealed_after_job"
    CHALLENGER_NOT_ALLOWED = "challenger_not_allowed"
    FRAUD_ALREADY_PROVEN = "fraud_already_proven"
    FRAUD_EVIDENCE_KIND_MISMATCH = "fraud_evidence_kind_mismatch"
    FRAUD_PROOF_INVALID = "fraud_proof_invalid"
    FRAUD_WINDOW_CLOSED = "fraud_window_closed"
    NO_PASS_VOTES = "no_pass_votes"
    # issue 14, attack 8: zk keys with a public trapdoor
    INSECURE_SETUP_NOT_ALLOWED = "insecure_setup_not_allowed"

    # issue 15: hardware attestation (validator-timed probes, expiry, binding)
    ATTESTATION_BY_REPORT_RETIRED = "attestation_by_report_retired"
    ATTESTATION_DECIDED_BY_VALIDATORS = "attestation_decided_by_validators"
    ATTESTATION_EXPIRED = "attestation_expired"
    GPU_CLASS_ABOVE_MODELS = "gpu_class_above_models"
    GPU_MODEL_UNKNOWN = "gpu_model_unknown"
    INVENTORY_NOT_ATTESTED = "inventory_not_attested"
    RECHALLENGE_TOO_SOON = "rechallenge_too_soon"
    RECHALLENGER_NOT_ALLOWED = "rechallenger_not_allowed"
    RULES_V3_REQUIRED = "rules_v3_required"

    # issue 15: liveness, reputation, scheduling
    LIVENESS_ALREADY_REPORTED = "liveness_already_reported"
    LIVENESS_EPOCH_CLOSED = "liveness_epoch_closed"
    LIVENESS_EPOCH_FULL = "liveness_epoch_full"
    LIVENESS_EPOCH_NOT_OVER = "liveness_epoch_not_over"
    LIVENESS_NEEDS_RULES_V3 = "liveness_needs_rules_v3"
    LIVENESS_NOT_ASSIGNED = "liveness_not_assigned"
    LIVENESS_NOT_FOUND = "liveness_not_found"
    LIVENESS_REPORT_MALFORMED = "liveness_report_malformed"
    LIVENESS_REPORT_OUT_OF_EPOCH = "liveness_report_out_of_epoch"

    # issue 16, item 6: object-stored records
    RULES_V4_REQUIRED = "rules_v4_required"
    OBJECT_UPLOADER_MISMATCH = "object_uploader_mismatch"
    OBJECT_UPLOADER_UNKNOWN = "object_uploader_unknown"
    OBJECT_ALREADY_RECORDED = "object_already_recorded"
    OBJECT_NOT_FOUND = "object_not_found"
    CHAIN_CREDIT_NOT_FOUND = "chain_credit_not_found"

    # issue 16, items 9 and 5: network ids in envelopes, operator powers (rules v4)
    NETWORK_MISMATCH = "network_mismatch"
    NETWORK_ID_IMMUTABLE = "network_id_immutable"
    OVERRIDE_REASON_REQUIRED = "override_reason_required"
    LOG_KEY_ONLY = "log_key_only"
    DEPOSIT_AUTHORITY_ONLY = "deposit_authority_only"

    # issue 17, item 1: the object routes and their signed requests
    OBJECT_DIGEST_INVALID = "object_digest_invalid"
    OBJECT_READ_REFUSED = "object_read_refused"
    OBJECT_HEADER_INVALID = "object_header_invalid"
    OBJECT_NOT_SEALED = "object_not_sealed"
    OBJECT_STORE_UNAVAILABLE = "object_store_unavailable"
    REQUEST_AUTH_INVALID = "request_auth_invalid"
    REQUEST_UNSIGNED = "request_unsigned"
    REQUEST_AUTH_MALFORMED = "request_auth_malformed"
    REQUEST_EXPIRED = "request_expired"
    REQUEST_SIGNATURE_INVALID = "request_signature_invalid"

    # issue 17, item 2: encryption keys and job key releases (rules v5; domain.key_releases)
    RULES_V5_REQUIRED = "rules_v5_required"
    ENCRYPTION_KEY_NOT_FOUND = "encryption_key_not_found"
    ENCRYPTION_KEY_UNCHANGED = "encryption_key_unchanged"
    ENCRYPTION_KEY_NOT_REGISTERED = "encryption_key_not_registered"
    JOB_NOT_PRIVATE = "job_not_private"
    KEY_RELEASE_ATTEMPT_MISMATCH = "key_release_attempt_mismatch"
    KEY_RELEASE_SENDER_UNAUTHORIZED = "key_release_sender_unauthorized"
    KEY_RELEASE_RECIPIENT_NOT_ALLOWED = "key_release_recipient_not_allowed"
    KEY_RELEASE_WINDOW_CLOSED = "key_release_window_closed"
    RECIPIENT_KEY_MISMATCH = "recipient_key_mismatch"
    KEY_ALREADY_RELEASED = "key_already_released"
    KEY_RELEASES_EXHAUSTED = "key_releases_exhausted"

    # issue 18, item 2: registered language models (rules v5; domain.models)
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_ALREADY_REGISTERED = "model_already_registered"

    # issue 18, item 1: delegated API keys (rules v5; domain.api_keys)
    APIKEY_NOT_FOUND = "apikey_not_found"
    APIKEY_ALREADY_CREATED = "apikey_already_created"
    APIKEY_ID_MISMATCH = "apikey_id_mismatch"
    APIKEY_NOT_OWNED = "apikey_not_owned"
    APIKEY_REVOKED = "apikey_revoked"
    APIKEY_EXPIRED = "apikey_expired"
    APIKEY_SPEND_LIMIT_EXCEEDED = "apikey_spend_limit_exceeded"

    # issue 18, items 3-4: LLM completions (rules v5; domain.completions)
    COMPLETION_NOT_FOUND = "completion_not_found"
    COMPLETION_OPENED = "completion_opened"
    COMPLETION_COMMITTED = "completion_committed"
    COMPLETION_ABORTED = "completion_aborted"
    COMPLETION_CLEARED = "completion_cleared"
    COMPLETION_VERIFIED = "completion_verified"
    COMPLETION_REJECTED = "completion_rejected"
    COMPLETION_SIGNER_NOT_ALLOWED = "completion_signer_not_allowed"
    COMPLETION_CONTEXT_EXCEEDED = "completion_context_exceeded"
    COMPLETION_PROMPT_TOKENS_ABOVE_BOUND = "completion_prompt_tokens_above_bound"
    COMPLETION_TOKENS_ABOVE_MAX = "completion_tokens_above_max"
    COMPLETION_COMMIT_WINDOW_OPEN = "completion_commit_window_open"
    NOT_THE_COMPLETION_NODE = "not_the_completion_node"
    NODE_MODEL_NOT_WARM = "node_model_not_warm"
    NODE_MODELS_UNCHANGED = "node_models_unchanged"
    MODEL_ADVERTISED_TWICE = "model_advertised_twice"
    LLM_ENDPOINT_REQUIRED = "llm_endpoint_required"
    VALIDATOR_MODELS_UNCHANGED = "validator_models_unchanged"
    MODEL_DECLARED_TWICE = "model_declared_twice"
    NOT_THE_VALIDATOR = "not_the_validator"

    # issue 17: the door (rules v5): workload params, input objects, cancellation
    WORKLOAD_PARAMS_INVALID = "workload_params_invalid"
    JOB_INPUT_NOT_STORED = "job_input_not_stored"
    JOB_INPUT_SIZE_INVALID = "job_input_size_invalid"
    NOT_THE_CONSUMER = "not_the_consumer"


class FlopError(Exception):
    """Base of every error flopledger raises on purpose."""

    code: str = "flop_error"

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class Rejection(FlopError):
    """A command broke a rule: nothing was written. ``code`` names the rule (stable as API)."""

    code: RejectionCode = RejectionCode.REJECTED

    def __init__(self, message: str, *, code: RejectionCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(Rejection):
    """The aggregate or account named by the command does not exist."""

    code = RejectionCode.NOT_FOUND


class InvalidTransition(Rejection):
    """The command is not allowed in the aggregate's current state."""

    code = RejectionCode.INVALID_TRANSITION


class ClaimConflict(Rejection):
    """Someone else already claimed the job (first valid claim wins)."""

    code = RejectionCode.JOB_ALREADY_CLAIMED


class InsufficientFunds(Rejection):
    """The debit would take an account below zero (only the boundary account may go negative)."""

    code = RejectionCode.INSUFFICIENT_FUNDS


class Unauthorized(Rejection):
    """The command's actor may not do this (not the owner, not the assigned node, ...)."""

    code = RejectionCode.ACTOR_NOT_AUTHORIZED


class OperatingError(FlopError):
    """An external system failed (store, NATS, RPC, GPU). Often worth a bounded retry."""

    code = "operating_error"


class ChainRefused(OperatingError):
    """The chain refused a transaction and will refuse it again (a payout below the rent
    an unfunded destination needs, an invalid destination): not worth a retry."""

    code = "chain_refused"


class StoreError(OperatingError):
    """Base of event store errors."""

    code = "store_error"


class VersionConflict(StoreError):
    """A stream's expected version was stale: the whole append was refused."""

    code = "version_conflict"

    def __init__(self, stream_id: str, expected: int | None, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the command expected {expected}; "
            "reload the stream and decide again"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class StoreUnavailable(StoreError):
    """The store could not be reached or refused service."""

    code = "store_unavailable"


class CorruptRecord(StoreError):
    """A stored record does not hash or chain as it must: the log was tampered with or damaged."""

    code = "corrupt_record"

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"record at position {position} is corrupt: {reason}")
        self.position = position
        self.reason = reason
