"""Command line of the local role: a thin shell over the command modules.

Each command lives in its own module exposing ``register(subparsers)``; the registered
parser sets ``func(args) -> int``. Errors end as one line ``Error: ...`` plus a hint.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

from local.errors import EXIT_BUSY, UserError
from local.logsetup import configure_logging
from remote.fsutil import LockHeldError

COMMAND_MODULES = (
    "local.pull_command",
    "local.unpack_command",
    "local.upload_command",
    "local.orchestrate_command",
    "local.status_command",
    "local.demo_command",
)

EPILOG = """\
exit codes: 0 ok, 1 some item failed, 2 usage/config error, 3 transient failure after
retries, 4 permanent failure (auth, host key, deleted run), 5 another process holds the lock.

example:
  python -m local upload --results-root results --once
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m local`` with every command registered."""
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Local role: pull eval bundles over SFTP, unpack them, upload metrics to W&B.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING (env LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("LOG_FORMAT", "text"),
        help="one human-readable line per event, or JSON lines (env LOG_FORMAT)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the command, and turn known failures into one-line errors."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args))
    except UserError as exc:
        print_error(exc.message, exc.hint)
        return exc.exit_code
    except LockHeldError as exc:
        print_error(str(exc), "")
        return EXIT_BUSY
    except KeyboardInterrupt:
        print_error("interrupted", "")
        return 130
    except BrokenPipeError:
        # Output piped into `head` or similar that stopped reading: not an error of ours.
        sys.stderr.close()
        return 0


def print_error(message: str, hint: str) -> None:
    """Print ``Error: message`` (and ``Hint: hint``) to stderr."""
    print("Error: {}".format(message), file=sys.stderr)
    if hint:
        print("Hint: {}".format(hint), file=sys.stderr)
