"""The API subcommands build typed commands: out-of-bounds values are refused before anything
is signed or sent, and answers are printed as JSON."""

from __future__ import annotations

import json

import pytest

from adapters.ledger_api.wire import CommandAccepted
from domain.commands import SubmitJob
from flopledger.commands._api_cli import build_command, print_result

JOB = {
    "workload": {"kind": "matmul", "gpu_class_min": "cpu", "params": {"n": 64}},
    "max_price": 300,
    "region": "eu-west",
    "redundancy": 3,
    "deadline_ns": 1_800_000_000_000_000_000,
}


def test_a_command_that_breaks_its_limits_is_refused_before_it_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sent: list[SubmitJob] = []

    def send() -> None:
        sent.append(build_command(SubmitJob, {**JOB, "region": "Not A Region!"}))

    assert print_result(send) == 1
    assert sent == []
    problem = json.loads(capsys.readouterr().err)
    assert problem["code"] == "command_body_invalid"
    assert "region" in problem["detail"]


def test_a_typed_answer_is_printed_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    command = build_command(SubmitJob, JOB)
    assert command.workload.params == {"n": 64}
    accepted = CommandAccepted(
        command_id="c" * 64, kind="job.submit", subject="job-1", first_position=1, last_position=2
    )
    assert print_result(lambda: accepted) == 0
    assert json.loads(capsys.readouterr().out)["subject"] == "job-1"
