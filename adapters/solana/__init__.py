"""The Solana gateway's adapters: LiteSVM (in-process, the embedded default and the tests)
and RPC (solana-py AsyncClient, devnet or mainnet by FLOP_SOLANA_RPC)."""
