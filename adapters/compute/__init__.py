"""Compute adapters shared by node agents and validators: NVML inventory, torch executors.

``nvml`` probes the hardware, ``runtime`` picks the torch device and records versions,
``workloads`` defines every workload's parameters, ``torch_matmul``, ``inference_model`` and
``zk_prover`` execute and re-check each workload kind, ``results`` is the artifact format a
node ships and a validator reads, ``attestation`` answers and checks hardware challenges,
``cc_attestation`` collects and checks NVIDIA confidential-computing reports (NVIDIA's verifier
runs in its own environment: ``cc_sdk_driver``).
"""
