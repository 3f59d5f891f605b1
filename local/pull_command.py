"""``python -m local pull``: fetch new bundles from the remote outbox over SFTP into the inbox."""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
from typing import TYPE_CHECKING

from local.cliutil import add_command
from local.errors import EXIT_OK, UserError

if TYPE_CHECKING:
    from local.pull import PullOptions

# local.pull and local.sftp (paramiko) load only when a pull is built: registering this command
# (and its flags, reused by once/run) must not make every local command pay for them.

log = logging.getLogger(__name__)

DESCRIPTION = """\
Read the remote outbox index over SFTP and download, in sequence order, the bundles the
local side lacks (from the newest full bundle when it fell behind the remote's retention).
Downloads resume after a broken connection and are verified (size, SHA-256) before they
get their final name in the inbox. Transient network errors (refused, reset, timeout, EOF)
are retried with exponential backoff and jitter, at most 6 attempts or 5 minutes, then exit 3;
authentication and host-key failures stop at once (exit 4).

The host key must be in --known-hosts (for a port other than 22 the entry is
'[host]:port'); --accept-new-host-key pins an unknown key the first time, like OpenSSH's
accept-new. A changed key is always refused.

With --results-root, pull also writes the acknowledgement (acks/<consumer>.json in the
remote outbox) of what the results root's unpack ledger says was applied, so the remote
can prune; without it, pull only downloads and acks nothing.
"""

EPILOG = """\
environment (defaults for the flags): PULL_HOST, PULL_PORT, PULL_USER, PULL_IDENTITY,
SSH_KEY_PASSPHRASE (passphrase of the identity; never logged), PULL_KNOWN_HOSTS,
PULL_ACCEPT_NEW_HOST_KEY (1/true/yes), PULL_REMOTE_OUTBOX, PULL_INBOX, PULL_CONSUMER,
RESULTS_ROOT, PULL_TIMEOUT.

example:
  python -m local pull --host gpu01 --user eval --identity ~/.ssh/id_ed25519 \\
      --remote-outbox /data/outbox --inbox inbox --results-root results
"""


def default_consumer() -> str:
    """Return this machine's host name made into a valid consumer name."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).lstrip("._-")[:64]
    return name or "consumer"


def _env_flag(name: str) -> bool:
    """Given an environment variable name, say whether it is set to a true value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``pull`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "pull",
        "download new bundles from the remote outbox over SFTP (verified, resumable)",
        EPILOG,
        DESCRIPTION,
    )
    add_pull_arguments(parser)
    parser.set_defaults(func=run)


def add_pull_arguments(parser: argparse.ArgumentParser, with_results_root: bool = True) -> None:
    """Given a parser, add the pull flags, each defaulting to its environment variable."""
    env = os.environ.get
    parser.add_argument("--host", default=env("PULL_HOST"), help="SSH host of the training machine")
    parser.add_argument("--port", default=env("PULL_PORT", "22"), help="SSH port (default 22)")
    parser.add_argument("--user", default=env("PULL_USER", ""), help="SSH user")
    parser.add_argument("--identity", default=env("PULL_IDENTITY"), help="private key file")
    parser.add_argument(
        "--known-hosts", default=env("PULL_KNOWN_HOSTS", "~/.ssh/known_hosts"), help="known_hosts"
    )
    parser.add_argument(
        "--accept-new-host-key",
        action="store_true",
        default=_env_flag("PULL_ACCEPT_NEW_HOST_KEY"),
        help="pin an unknown host key into --known-hosts (never a changed one)",
    )
    parser.add_argument(
        "--remote-outbox", default=env("PULL_REMOTE_OUTBOX"), help="outbox path on the remote"
    )
    parser.add_argument("--inbox", default=env("PULL_INBOX"), help="local directory for verified bundles")
    parser.add_argument(
        "--consumer",
        default=env("PULL_CONSUMER") or default_consumer(),
        help="name of this uploader in acks/ (default: the host name; pin it in containers)",
    )
    if with_results_root:
        parser.add_argument(
            "--results-root", default=env("RESULTS_ROOT"), help="ack what its ledger says was applied"
        )
    parser.add_argument("--timeout", default=env("PULL_TIMEOUT", "30"), help="network timeout in seconds")


def options_from_args(args: argparse.Namespace) -> PullOptions:
    """Given parsed arguments, return validated pull options (UserError names what is missing)."""
    for flag in ("host", "remote_outbox", "inbox"):
        if not getattr(args, flag):
            name = flag.replace("_", "-")
            env_name = "PULL_" + flag.upper()
            raise UserError("--{} is required".format(name), "pass --{} or set {}".format(name, env_name))
    try:
        port, timeout = int(args.port), float(args.timeout)
    except ValueError:
        raise UserError("--port and --timeout must be numbers", "e.g. --port 22 --timeout 30")
    from local.pull import PullOptions
    from local.sftp import ConnectionParams

    params = ConnectionParams(
        host=args.host,
        port=port,
        user=args.user,
        identity=args.identity,
        passphrase=os.environ.get("SSH_KEY_PASSPHRASE") or None,
        known_hosts=args.known_hosts,
        accept_new_host_key=bool(args.accept_new_host_key),
        timeout=timeout,
    )
    return PullOptions(params, args.remote_outbox, args.inbox, args.consumer, args.results_root or None)


def run(args: argparse.Namespace) -> int:
    """Given parsed arguments, pull and print one summary line."""
    from local.pull import pull

    report = pull(options_from_args(args))
    acked = "; acked seq {}".format(report.acked_seq) if report.acked_seq is not None else ""
    print(
        "pull: {} new bundle(s), {} bytes transferred{}".format(
            len(report.downloaded), report.bytes_transferred, acked
        )
    )
    return EXIT_OK
