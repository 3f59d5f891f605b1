"""What every ``python -m local`` command module shares when it registers itself."""

from __future__ import annotations

import argparse
from typing import Optional

from remote.contract.exit_codes import SUMMARY
from remote.contract.options import add_options


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    example: str,
    description: Optional[str] = None,
) -> argparse.ArgumentParser:
    """Given the subparsers, add command ``name``: its help ends with the exit codes and ``example``.

    ``--log-level`` and ``--log-format`` are accepted after the command name too (where the
    original tool took them); given there, they win over the ones before it.
    """
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog=f"{SUMMARY}\n\n{example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser, ["log_level", "log_format"], suppress=True)
    return parser
