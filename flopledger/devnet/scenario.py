"""The devnet's scenario: a funded consumer submits a mix of jobs and watches them settle.

The consumer is funded through a Solana deposit, asks SmolLM2 a first question through the
OpenAI-compatible endpoint under a key it delegates and leaves the OpenAI client's settings
in ``<devnet>/openai.env`` (``flopledger.devnet.completions``, issue 18 item 5), submits
seeded matmul, inference and zk-prove jobs (``quick``: four; ``full``: ten, then one more
every ``TRICKLE_EVERY_S`` while the network runs) and jobs on its own data
(``flopledger.devnet.consumer``, issue 17 item 6; ``quick``: a private matmul and a private
inference; ``full``: also a larger private and a public matmul), releasing a private job's
inputs key to the node that claims it from the polling loop. The terminal shows every
job's state live (rich), printing each transition, until every job is final (settled,
refunded, expired or cancelled); ``check_data_results`` then downloads each own-data result
and prints whether it matches numpy's computation on the inputs.
``run_audit_summary`` then replays the log from genesis, with anchors checked on the devnet's
chain, a tree head taken while the jobs ran as a trusted head, and every decided job's and
attestation's verifier re-run on its artifacts in the devnet's own NATS object store
(``--verify-work``, logged in as the ``auditor``, who may only read; a private job's only
with its keys, which the auditor has not: it counts ``private no key``), and prints the
audit's summary with the re-verified count.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rich.console import Console
from rich.live import Live
from rich.table import Table

from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.wire import JobView
from adapters.solana.history import RpcChainHistory
from domain.commands import SubmitJob
from flopledger.devnet.chain import ChainClient
from flopledger.devnet.completions import (
    COMPLETION_FINAL_STATES,
    KEY_SHARE_OF_DEPOSIT,
    OPENAI_ENV_FILE,
    QUESTION,
    SampleCompletion,
    ask_first_completion,
    create_consumer_key,
    write_openai_env,
)
from flopledger.devnet.consumer import CONSUMER_DIR, OwnDataConsumer
from flopledger.devnet.consumer_data import INFERENCE, MATMUL, DataJobSpec
from flopledger.devnet.launch import Devnet
from flopledger.devnet.llm import LLM_MODEL_ID
from flopledger.devnet.nats_users import AUDITOR
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_history import HistoryRequirements, TrustedHead
from validator.audit_run import AuditReport, WorkCheck, open_source, run_audit
from validator.audit_work import open_objects

SECOND_NS = 1_000_000_000
CONSUMER = "consumer"
CONSUMER_DEPOSIT = 2_000_000
"""Above the withdrawal minimum (issue 16, item 7), and escrow for thousands of jobs."""
JOB_MAX_PRICE = 400
JOB_DEADLINE_S = 600
FINAL_STATES = frozenset({"settled", "refunded", "expired", "cancelled"})
JOBS_FINAL_TIMEOUT_S = 300.0
POLL_INTERVAL_S = 0.5
LIVE_REFRESH_PER_S = 4
TRICKLE_EVERY_S = 15.0
ZK_INPUTS = '{"a": 5, "b": 9}'

JobSpec = tuple[str, str, dict[str, Any]]

QUICK_JOBS: tuple[JobSpec, ...] = (
    ("eu-west", "matmul", {"n": 128, "seed": "quick-1"}),
    ("us-east", "matmul", {"n": 256, "seed": "quick-2"}),
    ("eu-west", "inference", {"seed": "model-a", "batch": 16}),
    (
        "us-east",
        "zk-prove",
        {"circuit": "poseidon_preimage", "inputs": ZK_INPUTS, "setup_seed": 11},
    ),
)
FULL_EXTRA_JOBS: tuple[JobSpec, ...] = (
    ("eu-west", "matmul", {"n": 512, "seed": "full-1"}),
    ("us-east", "inference", {"seed": "model-b", "batch": 32}),
    (
        "eu-west",
        "zk-prove",
        {"circuit": "poseidon_preimage", "inputs": ZK_INPUTS, "setup_seed": 12},
    ),
    ("us-west", "matmul", {"n": 192, "seed": "full-2"}),
    ("eu-west", "inference", {"seed": "model-c", "batch": 24}),
    ("us-east", "matmul", {"n": 384, "seed": "full-3"}),
)
SCENARIOS: dict[str, tuple[JobSpec, ...]] = {
    "quick": QUICK_JOBS,
    "full": QUICK_JOBS + FULL_EXTRA_JOBS,
}
QUICK_DATA_JOBS: tuple[DataJobSpec, ...] = (
    DataJobSpec(region="eu-west", kind=MATMUL, size=128, private=True, seed=1),
    DataJobSpec(region="us-east", kind=INFERENCE, size=16, private=True, seed=2),
)
"""Small, so that the e2e test of the quick scenario stays quick."""
FULL_EXTRA_DATA_JOBS: tuple[DataJobSpec, ...] = (
    DataJobSpec(region="us-east", kind=MATMUL, size=256, private=True, seed=3),
    DataJobSpec(region="eu-west", kind=MATMUL, size=128, private=False, seed=4),
)
DATA_SCENARIOS: dict[str, tuple[DataJobSpec, ...]] = {
    "quick": QUICK_DATA_JOBS,
    "full": QUICK_DATA_JOBS + FULL_EXTRA_DATA_JOBS,
}


@dataclass
class JobRow:
    id: str
    kind: str
    region: str
    state: str = "submitted"
    node_id: str = ""


@dataclass
class Scenario:
    """The consumer's side of the devnet: submit jobs, follow them, render them."""

    devnet: Devnet
    console: Console
    stop: threading.Event
    jobs: list[JobRow] = field(default_factory=list)
    completions: list[JobRow] = field(default_factory=list)
    """The consumer's LLM completions, followed until cleared or checked (issue 18)."""
    started_at: float = field(default_factory=time.monotonic)
    _trickle: Iterator[JobSpec] = field(default_factory=lambda: itertools.cycle(QUICK_JOBS))
    _own_data: OwnDataConsumer | None = None

    def fund_consumer(self) -> None:
        chain = ChainClient(self.devnet.operator_url)
        try:
            answer = chain.deposit(self.devnet.participant(CONSUMER).seed, CONSUMER_DEPOSIT)
        finally:
            chain.close()
        self.console.print(
            f"consumer [cyan]{self.consumer.id[:10]}[/] deposited {CONSUMER_DEPOSIT:,} on "
            f"Solana (tx {str(answer['signature'])[:16]}…, slot {answer['slot']}), "
            f"credited: {answer['credited']}"
        )

    @property
    def consumer(self) -> Identity:
        return Identity.from_seed(self.devnet.participant(CONSUMER).seed)

    def ask_first_completion(self) -> SampleCompletion:
        """Delegate a key, ask SmolLM2 ``QUESTION`` through the OpenAI-compatible endpoint,
        print the answer and its ledger record, then write ``openai.env`` (module docstring
        of ``flopledger.devnet.completions``); ``CompletionFailed`` if the endpoint errs."""
        spend_limit = CONSUMER_DEPOSIT // KEY_SHARE_OF_DEPOSIT
        secret, key_id = create_consumer_key(self.devnet.api_url, self.consumer, spend_limit)
        self.report_line(
            f"consumer: API key {key_id[:12]} delegated (spend limit {spend_limit:,}); asking "
            f"{LLM_MODEL_ID} at {self.devnet.openai_base_url}/chat/completions"
        )
        self.report_line(f"question: {QUESTION}")
        sample = ask_first_completion(self.devnet.api_url, secret, LLM_MODEL_ID)
        self.report_line(f"answer: {sample.answer.strip()}")
        self.report_line(
            f"completion {sample.completion_id} by node {sample.node_id[:10]}: "
            f"{sample.prompt_tokens} prompt + {sample.completion_tokens} completion tokens, "
            f"charged {sample.charge:,} ({sample.state})"
        )
        path = write_openai_env(
            self.devnet.root / OPENAI_ENV_FILE, self.devnet.openai_base_url, secret
        )
        self.report_line(f"OpenAI client settings: {path}  (set -a; . {path}; set +a)")
        kind = f"completion {LLM_MODEL_ID}"
        row = JobRow(sample.completion_id, kind, "", sample.state, sample.node_id)
        self.completions.append(row)
        self.devnet.supervisor.extra.update(
            openai_env=str(path),
            openai_base_url=self.devnet.openai_base_url,
            sample_completion={"question": sample.question, "answer": sample.answer},
        )
        self.devnet.supervisor.write_status()
        return sample

    def submit(self, specs: tuple[JobSpec, ...]) -> None:
        client = ApiClient(self.devnet.api_url, identity=self.consumer)
        try:
            for region, kind, params in specs:
                job = {
                    "workload": {"kind": kind, "gpu_class_min": "cpu", "params": params},
                    "max_price": JOB_MAX_PRICE,
                    "region": region,
                    "deadline_ns": time.time_ns() + JOB_DEADLINE_S * SECOND_NS,
                    "redundancy": 3,
                }
                answer = client.send(msgspec.convert(job, SubmitJob))
                row = JobRow(id=answer.job_id, kind=kind, region=region)
                self.jobs.append(row)
                self.console.print(f"job [magenta]{row.id}[/] {kind} submitted in {region}")
        finally:
            client.close()

    @property
    def own_data(self) -> OwnDataConsumer:
        """The consumer's own-data side (created on first use)."""
        if self._own_data is None:
            self._own_data = OwnDataConsumer(
                api_url=self.devnet.api_url,
                identity=self.consumer,
                root=self.devnet.root / CONSUMER_DIR,
                report=self.report_line,
            )
        return self._own_data

    def report_line(self, line: str) -> None:
        """A line of the consumer's, whole (unwrapped and unstyled: tests and scripts read it)."""
        self.console.print(line, soft_wrap=True, markup=False, highlight=False)

    def submit_data(self, specs: tuple[DataJobSpec, ...]) -> None:
        """The consumer's jobs on its own inputs: written, sealed (private), uploaded, submitted."""
        for job in self.own_data.submit(specs, max_price=JOB_MAX_PRICE, deadline_s=JOB_DEADLINE_S):
            kind = f"{job.spec.kind} (own, {'private' if job.spec.private else 'public'})"
            self.jobs.append(JobRow(id=job.job_id, kind=kind, region=job.spec.region))
            self.console.print(
                f"job [magenta]{job.job_id}[/] {job.spec.label} on the consumer's own data "
                f"submitted in {job.spec.region}"
            )

    def check_data_results(self) -> bool:
        """Download each own-data result and compare it with numpy (True: every one matches);
        the lines go to ``status.json`` too."""
        if self._own_data is None:
            return True
        ok = self._own_data.check_results()
        matched = sum(bool(entry["matches"]) for entry in self._own_data.summary())
        self.devnet.supervisor.extra["consumer_results"] = self._own_data.summary()
        self.devnet.supervisor.write_status()
        self.report_line(
            f"consumer: {matched}/{len(self._own_data.jobs)} own-data results match numpy"
        )
        return ok

    def follow_until_final(self, timeout_s: float = JOBS_FINAL_TIMEOUT_S) -> bool:
        """Show the jobs live until every one is final; False on timeout or stop."""
        deadline = time.monotonic() + timeout_s
        client = ApiClient(self.devnet.api_url)
        try:
            with Live(
                self.render(), console=self.console, refresh_per_second=LIVE_REFRESH_PER_S
            ) as live:
                while not self.stop.is_set() and time.monotonic() < deadline:
                    self.devnet.supervisor.check_alive()
                    self.poll(client)
                    live.update(self.render())
                    if self.is_final():
                        return True
                    self.stop.wait(POLL_INTERVAL_S)
        finally:
            client.close()
            self._end_live()
        return False

    def keep_running(self) -> None:
        """The network keeps running (a job now and then) until Ctrl-C."""
        client = ApiClient(self.devnet.api_url)
        next_job = time.monotonic() + TRICKLE_EVERY_S
        try:
            with Live(self.render(), console=self.console, refresh_per_second=1) as live:
                while not self.stop.is_set():
                    self.devnet.supervisor.check_alive()
                    if time.monotonic() >= next_job:
                        self.submit((next(self._trickle),))
                        next_job = time.monotonic() + TRICKLE_EVERY_S
                    self.poll(client)
                    live.update(self.render())
                    self.stop.wait(1.0)
        finally:
            client.close()
            self._end_live()

    def poll(self, client: ApiClient) -> None:
        views: dict[str, JobView] = {}
        for row in self.jobs:
            if row.state in FINAL_STATES:
                continue
            view = views[row.id] = client.get_job(row.id)
            state, node = view.state, view.node_id or ""
            if state != row.state:
                elapsed = time.monotonic() - self.started_at
                where = f" by {node[:10]}" if node else ""
                self.console.print(f"[dim]{elapsed:6.1f}s[/] {row.id} {row.kind}: {state}{where}")
            row.state, row.node_id = state, node or row.node_id
        if self._own_data is not None:
            self._own_data.release_keys(views)
        self._poll_completions(client)

    def is_final(self) -> bool:
        """Every job final, and every completion cleared or checked (or aborted)."""
        return all(row.state in FINAL_STATES for row in self.jobs) and all(
            row.state in COMPLETION_FINAL_STATES for row in self.completions
        )

    def _poll_completions(self, client: ApiClient) -> None:
        """Print each completion's new state: sampled ones are checked by drawn validators."""
        for row in self.completions:
            if row.state in COMPLETION_FINAL_STATES:
                continue
            record = client.get_completion_record(row.id)
            if record.state != row.state:
                elapsed = time.monotonic() - self.started_at
                passed, cast = sum(record.verdicts.values()), len(record.verdicts)
                detail = f" ({passed}/{cast} verdicts passed)" if cast else ""
                detail += f" ({record.outcome})" if record.outcome else ""
                self.report_line(f"{elapsed:6.1f}s {row.id} completion: {record.state}{detail}")
            row.state = record.state

    def _end_live(self) -> None:
        """Rich leaves the last line of a Live open when the output is not a terminal."""
        if not self.console.is_terminal:
            self.console.line()

    def render(self) -> Table:
        table = Table(title=f"jobs ({len(self.jobs)})", expand=False, caption_justify="left")
        for column in ("job", "kind", "region", "node", "state"):
            table.add_column(column)
        for row in [*self.completions, *self.jobs[-20:]]:
            colour = "green" if row.state in ("settled", "verified", "cleared") else "yellow"
            if row.state in ("rejected", "expired", "refunded", "aborted"):
                colour = "red"
            table.add_row(row.id, row.kind, row.region, row.node_id[:10], f"[{colour}]{row.state}")
        counts: dict[str, int] = {}
        for row in self.jobs:
            counts[row.state] = counts.get(row.state, 0) + 1
        summary = ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))
        table.caption = f"dashboard {self.devnet.api_url}/   pipeline: {summary}"
        return table


def get_trusted_head(devnet: Devnet) -> TrustedHead:
    """The API's tree head now, which the final audit must agree with (issue 16, item 4: a
    trusted head taken mid-run)."""
    client = ApiClient(devnet.api_url)
    try:
        view = client.get_tree_head()
    finally:
        client.close()
    return TrustedHead(view.size, bytes.fromhex(view.root))


def run_audit_summary(devnet: Devnet, trusted_heads: tuple[TrustedHead, ...] = ()) -> AuditReport:
    """Replay the whole log from genesis; money and anchors are checked on the devnet's
    chain (the operator's ``/rpc``, served from the LiteSVM chain log), the work re-verified
    from the devnet's object store (``--verify-work``, issue 16 item 2), and the log must
    agree with ``trusted_heads`` (issue 16 item 4)."""
    options = AuditOptions(
        trusted_operators=frozenset({devnet.operator_id}),
        verify_work=True,
        history=HistoryRequirements(trusted_heads=trusted_heads),
    )

    async def audit() -> AuditReport:
        objects = await open_objects(devnet.nats_url_for(AUDITOR))
        source = await open_source(devnet.store_url)
        client = ChainClient(devnet.operator_url)
        try:
            treasury = str(client.health()["treasury"])
        finally:
            client.close()
        chain = RpcChainHistory(f"{devnet.operator_url}/rpc", treasury)
        try:
            work = WorkCheck(artifacts=objects, now_ns=time.time_ns())
            return await run_audit(source, options, chain=chain, work=work)
        finally:
            await objects.close()
            await source.close()
            await chain.close()

    return asyncio.run(audit())
