"""Heads the API serves while the log grows are trusted heads the audit holds the log to
(issue 16, item 4): one taken before anything was sealed (in process) and one sealed head
pass; a head whose root is not the log's at its size fails at that size."""

from __future__ import annotations

from domain.commands import GpuSpec, RegisterNode
from operations.sealer import Sealer
from tests.unit.api.conftest import ApiEnv, seeded
from validator.audit import AuditOptions
from validator.audit_history import HistoryRequirements, TrustedHead
from validator.audit_run import AuditReport, StoreSource, run_audit


def register_node(env: ApiEnv, name: str) -> None:
    """A record or two that needs no money (a node registers before it bonds)."""
    gpus = [GpuSpec(name="NVIDIA H100 80GB HBM3", memory_mib=81559)]
    env.client(seeded(name)).send(
        RegisterNode(region="eu-west", gpus=gpus, gpu_class="datacenter", price=100)
    )


def served_head(env: ApiEnv) -> tuple[TrustedHead, str]:
    head = env.http.get("/v1/log/tree-head").json()
    return TrustedHead(head["size"], bytes.fromhex(head["root"])), head["source"]


def audit(env: ApiEnv, heads: tuple[TrustedHead, ...]) -> AuditReport:
    options = AuditOptions(history=HistoryRequirements(trusted_heads=heads))
    source = StoreSource(env.deps.store, "memory")
    return env.http.blocking_portal.call(lambda: run_audit(source, options))


def test_heads_served_mid_run_hold_and_a_wrong_root_fails(api_env: ApiEnv) -> None:
    register_node(api_env, "trusted-1")
    register_node(api_env, "trusted-2")
    in_process, source = served_head(api_env)
    assert source == "in_process" and in_process.size > 1
    register_node(api_env, "trusted-3")
    sealer = Sealer(api_env.deps.store, api_env.operator, clock_ns=api_env.clock)
    assert api_env.http.blocking_portal.call(lambda: sealer.seal_once(force=True)) is not None
    sealed, source = served_head(api_env)
    assert source != "in_process" and sealed.size > in_process.size
    register_node(api_env, "trusted-4")
    report = audit(api_env, (in_process, sealed))
    assert report.ok, report.failure
    assert report.checks["trusted_head"].count == 2
    wrong = TrustedHead(in_process.size, sealed.root)
    report = audit(api_env, (wrong,))
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (in_process.size, "trusted_head")
