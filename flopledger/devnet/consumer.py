"""The devnet consumer's jobs on its own data (issue 17, item 6), through the client a real
consumer uses (``flopledger.jobs_client``).

``submit`` writes each job's inputs with numpy (``flopledger.devnet.consumer_data``) under
``<devnet>/consumer/<job name>/``, then seals (a private job), uploads and submits them; the
data keys of private jobs stay in memory and under ``<devnet>/consumer/keys/<job_id>.key``
(``adapters.job_keys``), the consumer's identity at ``<devnet>/keys/consumer.key`` as every
devnet participant's. ``release_keys``, called from the scenario's polling loop, releases a
private job's inputs key to the node that claimed it (``keys_client.release_job_key``) once
per claim: a claim the ledger sends back to the market (no release within the window) and a
later claim by another node get their own release. ``check_results`` downloads each settled
result (opened and held to the ledger's commitment by ``fetch_job_result``) into
``<devnet>/consumer/results/`` and compares it with numpy; one line per job says whether it
matches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem
from adapters.ledger_api.keys_client import release_job_key
from adapters.ledger_api.wire import JobView
from flopledger.devnet.consumer_data import (
    DataJobSpec,
    ResultCheck,
    check_result,
    format_check,
    write_inputs,
)
from flopledger.jobs_client import (
    JobFailed,
    JobNotFinal,
    ResultMismatch,
    fetch_job_result,
    submit_job_with_inputs,
)
from proofs.identity import Identity

CONSUMER_DIR = "consumer"
RESULTS_DIR = "results"
INPUTS = "inputs"
CLAIMED = "claimed"
RESULT_WAIT_S = 30.0
"""How long a settled job's result may lag behind (its node's result-key release)."""
RESULT_POLL_S = 1.0

Report = Callable[[str], None]


@dataclass
class ConsumerJob:
    """A submitted job on the consumer's data, and what became of it."""

    spec: DataJobSpec
    job_id: str
    inputs: dict[str, Path]
    data_key: bytes | None
    released: set[tuple[int, str]] = field(default_factory=set)
    """(attempt, node) pairs the inputs key went to."""
    refused: set[tuple[int, str, str]] = field(default_factory=set)
    """(attempt, node, code) of releases refused, each reported once."""
    check: ResultCheck | None = None
    line: str = ""


@dataclass
class OwnDataConsumer:
    """The consumer's side of its own-data jobs (module docstring)."""

    api_url: str
    identity: Identity
    root: Path
    """The consumer's folder (``<devnet>/consumer``)."""
    report: Report
    jobs: list[ConsumerJob] = field(default_factory=list)

    def submit(
        self, specs: tuple[DataJobSpec, ...], *, max_price: int, deadline_s: float
    ) -> list[ConsumerJob]:
        """Write, seal, upload and submit each spec's job; the jobs, in order."""
        client = self._client()
        submitted = []
        try:
            for spec in specs:
                inputs = write_inputs(spec, self.root / spec.name)
                answer = submit_job_with_inputs(
                    client,
                    kind=spec.kind,
                    inputs=inputs,
                    params={},
                    max_price=max_price,
                    region=spec.region,
                    deadline_ns=time.time_ns() + int(deadline_s * 1e9),
                    data_dir=self.root,
                    public=not spec.private,
                )
                job = ConsumerJob(spec, answer.job_id, inputs, answer.data_key)
                submitted.append(job)
        finally:
            client.close()
        self.jobs.extend(submitted)
        return submitted

    def release_keys(self, views: dict[str, JobView]) -> None:
        """Release each claimed private job's inputs key to its node, once per claim."""
        pending = [
            (job, views[job.job_id])
            for job in self.jobs
            if job.data_key is not None and job.job_id in views
        ]
        pending = [
            (job, view)
            for job, view in pending
            if view.state == CLAIMED
            and view.node_id
            and (view.attempt, view.node_id) not in job.released
            and not _is_released(view)
        ]
        if not pending:
            return
        client = self._client()
        try:
            for job, view in pending:
                self._release(client, job, view)
        finally:
            client.close()

    def check_results(self) -> bool:
        """Download, check and report every job's result; True when every one matches."""
        client = self._client()
        try:
            for job in self.jobs:
                job.line = self._check(client, job)
                self.report(job.line)
        finally:
            client.close()
        return all(job.check is not None and job.check.ok for job in self.jobs)

    def summary(self) -> list[dict[str, object]]:
        """What ``status.json`` keeps of each job (``flopledger devnet status`` prints it)."""
        return [
            {
                "job_id": job.job_id,
                "label": job.spec.label,
                "private": job.spec.private,
                "matches": job.check is not None and job.check.ok,
                "line": job.line,
            }
            for job in self.jobs
        ]

    def _release(self, client: ApiClient, job: ConsumerJob, view: JobView) -> None:
        if job.data_key is None or view.node_id is None:
            return  # a public job, or no claim: nothing to release
        try:
            release_job_key(
                client,
                self.identity,
                job_id=job.job_id,
                attempt=view.attempt,
                recipient=view.node_id,
                purpose=INPUTS,
                data_key=job.data_key,
            )
        except NotFoundProblem:
            return  # the node registers its encryption key as it starts: the next poll
        except ApiProblem as problem:
            mark = (view.attempt, view.node_id, problem.code)
            if mark not in job.refused:
                job.refused.add(mark)
                self.report(f"consumer: releasing {job.job_id}'s key refused: {problem.code}")
            return
        job.released.add((view.attempt, view.node_id))
        self.report(
            f"consumer: inputs key of {job.job_id} released to {view.node_id[:10]} "
            f"(attempt {view.attempt})"
        )

    def _check(self, client: ApiClient, job: ConsumerJob) -> str:
        out = self.root / RESULTS_DIR / f"{job.spec.name}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + RESULT_WAIT_S
        while True:
            try:
                fetch_job_result(client, job.job_id, out)
                break
            except JobFailed as failed:
                return f"consumer: {job.spec.label}: no result, the job is {failed.state}"
            except ResultMismatch as exc:
                return f"consumer: {job.spec.label}: result refused: {exc}"
            except JobNotFinal as exc:
                if time.monotonic() >= deadline:
                    return f"consumer: {job.spec.label}: no result: {exc}"
                time.sleep(RESULT_POLL_S)
            except ApiProblem as problem:
                return f"consumer: {job.spec.label}: result download refused: {problem.code}"
        job.check = check_result(job.spec, job.inputs, out)
        return format_check(job.spec, job.check)

    def _client(self) -> ApiClient:
        return ApiClient(self.api_url, identity=self.identity)


def _is_released(view: JobView) -> bool:
    """Whether the ledger has this claim's release already (an earlier run of the loop)."""
    return any(
        r.purpose == INPUTS
        and r.recipient == view.node_id
        and r.attempt == view.attempt
        and r.sender == view.consumer
        for r in view.key_releases
    )
