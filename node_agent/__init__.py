"""The node agent: the daemon a GPU owner runs (``flopledger agent``).

``config`` (settings and bounds), ``ledger_link`` (the ledger through the HTTP API), ``sinks``
(artifact store: NATS object store, or a local directory without NATS), ``spool`` (results
on disk until committed), ``agent`` (the loops), ``bootstrap`` (wiring).
"""
