"""The node agent: the daemon a GPU owner runs (``flopledger agent``).

``config`` (settings and bounds), ``ledger_link`` (the ledger through the HTTP API), ``sinks``
(artifact store: NATS object store, or a local directory without NATS), ``spool`` (results
on disk until committed), ``upkeep`` (register, stake, attest, heartbeat), ``intake`` (offers,
polling, claims), ``runner`` and ``work`` (jobs in hand: execute, spool, commit), ``agent``
(the three run side by side, ordered shutdown), ``bootstrap`` (wiring).
"""
