"""The CC probe: given a node whose agent collects CC evidence, when a validator asks for it,
then the evidence travels sealed over a nonce only that validator could derive for that node
and round, and the validator's verifier decides (passed with reason "cc").

NVIDIA's verifier stands in here as a function of (evidence, nonce): no machine running the
suite has a CC-mode GPU to sign a fresh nonce. The real verifier on a replayed report is in
tests/integration/compute/test_cc_attestation.py.
"""

from __future__ import annotations

from adapters.compute.cc_attestation import CcSdkError
from adapters.compute.probe_device import FakeClock
from node_agent.probe_responder import ProbeResponder
from proofs.probe_wire import compute_cc_nonce, compute_cc_nonce_statement
from tests.probing import CHALLENGE_SEED, NODE, NONCE, RTT_MAX_NS, VALIDATOR, LocalTransport
from validator.prober import ProbeOutcome, Prober

EVIDENCE = b'{"gpus": "the report of a GPU in CC mode"}'


class Node:
    """A node agent's collector: what it was asked, what it answers."""

    def __init__(self, evidence: bytes | None = EVIDENCE, *, fails: bool = False) -> None:
        self.evidence, self.fails = evidence, fails
        self.nonces: list[bytes] = []

    def collect(self, nonce: bytes) -> bytes | None:
        self.nonces.append(nonce)
        if self.fails:
            raise CcSdkError("the CC verifier exited 1: NVML error")
        return self.evidence


class Verifier:
    """Says "ok" for ``EVIDENCE`` over ``expected_nonce``, else why not; records its calls."""

    def __init__(self, expected_nonce: bytes) -> None:
        self.expected_nonce = expected_nonce
        self.calls: list[tuple[bytes, bytes]] = []

    def verify(self, evidence: bytes, nonce: bytes) -> str:
        self.calls.append((evidence, nonce))
        if evidence != EVIDENCE:
            return "cc_report_signature_invalid"
        return "ok" if nonce == self.expected_nonce else "cc_nonce_mismatch"


def the_rounds_nonce(nonce: str = NONCE) -> bytes:
    statement = compute_cc_nonce_statement(node_id=NODE.id, nonce=nonce)
    return compute_cc_nonce(CHALLENGE_SEED, VALIDATOR.sign(statement))


async def ask(
    node: Node | None, verifier: Verifier, *, authorized: bool = True, nonce: str = NONCE
) -> ProbeOutcome:
    clock = FakeClock()
    transport = LocalTransport(clock)
    responder = ProbeResponder(
        NODE,
        [],
        lambda signer, kind: authorized,
        clock_ns=clock.now_ns,
        collect_cc=node.collect if node is not None else None,
    )
    transport.handlers[NODE.id] = responder.handle
    prober = Prober(VALIDATOR, transport, clock_ns=clock.now_ns, rtt_max_ns=RTT_MAX_NS)
    return await prober.attest_cc(
        NODE.id, nonce=nonce, challenge_seed=CHALLENGE_SEED, verify=verifier.verify
    )


async def test_a_verified_report_passes_with_reason_cc() -> None:
    node, verifier = Node(), Verifier(the_rounds_nonce())
    outcome = await ask(node, verifier)
    assert (outcome.passed, outcome.reason) == (True, "cc")
    assert node.nonces == [the_rounds_nonce()]
    assert verifier.calls == [(EVIDENCE, the_rounds_nonce())]


async def test_each_round_asks_over_its_own_nonce() -> None:
    node = Node()
    await ask(node, Verifier(the_rounds_nonce()), nonce="round-2")
    assert node.nonces == [the_rounds_nonce("round-2")] != [the_rounds_nonce()]


async def test_a_report_the_verifier_refuses_fails_with_its_reason() -> None:
    outcome = await ask(Node(evidence=b"a replayed report"), Verifier(the_rounds_nonce()))
    assert (outcome.passed, outcome.reason) == (False, "cc_report_signature_invalid")


async def test_a_node_without_cc_answers_empty_and_is_not_verified() -> None:
    verifier = Verifier(the_rounds_nonce())
    for node in (None, Node(evidence=None)):
        outcome = await ask(node, verifier)
        assert (outcome.passed, outcome.reason) == (False, "cc_evidence_absent")
    assert verifier.calls == []


async def test_a_collector_that_fails_is_a_refusal() -> None:
    outcome = await ask(Node(fails=True), Verifier(the_rounds_nonce()))
    assert (outcome.passed, outcome.reason) == (False, "probe_refused")


async def test_an_unauthorized_validator_gets_no_evidence() -> None:
    node = Node()
    outcome = await ask(node, Verifier(the_rounds_nonce()), authorized=False)
    assert (outcome.passed, outcome.reason) == (False, "probe_refused")
    assert node.nonces == []
