"""What every ``python -m local`` command module shares when it registers itself."""

from __future__ import annotations

import argparse
from typing import Optional


def add_command(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
    name: str,
    summary: str,
    epilog: str,
    description: Optional[str] = None,
) -> argparse.ArgumentParser:
    """Given the subparsers, add command ``name`` whose help keeps the epilog's layout (its example)."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
