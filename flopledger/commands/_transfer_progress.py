"""Transfer progress bars on stderr for the CLI's uploads and downloads (rich), one module
for ``flopledger object`` and ``flopledger job``: stdout stays for the digest or the job id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

Advance = Callable[[int, int | None], None]
"""What a client calls as bytes move: (bytes done, total or None when unknown)."""


@contextmanager
def transfer_bars() -> Iterator[Callable[[str], Advance]]:
    """Transfer bars on stderr, one per label asked for; yields label -> callback."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    def progress_for(label: str) -> Advance:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        return advance

    with progress:
        yield progress_for


@contextmanager
def transfer_bar(label: str) -> Iterator[Advance]:
    """One transfer bar on stderr; yields the callback the client advances."""
    with transfer_bars() as progress_for:
        yield progress_for(label)
