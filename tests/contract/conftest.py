"""Contract-suite fixtures: PostgreSQL comes from the shared ``tests.conftest_pg`` module.

Imported rather than listed in ``pytest_plugins``: pytest only honours that variable in the
top-level conftest, and this one is not.
"""

from tests.conftest_pg import pg_server_url, pg_session_url, pg_url

__all__ = ["pg_server_url", "pg_session_url", "pg_url"]
