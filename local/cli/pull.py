"""``python -m local pull``: fetch new bundles from the remote outbox over SFTP into the inbox."""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
from typing import TYPE_CHECKING

from local.cli.command import add_command
from local.errors import UserError
from remote.contract.exit_codes import EXIT_OK
from remote.contract.options import add_options

if TYPE_CHECKING:
    from local.transfer.pull import PullOptions

# local.transfer (paramiko) loads only when a pull is built: registering this command (and its
# options, reused by once/run) must not make every local command pay for it.

log = logging.getLogger(__name__)

# The connection options, shared with once/run (which pull when a host is configured).
PULL_OPTIONS = (
    "host",
    "port",
    "user",
    "identity",
    "known_hosts",
    "accept_new_host_key",
    "remote_outbox",
    "inbox",
    "consumer",
    "timeout",
)

DESCRIPTION = """\
Read the remote outbox index over SFTP and download, in sequence order, the bundles the
local side lacks (from the newest full bundle when it fell behind the remote's retention).
Downloads resume after a broken connection and are verified (size, SHA-256) before they
get their final name in the inbox. Transient network errors (refused, reset, timeout, EOF)
are retried with exponential backoff and jitter, at most 6 attempts or 5 minutes, then exit 3;
authentication and host-key failures stop at once (exit 4).

The host key must be in --known-hosts (for a port other than 22 the entry is
'[host]:port'); --accept-new-host-key pins an unknown key the first time, like OpenSSH's
accept-new. A changed key is always refused. The identity's passphrase, if any, comes from
the environment variable SSH_KEY_PASSPHRASE only (never a flag, never logged).

With --results-root, where the local side is comes from that results root's unpack ledger, and
after the download pull acknowledges to the remote (acks/<consumer>.json) what the ledger says
was applied, so the remote can prune; without it, the inbox's own record says where the local
side is and nothing is acknowledged.
"""

EXAMPLE = """\
example:
  python -m local pull --host gpu01 --user eval --identity ~/.ssh/id_ed25519 \\
      --remote-outbox /data/outbox --inbox inbox --results-root results
"""


def default_consumer() -> str:
    """Return this machine's host name made into a valid consumer name."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).lstrip("._-")[:64]
    return name or "consumer"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``pull`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "pull",
        "download new bundles from the remote outbox over SFTP (verified, resumable)",
        EXAMPLE,
        DESCRIPTION,
    )
    add_options(parser, PULL_OPTIONS + ("results_root",))
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> PullOptions:
    """Given parsed arguments, return validated pull options (UserError names what is missing)."""
    for flag in ("host", "remote_outbox", "inbox"):
        if not getattr(args, flag):
            name = flag.replace("_", "-")
            raise UserError(f"--{name} is required", f"pass --{name} or set PULL_{flag.upper()}")
    from local.transfer.pull import PullOptions
    from local.transfer.sftp import ConnectionParams

    params = ConnectionParams(
        host=args.host,
        port=args.port,
        user=args.user,
        identity=args.identity or None,
        passphrase=os.environ.get("SSH_KEY_PASSPHRASE") or None,
        known_hosts=args.known_hosts,
        accept_new_host_key=bool(args.accept_new_host_key),
        timeout=args.timeout,
    )
    return PullOptions(params, args.remote_outbox, args.inbox, args.consumer or default_consumer())


def run(args: argparse.Namespace) -> int:
    """Given parsed arguments, pull (and ack, with --results-root) and print one summary line."""
    options = options_from_args(args)
    if args.results_root and os.path.isdir(args.results_root):
        from local.service.cycle import sync_remote

        report = sync_remote(options, args.results_root)
    else:
        from local.transfer.pull import pull_inbox

        report = pull_inbox(options)
    acked = f"; acked seq {report.acked_seq}" if report.acked_seq is not None else ""
    print(
        f"pull: {len(report.downloaded)} new bundle(s), {report.bytes_transferred} bytes transferred{acked}"
    )
    return EXIT_OK
