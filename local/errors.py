"""Errors and exit codes shared by every ``python -m local`` command.

Exit codes (documented in the README and in ``--help``):
  0  everything done
  1  some unit of work failed (others went on); see the log lines
  2  usage or configuration error (bad flag, missing file, malformed input)
  3  transient failure that outlasted the retries (network down, server 5xx): try again later
  4  permanent failure that retrying cannot fix (authentication, host key, deleted W&B run)
  5  another process holds the lock (one uploader per state directory)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 3
EXIT_PERMANENT = 4
EXIT_BUSY = 5


class UserError(Exception):
    """A failure to report as one line ``Error: <message>`` plus an optional hint."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class TransientError(UserError):
    """Retries were exhausted on something that may work later."""

    exit_code = EXIT_TRANSIENT


class PermanentError(UserError):
    """Retrying cannot help: credentials, host keys, a deleted run."""

    exit_code = EXIT_PERMANENT
