"""Equivocation evidence keys: made of what the signatures cover, one per (validator,
subject, round), and a round slashed under a key written with a nonce (before job nonces
left the key) is not slashed again."""

from __future__ import annotations

from domain.services.equivocation import compute_evidence_key, is_round_slashed

RESULT = b"\x07" * 32
OTHER = b"\x08" * 32


def test_a_key_written_with_a_nonce_marks_the_round_slashed() -> None:
    old = compute_evidence_key("job", "job-1", "chosen-by-the-reporter", RESULT)
    assert is_round_slashed({old}, "job", "job-1", RESULT)


def test_the_nonce_free_key_marks_the_round_slashed() -> None:
    assert is_round_slashed(
        {compute_evidence_key("job", "job-1", "", RESULT)}, "job", "job-1", RESULT
    )


def test_another_round_or_subject_is_not_slashed() -> None:
    used = {compute_evidence_key("job", "job-1", "n", RESULT)}
    assert not is_round_slashed(used, "job", "job-1", OTHER)
    assert not is_round_slashed(used, "job", "job-2", RESULT)
    assert not is_round_slashed(used, "attestation", "job-1", RESULT)
    assert not is_round_slashed(set(), "job", "job-1", RESULT)
