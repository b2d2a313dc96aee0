"""The ledger's HTTP API as its clients reach it.

``client`` is the HTTP client; ``wire`` holds the request and view types that the API renders
and its clients parse (neither owns them).
"""
