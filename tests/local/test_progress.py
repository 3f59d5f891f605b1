"""Progress lines: drawn on a terminal, never written to files or pipes."""

from __future__ import annotations

import io

from local.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_ends_with_a_newline() -> None:
    stream = FakeTerminal()
    progress = Progress("bundle-00000001-full.tar.gz", 200, " bytes", stream=stream, interval=0)
    progress.advance(50)
    progress.advance(150)
    progress.close()
    text = stream.getvalue()
    assert "\rbundle-00000001-full.tar.gz: 50/200 bytes (25%)" in text
    assert text.endswith("200/200 bytes (100%)\n")


def test_progress_writes_nothing_to_a_pipe_or_file() -> None:
    stream = io.StringIO()
    progress = Progress("backfill", 10, stream=stream, interval=0)
    progress.advance(10)
    progress.close()
    assert stream.getvalue() == ""
