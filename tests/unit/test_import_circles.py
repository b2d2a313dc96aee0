"""No import circles inside our packages (issue 13 removed the last two:
``domain/job.py <-> domain/scheduling.py`` and ``validator/audit_run.py <->
validator/audit_nats.py``); imports inside functions count too."""

from __future__ import annotations

import grimp
import pytest

PACKAGES = (
    "domain",
    "proofs",
    "adapters",
    "api",
    "validator",
    "node_agent",
    "operations",
    "flopledger",
)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_itself_through_others(package: str) -> None:
    graph = grimp.build_graph(package, include_external_packages=False)
    circles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    )
    assert circles == []
