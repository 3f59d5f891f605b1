"""``python -m local demo``: the whole job on built-in sample data, no W&B account needed."""

from __future__ import annotations

import argparse
import os

from local.cli.command import add_command
from remote.contract.options import add_options

EXAMPLE = """\
W&B mode: WANDB_MODE if set, else online when WANDB_API_KEY is set, else offline. Online, the
demo writes to its own project (wandb-eval-pipeline-demo) and run ids (demo-...), never to yours.

example:
  python -m local demo --workdir .demo/walkthrough
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "demo",
        "run pack -> unpack -> upload on built-in sample data (W&B offline unless a key is set)",
        EXAMPLE,
        "Run both roles on one machine on built-in sample data and show what was uploaded.",
    )
    add_options(parser, ("workdir",))
    parser.set_defaults(func=run)


def demo_mode() -> str:
    """Return the demo's W&B mode: WANDB_MODE, else online with a key, else offline."""
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def run(args: argparse.Namespace) -> int:
    """Run the demo (its modules load only now: they import wandb)."""
    from local.demo.walkthrough import run_demo

    return run_demo(args.workdir, demo_mode())
