"""``python -m local demo``: the whole job on built-in sample data, no W&B account needed."""

from __future__ import annotations

import argparse
import os

from local.cliutil import add_command

EXAMPLE = """\
example:
  python -m local demo --workdir .demo
"""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``demo`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "demo",
        "run pack -> unpack -> upload on built-in sample data (W&B offline unless a key is set)",
        EXAMPLE,
        "Run both roles on one machine on built-in sample data and show what was uploaded.",
    )
    parser.add_argument(
        "--workdir", default=".demo", help="directory for both roles' files (.demo; recreated)"
    )
    default_mode = os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline"
    )
    parser.add_argument(
        "--wandb-mode",
        default=default_mode,
        choices=("online", "offline"),
        help="online when WANDB_API_KEY is set, else offline (env WANDB_MODE)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo (its modules load only now: they import wandb)."""
    from local.demo import run_demo

    return run_demo(args.workdir, args.wandb_mode)
