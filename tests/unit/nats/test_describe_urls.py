"""NATS URLs in errors and logs lose their logins (the devnet's URLs carry secrets)."""

from __future__ import annotations

import pytest

from adapters.nats.connection import describe_urls


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("nats://node:s3cret@127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://a:x@h1:1, tls://b:y@h2:2", "nats://h1:1,tls://h2:2"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("user:pw@h:3", "h:3"),
    ],
)
def test_the_login_is_left_out(url: str, described: str) -> None:
    assert describe_urls(url) == described
