"""Deterministic, stake-weighted choice of the validators for a job.

The seed mixes the job id with the log hash at the position where the result was committed,
so that anyone can recompute the choice and no node can know its validators when it claims.
"""

from __future__ import annotations

import hashlib

SELECTION_DOMAIN = b"flopledger/validator-selection/v1"


def select_validators(
    *, job_id: str, log_hash: bytes, stakes: dict[str, int], count: int
) -> tuple[str, ...]:
    """Pick ``count`` distinct validators, each draw weighted by stake (sampling without
    replacement); fewer when fewer have stake. Ties are impossible: candidates are sorted."""
    candidates = sorted((vid, stake) for vid, stake in stakes.items() if stake > 0)
    chosen: list[str] = []
    counter = 0
    while candidates and len(chosen) < count:
        total = sum(stake for _, stake in candidates)
        digest = hashlib.sha256(
            SELECTION_DOMAIN + job_id.encode() + log_hash + counter.to_bytes(4, "big")
        ).digest()
        point = int.from_bytes(digest, "big") % total
        for index, (vid, stake) in enumerate(candidates):
            if point < stake:
                chosen.append(vid)
                del candidates[index]
                break
            point -= stake
        counter += 1
    return tuple(chosen)
