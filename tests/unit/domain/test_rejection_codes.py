"""Every stable rejection code is a RejectionCode member, with today's string as its value
(the API's problem type URIs are built from it)."""

from __future__ import annotations

import ast
from pathlib import Path

from domain import job_states, node
from domain.api_keys import ApiKey
from domain.beacon import Beacon
from domain.canary import CanarySeal
from domain.chain_credits import ChainCredit
from domain.completions import STATE_CODES as COMPLETION_STATE_CODES
from domain.completions import Completion
from domain.directory import Directory
from domain.encryption_keys import EncryptionKey
from domain.errors import RejectionCode
from domain.events import _EVENT_CLASSES
from domain.fraud import JobDecision
from domain.job import Job
from domain.ledger import Account
from domain.liveness import LivenessEpoch
from domain.log import Log
from domain.models import RegisteredModel
from domain.network import Network
from domain.node import Node
from domain.objects import StoredObject
from domain.services.unit_of_work import NOT_FOUND_CODES
from domain.validators import Validator
from domain.withdrawal import Withdrawal
from proofs import envelope, request_auth

ROOT = Path(__file__).resolve().parents[3]


def test_values_are_the_member_names_in_lower_case() -> None:
    assert all(member.value == member.name.lower() for member in RejectionCode)
    assert RejectionCode.REVEAL_WINDOW_OPEN == "reveal_window_open"


def test_every_state_and_stream_type_has_its_code() -> None:
    job_states_all = {v for k, v in vars(job_states).items() if k.isupper() and isinstance(v, str)}
    assert set(job_states.STATE_CODES) == job_states_all
    assert {code.value for code in job_states.STATE_CODES.values()} == {
        f"job_{state}" for state in job_states_all
    }
    assert {code.value for code in node.STATE_CODES.values()} == {
        f"node_{state}" for state in node.STATE_CODES
    }
    assert {code.value for code in COMPLETION_STATE_CODES.values()} == {
        f"completion_{state}" for state in COMPLETION_STATE_CODES
    }
    aggregates = (
        Account,
        CanarySeal,
        Directory,
        Job,
        JobDecision,
        Log,
        Network,
        Node,
        Validator,
        Withdrawal,
        Beacon,
        LivenessEpoch,
        StoredObject,
        ChainCredit,
        EncryptionKey,
        RegisteredModel,
        ApiKey,
        Completion,
    )
    stream_types = {cls.STREAM_TYPE for cls in aggregates}
    assert stream_types == {stream_type for stream_type, _ in _EVENT_CLASSES}
    assert set(NOT_FOUND_CODES) == stream_types
    assert all(code.value == f"{t}_not_found" for t, code in NOT_FOUND_CODES.items())


def test_the_envelope_errors_carry_member_values() -> None:
    """``proofs`` imports nothing of ours, so its error classes hold plain strings."""
    classes = [
        value
        for value in vars(envelope).values()
        if isinstance(value, type) and issubclass(value, envelope.EnvelopeError)
    ]
    assert len(classes) >= 5
    assert all(RejectionCode(cls.code) for cls in classes)


def test_the_request_auth_errors_carry_member_values() -> None:
    classes = [
        value
        for value in vars(request_auth).values()
        if isinstance(value, type) and issubclass(value, request_auth.RequestAuthError)
    ]
    assert len(classes) >= 5
    assert all(RejectionCode(cls.code) for cls in classes)


def test_no_code_in_the_domain_is_a_string_literal() -> None:
    """``code=`` at a raise site names a member, never a literal or an f-string."""
    found = []
    for path in sorted((ROOT / "domain").rglob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if not isinstance(call, ast.Call):
                continue
            for keyword in call.keywords:
                if keyword.arg == "code" and isinstance(
                    keyword.value, ast.Constant | ast.JoinedStr
                ):
                    found.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert found == []
