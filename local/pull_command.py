"""``python -m local pull``: placeholder until its issue lands."""

from __future__ import annotations

import argparse


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``pull`` command to the local CLI."""
    parser = subparsers.add_parser("pull", help="(not implemented yet)")
    parser.set_defaults(func=lambda args: 2)
