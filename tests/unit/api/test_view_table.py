"""The read model's view table: order of first sight, filters, totals and counts."""

from __future__ import annotations

import pytest

from adapters.store.view_table import ViewTable


def _table() -> ViewTable:
    return ViewTable({"job": ("state", "region", "node_id")}, {"job": ("state", "workload.kind")})


def test_pages_keep_the_order_of_first_sight_and_count_every_match() -> None:
    table = _table()
    for index in range(5):
        table.put("job", f"j{index}", {"id": f"j{index}", "state": "submitted", "region": "eu"})
    table.put("job", "j1", {"id": "j1", "state": "settled", "region": "eu", "node_id": "n"})

    views, total = table.page("job", {}, offset=1, limit=2)
    assert [v["id"] for v in views] == ["j1", "j2"] and total == 5
    views, total = table.page("job", {"state": "submitted", "region": None}, offset=0, limit=10)
    assert [v["id"] for v in views] == ["j0", "j2", "j3", "j4"] and total == 4
    views, total = table.page("job", {"node_id": "n"}, offset=0, limit=10)
    assert views == [{"id": "j1", "state": "settled", "region": "eu", "node_id": "n"}]
    assert total == 1
    assert table.count_by("job", "state") == {"submitted": 4, "settled": 1}
    assert table.count_by("job", "workload.kind") == {"None": 5}
    table.put("job", "j1", {"id": "j1", "state": "settled", "workload": {"kind": "matmul"}})
    assert table.count_by("job", "workload.kind") == {"None": 4, "matmul": 1}
    table.close()


def test_an_undeclared_filter_or_count_is_a_bug() -> None:
    table = _table()
    with pytest.raises(ValueError, match="not filtered by 'consumer'"):
        table.page("job", {"consumer": "c"}, offset=0, limit=1)
    with pytest.raises(ValueError, match="do not count 'region'"):
        table.count_by("job", "region")
    with pytest.raises(ValueError, match="plain field name"):
        ViewTable({"job": ("state') --",)}, {})
    table.close()
