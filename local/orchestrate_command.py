"""``python -m local once | run | health``: the uploader service's commands.

Every flag defaults to an environment variable, so compose configures the service from
``.env``. The W&B key may come from a secret file (``WANDB_API_KEY_FILE``); it is read into
the environment for the SDK and never logged.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING, Any, Dict, Optional

from local.cliutil import add_command
from local.errors import EXIT_OK, UserError
from local.heartbeat import check_health
from local.pull_command import add_pull_arguments
from local.pull_command import options_from_args as pull_options_from_args
from local.upload_command import add_upload_arguments
from local.upload_command import options_from_args as upload_options_from_args

if TYPE_CHECKING:
    from local.orchestrate import CycleOptions
    from local.pull import PullOptions

# local.orchestrate (wandb, paramiko) is imported only by the commands that run a cycle:
# `health` runs every 30 s in the container and must stay cheap.

log = logging.getLogger(__name__)
ENV_DEFAULTS = {"results_root": "RESULTS_ROOT", "state_dir": "STATE_DIR"}

ONCE_EXAMPLE = """\
Pulls only when a host is configured (--host or PULL_HOST); otherwise unpacks whatever is in
the inbox and uploads. Exit code: the worst step's (see python -m local --help).

example:
  python -m local once --host gpu01 --user eval --identity key --remote-outbox /data/outbox
"""
RUN_EXAMPLE = """\
A failed step is logged and tried again next cycle; it never ends the loop. SIGTERM or
SIGINT end it after the current step. A heartbeat file is written at every step for the
container healthcheck ('python -m local health').

example:
  POLL_INTERVAL_SECONDS=300 python -m local run --results-root /data/results
"""
HEALTH_EXAMPLE = """\
example:
  python -m local health --state-dir /data/state
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_upload_arguments(parser)
    add_pull_arguments(parser, with_results_root=False)
    env = os.environ.get
    parser.add_argument(
        "--heartbeat-file",
        default=env("HEARTBEAT_FILE"),
        help="heartbeat for the healthcheck (env HEARTBEAT_FILE; <state-dir>/heartbeat.json)",
    )
    # The upload flags' defaults are the original tool's; the service reads them from the env.
    defaults: Dict[str, Any] = {dest: env(name) for dest, name in ENV_DEFAULTS.items() if env(name)}
    defaults["inbox"] = env("PULL_INBOX") or "inbox"
    if env("POLL_INTERVAL_SECONDS"):
        defaults["poll_interval_seconds"] = float(env("POLL_INTERVAL_SECONDS", "60"))
    if env("MODEL_FILTER"):
        defaults["model_filter"] = [env("MODEL_FILTER", "")]
    parser.set_defaults(**defaults)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``once``, ``run`` and ``health`` to the local CLI."""
    once = add_command(
        subparsers,
        "once",
        "One cycle: pull, unpack, upload; exit code says if anything failed.",
        ONCE_EXAMPLE,
    )
    _add_common(once)
    once.set_defaults(func=run_once)
    loop = add_command(
        subparsers, "run", "Repeat the cycle every --poll-interval-seconds (the service).", RUN_EXAMPLE
    )
    _add_common(loop)
    loop.add_argument("--max-cycles", type=int, default=None, help="stop after N cycles (tests, debugging)")
    loop.set_defaults(func=run_forever)
    health = add_command(
        subparsers, "health", "Exit 0 if the run loop's heartbeat is fresh, else 1.", HEALTH_EXAMPLE
    )
    health.add_argument(
        "--state-dir",
        default=os.environ.get("STATE_DIR", "state/wandb_eval_uploader"),
        help="uploader state directory (env STATE_DIR)",
    )
    health.add_argument(
        "--heartbeat-file", default=os.environ.get("HEARTBEAT_FILE"), help="env HEARTBEAT_FILE"
    )
    health.add_argument(
        "--max-age-seconds",
        type=float,
        default=_default_max_age(),
        help="oldest acceptable heartbeat (env HEALTH_MAX_AGE_SECONDS; max(3 x poll, 600))",
    )
    health.set_defaults(func=run_health)


def _default_max_age() -> float:
    explicit = os.environ.get("HEALTH_MAX_AGE_SECONDS")
    if explicit:
        return float(explicit)
    return max(3 * float(os.environ.get("POLL_INTERVAL_SECONDS", "60")), 600.0)


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
            "cannot read WANDB_API_KEY_FILE {} ({})".format(path, exc.strerror),
            "mount the W&B key file, or set WANDB_API_KEY",
        )
    if not key:
        raise UserError("WANDB_API_KEY_FILE {} is empty".format(path), "put the W&B API key in it")
    os.environ["WANDB_API_KEY"] = key


def cycle_options(args: argparse.Namespace) -> CycleOptions:
    """Given parsed flags, return the cycle's options (pull only when a host is configured)."""
    load_api_key_file(required=args.wandb_mode == "online" and not args.disable_wandb)
    from local.orchestrate import CycleOptions

    upload = upload_options_from_args(args)
    pull: Optional[PullOptions] = None
    if args.host:
        pull = pull_options_from_args(_with_results_root(args, upload.results_root))
    return CycleOptions(upload=upload, inbox=args.inbox, pull=pull)


def _with_results_root(args: argparse.Namespace, results_root: str) -> argparse.Namespace:
    copied = argparse.Namespace(**vars(args))
    copied.results_root = results_root
    return copied


def heartbeat_path(args: argparse.Namespace) -> str:
    """Given parsed flags, return the heartbeat file path."""
    return args.heartbeat_file or os.path.join(args.state_dir, "heartbeat.json")


def run_once(args: argparse.Namespace) -> int:
    """Run one cycle and return its worst exit code.

    The uploader lock is held for the whole cycle, not only the upload: a ``once`` beside a
    running service must not pull, unpack or ack either.
    """
    from local.orchestrate import run_cycle
    from local.upload import uploader_lock

    options = cycle_options(args)
    with uploader_lock(options.upload):
        report = run_cycle(options, take_upload_lock=False)
    for error in report.errors:
        print("failed: {}".format(error))
    return report.exit_code()


def run_forever(args: argparse.Namespace) -> int:
    """Run the loop until SIGTERM/SIGINT (or --max-cycles)."""
    from local.orchestrate import StopFlag, run_loop

    options = cycle_options(args)
    stop = StopFlag()
    stop.install()
    return run_loop(options, args.poll_interval_seconds, heartbeat_path(args), stop, args.max_cycles)


def run_health(args: argparse.Namespace) -> int:
    """Print one line and exit 0 when the heartbeat is fresh, 1 otherwise."""
    problem = check_health(heartbeat_path(args), args.max_age_seconds)
    print("unhealthy: {}".format(problem) if problem else "healthy")
    return 1 if problem else EXIT_OK
