"""``python -m local unpack``: apply pulled (or manually copied) bundles to the results root."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from local.cli.command import add_command
from local.errors import UserError
from remote.contract.exit_codes import EXIT_OK
from remote.contract.options import add_options

if TYPE_CHECKING:
    from local.unpack.tarsafety import Limits

log = logging.getLogger(__name__)

# The bounds of an untrusted bundle, shared with once/run (which unpack too).
LIMIT_OPTIONS = ("max_members", "max_bytes", "max_file_mb")

DESCRIPTION = """\
Apply bundles to the results root in sequence order, merging: files in a bundle replace
theirs, nothing else is deleted. Every member is validated before anything is written
(no absolute paths, '..', links, devices, FIFOs, duplicates; bounded count, per-file size as
pack's --max-file-mb, and total size); a bad bundle is refused whole. A member whose name is
not valid UTF-8 is skipped with a warning and the rest is applied. A ledger
(<results-root>/.unpack-ledger.json) makes re-applying a no-op; a crash mid-unpack is
finished by the next run. Bundles come from the inbox, or are named on the command line;
bundles applied from the inbox are then deleted from it unless --keep-bundles.
"""

EXAMPLE = """\
example:
  python -m local unpack --results-root results --inbox inbox
  python -m local unpack --results-root results ~/Downloads/bundle-00000007-full.tar.gz
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``unpack`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "unpack",
        "apply bundles to the results root (safe extraction, ledger, crash-safe)",
        EXAMPLE,
        DESCRIPTION,
    )
    add_options(parser, ("results_root", "inbox", "keep_bundles") + LIMIT_OPTIONS)
    parser.add_argument(
        "bundles", nargs="*", metavar="BUNDLE", help="bundle files to apply instead of the inbox's"
    )
    parser.set_defaults(func=run)


def limits_from_args(args: argparse.Namespace) -> Limits:
    """Given parsed flags, return the bounds every bundle must stay within (UserError if not above 0)."""
    from local.unpack.tarsafety import Limits

    limits = Limits(
        max_members=args.max_members, max_bytes=args.max_bytes, max_file_bytes=int(args.max_file_mb * 1024**2)
    )
    if min(limits.max_members, limits.max_bytes, limits.max_file_bytes) <= 0:
        raise UserError(
            "--max-members, --max-bytes and --max-file-mb must be above 0",
            "leave them unset for the defaults (see --help)",
        )
    return limits


def run(args: argparse.Namespace) -> int:
    """Given parsed arguments, apply the bundles and print one summary line."""
    from local.unpack.apply import unpack_bundles, unpack_inbox

    if not args.results_root:
        raise UserError("--results-root is required", "pass --results-root DIR or set RESULTS_ROOT")
    limits = limits_from_args(args)
    if args.bundles:
        report = unpack_bundles(args.results_root, args.bundles, limits)
    else:
        report = unpack_inbox(args.results_root, args.inbox, limits, keep=args.keep_bundles)
    applied = f" ({', '.join(report.applied)})" if report.applied else ""
    skipped = f"; skipped {len(report.skipped)} member(s) not named in UTF-8" if report.skipped else ""
    print(
        f"unpack: applied {len(report.applied)} bundle(s){applied}; "
        f"results root at seq {report.applied_seq}{skipped}"
    )
    return EXIT_OK
