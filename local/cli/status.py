"""``python -m local status``: what has been uploaded and what is still to come, per model."""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Optional

from local.cli.command import add_command
from local.cli.service import HEALTH_OPTIONS, health_rule
from local.errors import UserError
from local.service.heartbeat import check_health, describe_last_cycle, heartbeat_path
from local.service.status import collect, last_pull, load_entries, render_sides, to_json
from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK
from remote.contract.manifest import ManifestError
from remote.contract.names import MANIFEST_NAME
from remote.contract.options import add_options

EXAMPLE = """\
Per model: run id, checkpoints uploaded, last step, best HR@10, checkpoints waiting for eval
(a checkpoint folder with no metrics file yet), and when the newest checkpoint arrived; below
it, failed checkpoints. Online uploads and offline runs are shown apart, labelled. Then the
last pull and the service's health (when its heartbeat is in --state-dir).
Exit 0; 1 when a model has failures or the service is unhealthy; 2 when the manifest is unreadable.

example:
  python -m local status --results-root results --state-dir state/wandb_eval_uploader --json
"""
OPTIONS = ("results_root", "manifest_path", "state_dir", "inbox", "json", "wandb_mode") + HEALTH_OPTIONS


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "status",
        "per model: checkpoints uploaded, last and best, waiting for eval, newest; the service's health",
        EXAMPLE,
        "Show what has been uploaded and what is still to come, per model (reads files; never calls W&B).",
    )
    add_options(parser, OPTIONS)
    parser.set_defaults(func=run)


def service_health(args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """Given parsed flags, return the run loop's last cycle and health verdict (None: no loop ran here)."""
    path = heartbeat_path(args.state_dir, args.heartbeat_file)
    if not os.path.exists(path):
        return None
    problem = check_health(path, health_rule(args))
    return {"healthy": problem is None, "problem": problem, "last_cycle": describe_last_cycle(path)}


def run(args: argparse.Namespace) -> int:
    """Print the status table (or JSON); exit 1 if any model has failures or the service is unhealthy."""
    manifest = args.manifest_path or os.path.join(args.results_root, MANIFEST_NAME)
    try:
        entries = load_entries(manifest)
    except ManifestError as exc:
        raise UserError(str(exc), "regenerate it on the training machine (pack), then pull again") from exc
    sides = collect(entries or [], args.results_root, args.state_dir, args.wandb_mode)
    pull = last_pull(args.inbox) if args.inbox else None
    service = service_health(args)
    if args.json:
        print(to_json(sides, pull, service))
    else:
        print_text(args, entries is None, sides, pull, service)
    failing = any(m.error or m.failed for side in sides for m in side.models)
    return EXIT_FAILED if failing or (service and not service["healthy"]) else EXIT_OK


def print_text(args: argparse.Namespace, fresh: bool, sides: list, pull: Any, service: Any) -> None:
    """Print the tables, the last pull and the service's health as plain lines."""
    manifest = args.manifest_path or os.path.join(args.results_root, MANIFEST_NAME)
    if fresh:
        print(f"Nothing pulled yet: no manifest at {manifest}.")
        print("It arrives with the first bundle the training machine packs (pack, then pull or once).")
    else:
        print(render_sides(sides))
    if pull:
        verified = pull["verified_at"] or "time not recorded"
        print(f"last pull: {pull['name']} (seq {pull['seq']}), verified {verified}")
    if service:
        print(service["last_cycle"] or "last cycle: none recorded")
        print("service: healthy" if service["healthy"] else f"service: UNHEALTHY: {service['problem']}")
