"""``python -m local unpack``: apply pulled (or manually copied) bundles to the results root."""

from __future__ import annotations

import argparse
import logging
import os

from local.cliutil import add_command
from local.errors import EXIT_OK, UserError
from local.tarsafety import DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMBERS, Limits
from local.unpack import unpack_bundles, unpack_inbox

log = logging.getLogger(__name__)

DESCRIPTION = """\
Apply bundles to the results root in sequence order, merging: files in a bundle replace
theirs, nothing else is deleted. Every member is validated before anything is written
(no absolute paths, '..', links, devices, FIFOs, duplicates; bounded count and size); a bad
bundle is refused whole. A ledger (<results-root>/.unpack-ledger.json) makes re-applying a
no-op; a crash mid-unpack is finished by the next run. With --inbox, applied bundles are
deleted from the inbox unless --keep-bundles.
"""

EPILOG = """\
environment: RESULTS_ROOT, PULL_INBOX, UNPACK_MAX_MEMBERS, UNPACK_MAX_BYTES set the defaults.

example:
  python -m local unpack --results-root results --inbox inbox
  python -m local unpack --results-root results ~/Downloads/bundle-00000007-full.tar.gz
"""


def _env_int(name: str, default: int) -> int:
    """Given an environment variable name, return its integer value or ``default``."""
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise UserError("{}={!r} is not an integer".format(name, raw))


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``unpack`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "unpack",
        "apply bundles to the results root (safe extraction, ledger, crash-safe)",
        EPILOG,
        DESCRIPTION,
    )
    parser.add_argument("--results-root", default=os.environ.get("RESULTS_ROOT"), help="env RESULTS_ROOT")
    parser.add_argument("--inbox", default=None, help="apply every bundle pull left here (env PULL_INBOX)")
    parser.add_argument(
        "bundles", nargs="*", metavar="BUNDLE", help="bundle files to apply instead of --inbox"
    )
    parser.add_argument("--keep-bundles", action="store_true", help="keep applied bundles in the inbox")
    parser.add_argument("--max-members", type=int, default=None, help="members per bundle (default 500000)")
    parser.add_argument(
        "--max-bytes", type=int, default=None, help="uncompressed bytes per bundle (default 10 GiB)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Given parsed arguments, apply the bundles and print one summary line."""
    if not args.results_root:
        raise UserError("--results-root is required", "pass --results-root DIR or set RESULTS_ROOT")
    inbox = args.inbox or (None if args.bundles else os.environ.get("PULL_INBOX"))
    if bool(inbox) == bool(args.bundles):
        raise UserError("give either --inbox DIR or bundle files, not both or neither", "see --help")
    limits = Limits(
        max_members=args.max_members or _env_int("UNPACK_MAX_MEMBERS", DEFAULT_MAX_MEMBERS),
        max_bytes=args.max_bytes or _env_int("UNPACK_MAX_BYTES", DEFAULT_MAX_BYTES),
    )
    if inbox:
        report = unpack_inbox(args.results_root, inbox, limits, keep=args.keep_bundles)
    else:
        report = unpack_bundles(args.results_root, args.bundles, limits)
    print(
        "unpack: applied {} bundle(s){}; results root at seq {}".format(
            len(report.applied),
            " ({})".format(", ".join(report.applied)) if report.applied else "",
            report.applied_seq,
        )
    )
    return EXIT_OK
