"""``python -m local status``: what has been uploaded, per model, readable at a glance."""

from __future__ import annotations

import argparse
import os

from local.cliutil import add_command
from local.heartbeat import describe_last_cycle
from local.status import collect, last_pull, render, to_json
from remote.manifest import MANIFEST_NAME

EXAMPLE = """\
example:
  python -m local status --results-root results --state-dir state/wandb_eval_uploader --json
"""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``status`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "status",
        "show per model: run id, checkpoints uploaded, last step, best HR@10, failures",
        EXAMPLE,
        "Show what has been uploaded per model (reads state files; never calls W&B).",
    )
    parser.add_argument(
        "--results-root",
        default=os.environ.get("RESULTS_ROOT", "./results"),
        help="local results root (env RESULTS_ROOT; ./results)",
    )
    parser.add_argument(
        "--manifest-path", default="", help="manifest (default: <results-root>/" + MANIFEST_NAME + ")"
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("STATE_DIR", "state/wandb_eval_uploader"),
        help="uploader state directory (env STATE_DIR; state/wandb_eval_uploader)",
    )
    parser.add_argument(
        "--inbox", default=os.environ.get("INBOX", ""), help="inbox, to show the last pull (env INBOX)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    mode = os.environ.get("WANDB_MODE")
    parser.add_argument(
        "--wandb-mode",
        choices=("online", "offline"),
        default=mode if mode in ("online", "offline") else "online",
        help="whose state to show: online uploads (default) or offline runs (env WANDB_MODE)",
    )
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
            print(
                "last pull: bundle {} ({})".format(
                    pull.get("seq"), pull.get("verified_at") or pull.get("name")
                )
            )
        loop = describe_last_cycle(os.path.join(args.state_dir, "heartbeat.json"))
        if loop:
            print(loop)
    return 1 if any(s.error or s.failed for s in statuses) else 0
