"""Deterministic, stake-weighted choice of the validators for a subject.

Under the current rules the seed is a beacon draw's randomness (``domain.beacon``), fixed
only after the subject asked for it, so that nobody can steer the choice and anyone can
recompute it from the beacon's records. Records written under the first rules (``RULES_V1``)
were drawn by ``select_validators`` from the job id and the log hash at the commit, which the
committer could grind (issue 14, attack 2).
"""

from __future__ import annotations

import hashlib

SELECTION_DOMAIN = b"flopledger/validator-selection/v1"


def select_validators(
    *, job_id: str, log_hash: bytes, stakes: dict[str, int], count: int
) -> tuple[str, ...]:
    """The first rules' draw: seeded by the job id and a log hash (kept to read old records)."""
    return select_from_seed(seed=job_id.encode() + log_hash, stakes=stakes, count=count)


def select_from_seed(*, seed: bytes, stakes: dict[str, int], count: int) -> tuple[str, ...]:
    """Pick ``count`` distinct validators, each draw weighted by stake (sampling without
    replacement); fewer when fewer have stake. Ties are impossible: candidates are sorted."""
    candidates = sorted((vid, stake) for vid, stake in stakes.items() if stake > 0)
    chosen: list[str] = []
    counter = 0
    while candidates and len(chosen) < count:
        total = sum(stake for _, stake in candidates)
        digest = hashlib.sha256(SELECTION_DOMAIN + seed + counter.to_bytes(4, "big")).digest()
        point = int.from_bytes(digest, "big") % total
        for index, (vid, stake) in enumerate(candidates):
            if point < stake:
                chosen.append(vid)
                del candidates[index]
                break
            point -= stake
        counter += 1
    return tuple(chosen)
