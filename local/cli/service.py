"""``python -m local once | run | health``: the uploader service's commands.

Every option defaults to its environment variable (one table for all commands), so compose
configures the service from ``.env``. The W&B key may come from a secret file
(``WANDB_API_KEY_FILE``); it is read into the environment for the SDK and never logged.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING, Optional

from local.cli.command import add_command
from local.cli.pull import PULL_OPTIONS
from local.cli.pull import options_from_args as pull_options_from_args
from local.cli.unpack import LIMIT_OPTIONS, limits_from_args
from local.cli.upload import UPLOAD_OPTIONS, check_interval
from local.cli.upload import options_from_args as upload_options_from_args
from local.errors import UserError
from local.service.heartbeat import HealthRule, check_health, describe_last_cycle, heartbeat_path
from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK
from remote.contract.options import add_options

if TYPE_CHECKING:
    from local.service.cycle import CycleOptions
    from local.transfer.pull import PullOptions

# local.service.cycle (wandb, paramiko) is imported only by the commands that run a cycle:
# `health` runs every 30 s in the container and must stay cheap.

log = logging.getLogger(__name__)

ONCE_EXAMPLE = """\
Pulls only when a host is configured (--host or PULL_HOST); otherwise unpacks whatever is in
the inbox and uploads. Exit code: the worst step's.

example:
  python -m local once --host gpu01 --user eval --identity key --remote-outbox /data/outbox
"""
RUN_EXAMPLE = """\
A failed step is logged and tried again next cycle; it never ends the loop. SIGTERM or
SIGINT end it after the current step. A heartbeat file is written at every step, with the
cycles' outcomes, for the container healthcheck ('python -m local health').

example:
  POLL_INTERVAL_SECONDS=300 python -m local run --results-root /data/results
"""
HEALTH_EXAMPLE = """\
Healthy means doing its job: the heartbeat is fresh, the last cycle did not fail permanently
(exit 4: authentication, host key, deleted run), fewer than --max-failed-cycles cycles in a
row failed, and a cycle succeeded within --max-seconds-without-success. The one line printed
says why not; Docker keeps it (docker inspect --format '{{json .State.Health}}' CONTAINER).

example:
  python -m local health --state-dir /data/state
"""
# The heartbeat may be this many poll intervals old (and at least MIN_HEALTH_AGE seconds).
HEALTH_INTERVALS = 3
MIN_HEALTH_AGE = 600.0
# The options of the health rule; `status` takes them too, to say the same verdict.
HEALTH_OPTIONS = (
    "heartbeat_file",
    "max_age_seconds",
    "max_failed_cycles",
    "max_seconds_without_success",
    "poll_interval_seconds",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``once``, ``run`` and ``health`` to the local CLI."""
    once = add_command(
        subparsers,
        "once",
        "One cycle: pull, unpack, upload; exit code says if anything failed.",
        ONCE_EXAMPLE,
    )
    add_options(once, UPLOAD_OPTIONS + PULL_OPTIONS + LIMIT_OPTIONS)
    once.set_defaults(func=run_once)
    loop = add_command(
        subparsers, "run", "Repeat the cycle every --poll-interval-seconds (the service).", RUN_EXAMPLE
    )
    add_options(
        loop,
        UPLOAD_OPTIONS
        + PULL_OPTIONS
        + LIMIT_OPTIONS
        + ("poll_interval_seconds", "heartbeat_file", "max_cycles"),
    )
    loop.set_defaults(func=run_forever)
    health = add_command(
        subparsers,
        "health",
        "Exit 0 if the run loop is alive and its cycles succeed, else 1 (one line says why).",
        HEALTH_EXAMPLE,
    )
    add_options(health, ("state_dir",) + HEALTH_OPTIONS)
    health.set_defaults(func=run_health)


def load_api_key_file(required: bool = True) -> None:
    """Given WANDB_API_KEY_FILE in the environment, put the key it holds into WANDB_API_KEY.

    In offline mode (``required=False``) no key is needed, so a missing or empty file is fine.
    """
    path = os.environ.get("WANDB_API_KEY_FILE")
    if not path or os.environ.get("WANDB_API_KEY"):
        return
    if not required and (not os.path.isfile(path) or os.path.getsize(path) == 0):
        return
    try:
        with open(path, "r", encoding="utf-8") as handle:
            key = handle.read().strip()
    except OSError as exc:
        raise UserError(
            f"cannot read WANDB_API_KEY_FILE {path} ({exc.strerror})",
            "mount the W&B key file, or set WANDB_API_KEY",
        ) from exc
    if not key:
        raise UserError(f"WANDB_API_KEY_FILE {path} is empty", "put the W&B API key in it")
    os.environ["WANDB_API_KEY"] = key


def cycle_options(args: argparse.Namespace) -> CycleOptions:
    """Given parsed flags, return the cycle's options (pull only when a host is configured)."""
    load_api_key_file(required=args.wandb_mode == "online" and not args.disable_wandb)
    from local.service.cycle import CycleOptions

    upload = upload_options_from_args(args)
    pull: Optional[PullOptions] = pull_options_from_args(args) if args.host else None
    return CycleOptions(upload=upload, inbox=args.inbox, pull=pull, limits=limits_from_args(args))


def run_once(args: argparse.Namespace) -> int:
    """Run one cycle and return its worst exit code.

    The uploader lock is held for the whole cycle, not only the upload: a ``once`` beside a
    running service must not pull, unpack or ack either.
    """
    from local.service.cycle import run_cycle
    from local.upload.uploader import uploader_lock

    options = cycle_options(args)
    with uploader_lock(options.upload):
        report = run_cycle(options, take_upload_lock=False)
    for error in report.errors:
        print(f"failed: {error}")
    return report.exit_code()


def run_forever(args: argparse.Namespace) -> int:
    """Run the loop until SIGTERM/SIGINT (or --max-cycles)."""
    from local.service.cycle import StopFlag, run_loop

    options = cycle_options(args)
    interval = check_interval(args.poll_interval_seconds)
    stop = StopFlag()
    stop.install()
    heartbeat = heartbeat_path(args.state_dir, args.heartbeat_file)
    return run_loop(options, interval, heartbeat, stop, args.max_cycles)


def health_rule(args: argparse.Namespace) -> HealthRule:
    """Given parsed flags (those of HEALTH_OPTIONS), return the health rule."""
    max_age = args.max_age_seconds or max(HEALTH_INTERVALS * args.poll_interval_seconds, MIN_HEALTH_AGE)
    return HealthRule(max_age, args.max_failed_cycles, args.max_seconds_without_success)


def run_health(args: argparse.Namespace) -> int:
    """Print one line and exit 0 when the loop does its job, 1 otherwise (with the reason)."""
    path = heartbeat_path(args.state_dir, args.heartbeat_file)
    problem = check_health(path, health_rule(args))
    print(f"unhealthy: {problem}" if problem else "healthy: " + (describe_last_cycle(path) or "alive"))
    return EXIT_FAILED if problem else EXIT_OK
