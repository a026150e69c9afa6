"""Small helpers shared by the command modules (consoles, progress bars, option parsing)."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
err_console = Console(stderr=True)


class PlainProgress:
    """Progress for a log or a pipe: a plain line on stderr every :attr:`EVERY_S` seconds and at
    the end (``Analysing frames: 450/1500 frames (30 %), 3 s``), no control characters.

    It offers the part of Rich's :class:`~rich.progress.Progress` the commands use
    (``task_ids`` and ``advance``).
    """

    EVERY_S = 2.0
    #: What every line looks like (for programs that read the log).
    LINE = re.compile(r"^[^:\n]+: \d+(/\d+)? \w+( \(\d+ %\))?, \d+ s$")

    def __init__(self, description: str, total: int | None, unit: str = "frames") -> None:
        self.description, self.total, self.unit = description, total, unit
        self.task_ids = [0]
        self.done = 0
        self._shown = 0
        self._lock = threading.Lock()
        self._start = self._last = time.monotonic()

    def _line(self, now: float) -> str:
        count = (
            f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"
        )
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        return f"{self.description}: {count}{share}, {now - self._start:.0f} s"

    def advance(self, task_id: int, advance: float = 1) -> None:
        """Count ``advance`` more; print a line when the last one is old enough."""
        with self._lock:
            self.done += int(advance)
            now = time.monotonic()
            if now - self._last >= self.EVERY_S:
                self._last, self._shown = now, self.done
                print(self._line(now), file=sys.stderr, flush=True)

    def finish(self) -> None:
        """The closing line (only when the work took long enough to have needed one)."""
        now = time.monotonic()
        if now - self._start >= self.EVERY_S and self._shown != self.done:
            print(self._line(now), file=sys.stderr, flush=True)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Progress | PlainProgress]:
    """A Rich progress bar on stderr; off a terminal, a plain progress line every few seconds."""
    if not err_console.is_terminal:
        plain = PlainProgress(description, total)
        yield plain
        plain.finish()
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress
