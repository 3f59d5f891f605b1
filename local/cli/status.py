"""``python -m local status``: what has been uploaded, per model, readable at a glance."""

from __future__ import annotations

import argparse
import os

from local.cli.command import add_command
from local.service.heartbeat import describe_last_cycle, heartbeat_path
from local.service.status import collect, last_pull, render, to_json
from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK
from remote.contract.names import MANIFEST_NAME
from remote.contract.options import add_options

EXAMPLE = """\
example:
  python -m local status --results-root results --state-dir state/wandb_eval_uploader --json
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "status",
        "show per model: run id, checkpoints uploaded, last step, best HR@10, failures",
        EXAMPLE,
        "Show what has been uploaded per model (reads state files; never calls W&B).",
    )
    add_options(parser, ("results_root", "manifest_path", "state_dir", "inbox", "json", "wandb_mode"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the status table (or JSON); exit 1 if any model has failures or errors."""
    manifest = args.manifest_path or os.path.join(args.results_root, MANIFEST_NAME)
    statuses = collect(manifest, args.state_dir, args.wandb_mode)
    pull = last_pull(args.inbox) if args.inbox else None
    if args.json:
        print(to_json(statuses, pull))
    else:
        print(render(statuses))
        if pull:
            print(f"last pull: bundle {pull.get('seq')} ({pull.get('verified_at') or pull.get('name')})")
        loop = describe_last_cycle(heartbeat_path(args.state_dir))
        if loop:
            print(loop)
    return EXIT_FAILED if any(s.error or s.failed for s in statuses) else EXIT_OK
