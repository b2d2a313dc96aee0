"""Who may read a completion's bundle (``domain.object_access``, issue 18): its consumer and
its node once committed, the validators drawn for its check; nobody else, and no other object
by naming the completion."""

from __future__ import annotations

from domain.object_access import ObjectAccess, decide_object_access
from proofs.identity import Identity
from tests.completion_network import CONSUMER, DIGEST, NODE, start_completion_network

STRANGER = Identity.from_seed(bytes([215]) * 32)
OTHER_DIGEST = (b"\7" * 32).hex()


def _decide(completion: object, reader: str, digest: str = DIGEST.hex()) -> ObjectAccess:
    return decide_object_access(
        digest=digest,
        encrypted=False,
        reader=reader,
        is_uploader=False,
        job=None,
        completion=completion,  # type: ignore[arg-type]
    )


async def test_the_consumer_and_the_node_read_the_committed_bundle_and_nobody_else() -> None:
    cnet = await start_completion_network()
    completion_id = await cnet.open()
    opened = await cnet.get(completion_id)
    assert _decide(opened, CONSUMER.id) == ObjectAccess.REFUSED  # nothing committed yet
    await cnet.commit(completion_id)
    committed = await cnet.get(completion_id)
    assert _decide(committed, CONSUMER.id) == ObjectAccess.COMPLETION_PARTY
    assert _decide(committed, NODE.id) == ObjectAccess.COMPLETION_PARTY
    assert _decide(committed, STRANGER.id) == ObjectAccess.REFUSED
    assert _decide(committed, cnet.signer.id) == ObjectAccess.REFUSED  # the API is no party
    # Naming the completion opens only its own bundle.
    assert _decide(committed, CONSUMER.id, OTHER_DIGEST) == ObjectAccess.REFUSED
