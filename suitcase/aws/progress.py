"""A rich progress bar per file (bytes, rate) on stderr; silent when stderr is not a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


@contextlib.contextmanager
def transfers() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields `track(name, total)`, which returns a thread-safe `advance(bytes)` for one file."""
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )

    def track(name: str, total: int) -> Callable[[int], None]:
        task = progress.add_task(name, total=total)

        def advance(amount: int) -> None:
            progress.advance(task, amount)

        return advance

    with progress:
        yield track
