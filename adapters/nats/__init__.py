"""NATS adapters: the JetStream mirror of the event log, its consumers, the artifact object
store, live signals on core NATS and the embedded nats-server.

Modules: ``server`` (embedded nats-server), ``connection`` (connect, backoff, drain, errors),
``codec`` (record <-> message), ``stream`` (FLOP_EVENTS config), ``leader`` (leader lock),
``publisher`` (pipelined JetStream publishes), ``relay`` (store -> JetStream),
``consumer`` (verified replay, durable subscribers),
``objects`` (artifacts by SHA-256), ``signals`` (offers and heartbeats).
"""
