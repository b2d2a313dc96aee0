"""Workload parameters for the executors: the types live in ``domain.workloads`` (the ledger
parses them at ``job.submit`` too, issue 17), re-exported here with the job seed.

Job binding: matmul inputs and inference inputs of the seeded forms derive from
``compute_job_seed(job_id, seed)`` = SHA-256(JOB_SEED_TAG ‖ u32 len(job_id) ‖ job_id ‖ seed),
so a result computed for another job (or copied from another node's job) does not verify for
this one. Inference *weights* derive from ``seed`` alone: the model is the consumer's choice,
the inputs the job's. A zk-prove proof carries ``proofs.circuits.compute_binding(job_id,
node_id)`` as its last public input (``adapters.compute.zk_prover``); its ``setup_seed`` keys
are accepted only where the ledger's policy has ``insecure_setups_allowed``.
"""

from __future__ import annotations

from domain.workloads import DATA_PARAM_TYPES as DATA_PARAM_TYPES
from domain.workloads import INFERENCE_BATCH_MAX as INFERENCE_BATCH_MAX
from domain.workloads import INFERENCE_DEPTH_MAX as INFERENCE_DEPTH_MAX
from domain.workloads import INFERENCE_DIM_MAX as INFERENCE_DIM_MAX
from domain.workloads import INFERENCE_WIDTH_MAX as INFERENCE_WIDTH_MAX
from domain.workloads import INFERENCE_WIDTH_MIN as INFERENCE_WIDTH_MIN
from domain.workloads import PARAM_TYPES as PARAM_TYPES
from domain.workloads import SEED_CHARS_MAX as SEED_CHARS_MAX
from domain.workloads import ZK_INPUTS_CHARS_MAX as ZK_INPUTS_CHARS_MAX
from domain.workloads import CircuitName as CircuitName
from domain.workloads import DataParams as DataParams
from domain.workloads import InferenceDataParams as InferenceDataParams
from domain.workloads import InferenceParams as InferenceParams
from domain.workloads import MatmulDataParams as MatmulDataParams
from domain.workloads import MatmulParams as MatmulParams
from domain.workloads import WorkloadKind as WorkloadKind
from domain.workloads import WorkloadParams as WorkloadParams
from domain.workloads import WorkloadParamsError as WorkloadParamsError
from domain.workloads import ZkProveParams as ZkProveParams
from domain.workloads import encode_params as encode_params
from domain.workloads import input_digests as input_digests
from domain.workloads import is_private as is_private
from domain.workloads import parse_params as parse_params
from proofs.job_seed import JOB_SEED_TAG as JOB_SEED_TAG
from proofs.job_seed import compute_job_seed as compute_job_seed
