"""``python -m local upload``: placeholder until its issue lands."""

from __future__ import annotations

import argparse


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``upload`` command to the local CLI."""
    parser = subparsers.add_parser("upload", help="(not implemented yet)")
    parser.set_defaults(func=lambda args: 2)
