"""``flopledger devnet status`` prints the consumer's own-data result checks that the
scenario kept in ``status.json`` (issue 17, item 6)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from flopledger.devnet.status import print_status
from flopledger.devnet.supervisor import STATUS_FILE

LINE = "consumer: own matmul 96x96 float32 (private) result matches numpy (max |diff| 1.5e-05)"


def test_the_status_prints_each_kept_result_line(tmp_path: Path) -> None:
    status = {
        "supervisor_pid": 2**22 + 1,  # gone: the devnet has stopped
        "stopped": True,
        "processes": [],
        "consumer_results": [
            {"job_id": "job-1", "label": "own matmul", "matches": True, "line": LINE},
            {"job_id": "job-2", "label": "own inference", "matches": False, "line": ""},
        ],
    }
    (tmp_path / STATUS_FILE).write_text(json.dumps(status))
    out = io.StringIO()
    print_status(tmp_path, Console(file=out, width=200))
    printed = out.getvalue().splitlines()
    assert LINE in printed
    assert "consumer: own inference: not checked" in printed
