"""Progress lines for long work (large downloads, big backfills), only on a terminal.

Logs stay one line per event; progress is drawn on the terminal with carriage returns and is
never written when stderr is a file or a pipe (containers, cron), so logs stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """A ``label: done/total (pct)`` line redrawn at most every ``interval`` seconds on a TTY."""

    def __init__(
        self, label: str, total: int, unit: str = "", stream: Optional[TextIO] = None, interval: float = 0.5
    ) -> None:
        self.label, self.total, self.unit = label, max(total, 0), unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.done = 0
        self._drawn_at = 0.0

    def advance(self, amount: int = 1) -> None:
        """Count ``amount`` more units done and redraw if it is time."""
        self.done += amount
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= self.interval or self.done >= self.total):
            self._drawn_at = now
            self._draw()

    def close(self) -> None:
        """End the progress line (a newline), if one was drawn."""
        if self.enabled and self._drawn_at:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        percent = 100.0 * self.done / self.total if self.total else 100.0
        self.stream.write(f"\r{self.label}: {self.done}/{self.total}{self.unit} ({percent:.0f}%)")
        self.stream.flush()
