"""Command line of the remote role: a thin shell over prepare.py and pack.py.

Errors end as one line ``Error: ...`` plus a ``Hint:``; exit codes: 0 ok, 1 failure,
2 usage or bad input, 5 another pack holds the outbox lock. Standard library only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from remote.fsutil import LockHeldError
from remote.manifest import MANIFEST_NAME
from remote.pack import PackError, PackOptions, PackReport, pack
from remote.packplan import DEFAULT_EXCLUDES, Filters
from remote.prepare import ManifestOptions, ManifestReport, OverridesError, prepare_manifest

log = logging.getLogger(__name__)

PREPARE_EXAMPLE = """\
example:
  python -m remote prepare-manifest --results-root ./results \\
      --overrides config/wandb_eval_manifest_overrides.json
"""
PACK_EXAMPLE = """\
example:
  python -m remote pack --results-root ./results --outbox ./outbox --keep 20
"""


def _add_manifest_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-root", default="./results", help="results root holding <model_dir>/ (./results)"
    )
    parser.add_argument("--overrides", default="", help="JSON file replacing fields per model_dir")
    parser.add_argument("--default-project", default="MIMIGenRec-Eval", help="W&B project (MIMIGenRec-Eval)")
    parser.add_argument("--default-entity", default="", help="W&B entity (empty: the key's default)")
    parser.add_argument("--default-eval-split", default="test", help="eval split recorded per model (test)")
    parser.add_argument("--run-id-prefix", default="eval", help="prefix of generated run ids (eval)")


def _subparser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, example: str
) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m remote``."""
    parser = argparse.ArgumentParser(
        prog="python -m remote",
        description="Remote role (training machine): write the eval manifest, pack results into bundles.",
        epilog="example:\n  python -m remote pack --results-root ./results --outbox ./outbox\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO or WARNING (INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prepare = _subparser(
        subparsers, "prepare-manifest", "Scan the results tree and write the manifest.", PREPARE_EXAMPLE
    )
    _add_manifest_flags(prepare)
    prepare.add_argument(
        "--output-manifest",
        default="results/" + MANIFEST_NAME,
        help="where to write it (results/" + MANIFEST_NAME + ")",
    )
    prepare.set_defaults(func=run_prepare)
    packer = _subparser(
        subparsers, "pack", "Refresh the manifest, then publish new results as a bundle.", PACK_EXAMPLE
    )
    _add_manifest_flags(packer)
    packer.add_argument(
        "--outbox", default="./outbox", help="outbox directory the uploader pulls from (./outbox)"
    )
    packer.add_argument("--no-manifest", action="store_true", help="do not refresh the manifest first")
    packer.add_argument("--full", action="store_true", help="pack every file, not only new or changed ones")
    packer.add_argument("--keep", type=int, default=20, help="bundles kept in the outbox at most (20)")
    packer.add_argument(
        "--max-file-mb", type=float, default=10.0, help="files larger than this never travel (10)"
    )
    packer.add_argument(
        "--exclude",
        default=",".join(DEFAULT_EXCLUDES),
        help="basenames that never travel, comma-separated (%(default)s)",
    )
    packer.set_defaults(func=run_pack)
    return parser


def manifest_options(args: argparse.Namespace, output: str) -> ManifestOptions:
    """Given parsed flags, return the prepare-manifest options."""
    return ManifestOptions(
        args.results_root,
        output,
        args.overrides or None,
        args.default_project,
        args.default_entity,
        args.default_eval_split,
        args.run_id_prefix,
    )


def print_manifest_report(report: ManifestReport, per_model: bool = True) -> None:
    """Print what prepare-manifest wrote, skipped and warned about."""
    verb = "written" if report.written else "unchanged"
    print("Manifest {}: {} ({} models)".format(verb, report.path, len(report.models)))
    for warning in report.warnings:
        log.warning("%s", warning)
    if not per_model:
        return
    for model in report.models:
        print(
            "  {} dataset={} cb_setting={} run_id={}".format(
                model["model_dir"], model["dataset"], model["cb_setting"], model["wandb_run_id"]
            )
        )
    for skipped in report.skipped:
        print("  skipped {}: {}".format(skipped.path, skipped.reason))


def run_prepare(args: argparse.Namespace) -> int:
    """Run prepare-manifest with the parsed flags."""
    _require_dir(args.results_root)
    print_manifest_report(prepare_manifest(manifest_options(args, args.output_manifest)))
    return 0


def print_pack_report(report: PackReport) -> None:
    """Print what pack published and what it left behind, with the reasons."""
    plan, record = report.plan, report.record
    if record is None:
        print("Nothing new to pack ({} files unchanged).".format(plan.unchanged))
    else:
        print(
            "Published {}: {}, {} files, {} bytes".format(record.name, record.kind, record.files, record.size)
        )
    held = [
        ("over the size limit", len(plan.too_large)),
        ("excluded by name", len(plan.excluded)),
        ("changing while read, packed next time", len(report.changing)),
        ("symlinks or special files", len(report.skipped)),
    ]
    details = ", ".join("{} {}".format(count, what) for what, count in held if count)
    if details:
        print("Not packed: " + details)
    for path in report.changing:
        log.info("changing while read: %s", path)
    for skipped in report.skipped:
        print("  skipped {}: {}".format(skipped.path, skipped.reason))
    if report.deleted:
        print("Removed from outbox: " + ", ".join(report.deleted))


def run_pack(args: argparse.Namespace) -> int:
    """Run pack with the parsed flags (prepare-manifest first unless --no-manifest)."""
    _require_dir(args.results_root)
    manifest_path = os.path.join(args.results_root, MANIFEST_NAME)
    if args.no_manifest and not os.path.isfile(manifest_path):
        raise UsageError("no manifest at {}".format(manifest_path), "run without --no-manifest")
    if args.keep < 1 or args.max_file_mb <= 0:
        raise UsageError("--keep must be at least 1 and --max-file-mb positive", "see --help")
    if not args.no_manifest:
        print_manifest_report(prepare_manifest(manifest_options(args, manifest_path)), per_model=False)
    excludes = tuple(name.strip() for name in args.exclude.split(",") if name.strip())
    filters = Filters(int(args.max_file_mb * 1024 * 1024), excludes)
    print_pack_report(pack(PackOptions(args.results_root, args.outbox, args.full, args.keep, filters)))
    return 0


class UsageError(ValueError):
    """Bad flags or input; carries a hint."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _require_dir(path: str) -> None:
    if not os.path.isdir(path):
        raise UsageError("results root not found: {}".format(path), "pass --results-root DIR")


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the command, and turn known failures into one-line errors."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    failures = (
        (UsageError, 2, None),
        (OverridesError, 2, "fix the overrides file (see the README's overrides reference)"),
        (LockHeldError, 5, None),
        (PackError, 1, None),
        (OSError, 1, "check the path, free disk space and permissions, then run again"),
    )
    try:
        return int(args.func(args))
    except tuple(kind for kind, _, _ in failures) as exc:
        for kind, code, hint in failures:
            if isinstance(exc, kind):
                print("Error: {}".format(exc), file=sys.stderr)
                hint = getattr(exc, "hint", None) or hint
                if hint:
                    print("Hint: {}".format(hint), file=sys.stderr)
                return code
        raise
