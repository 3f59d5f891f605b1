"""The errors every ``python -m local`` command reports as one line ``Error: ...`` plus a hint.

Each carries its exit code (meanings in :mod:`remote.contract.exit_codes`, the one definition
both roles share).
"""

from __future__ import annotations

from typing import Optional

from remote.contract.exit_codes import EXIT_PERMANENT, EXIT_TRANSIENT, EXIT_USAGE


class UserError(Exception):
    """A failure to report as one line ``Error: <message>`` plus an optional hint."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str = "", exit_code: Optional[int] = None) -> None:
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
