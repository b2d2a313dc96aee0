"""``flopledger devnet``: a whole local network as separate processes, supervised.

``supervisor`` starts and stops processes (logs, status file), ``launch`` knows the devnet's
processes and their readiness checks, ``operator`` is the process that owns the LiteSVM
chain (Solana gateway loop: deposits, withdrawals, anchors; job offers), ``chain`` is the
participants' client of it, ``scenario`` the consumer's jobs and the audit, ``status`` what
``devnet status`` prints.
"""
