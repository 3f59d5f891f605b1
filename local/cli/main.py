"""``python -m local``: build the parser from the command modules, run the command, report errors.

Each command module exposes ``register(subparsers)``; the registered parser sets
``func(args) -> int``. Command modules import their work modules only when they run, so
``health`` (every 30 s in the container) never loads wandb or paramiko. Errors end as one line
``Error: ...`` plus a ``Hint:``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from local.errors import UserError
from local.logsetup import configure_logging
from remote.contract.exit_codes import EXIT_BUSY, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, SUMMARY
from remote.contract.files import LockHeldError
from remote.contract.options import OptionEnvError, add_options

COMMAND_MODULES = (
    "local.cli.pull",
    "local.cli.unpack",
    "local.cli.upload",
    "local.cli.service",
    "local.cli.status",
    "local.cli.report",
    "local.cli.demo",
)

EPILOG = f"""\
{SUMMARY}

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
    add_options(parser, ["log_level", "log_format"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the command, and turn known failures into one-line errors."""
    try:
        parser = build_parser()
    except OptionEnvError as exc:  # a bad environment variable: nothing can run
        print_error(str(exc), "fix or unset that environment variable")
        return EXIT_USAGE
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
        return EXIT_INTERRUPTED
    except OSError as exc:
        # A full disk, a vanished mount, a permission: one line, and what was done stays done.
        print_error(str(exc), "check free space and permissions of the paths given, then run again")
        return EXIT_FAILED
    except BrokenPipeError:
        # Output piped into `head` or similar that stopped reading: not an error of ours.
        sys.stderr.close()
        return EXIT_OK


def print_error(message: str, hint: str) -> None:
    """Print ``Error: message`` (and ``Hint: hint``) to stderr."""
    print(f"Error: {message}", file=sys.stderr)
    if hint:
        print(f"Hint: {hint}", file=sys.stderr)
