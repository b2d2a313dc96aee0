"""The operator's processes: duties only the network's operator runs.

``sealer`` (signs tree heads of the log: the *sealer*), ``sealer_thread`` (the sealer inside
``flopledger serve``, under the leader lock), ``bridge`` (the *bridge loop*: deposits from
Solana credited, withdrawals paid, tree heads anchored, through the Solana gateway port) and
``offers`` (the offer publisher: open jobs announced on NATS). Imports ``domain``, ``proofs``
and ``adapters``; never ``api``, ``node_agent`` or ``validator``.
"""
