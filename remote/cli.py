"""Command line of the remote role: a thin shell over prepare.py and pack.py.

Every option comes from the one table in :mod:`remote.contract.options` (each flag has an
environment variable); errors end as one line ``Error: ...`` plus a ``Hint:``; exit codes are
those of :mod:`remote.contract.exit_codes`. Standard library only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from typing import List, Optional

from remote.contract.exit_codes import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_USAGE, SUMMARY
from remote.contract.files import LockHeldError
from remote.contract.names import MANIFEST_NAME
from remote.contract.options import OptionEnvError, add_options
from remote.contract.overrides import OverridesError
from remote.contract.tree import checkpoint_step, printable
from remote.pack import PackError, PackOptions, PackReport, pack
from remote.packplan import Filters
from remote.prepare import ManifestOptions, ManifestReport, prepare_manifest

log = logging.getLogger(__name__)

PREPARE_EXAMPLE = f"""\
{SUMMARY}

An overrides file replaces fields per model_dir, for example (write it yourself):
  {{"models": {{"Instruments-grec-sft-qwen4B-4-64-dsz0": {{"wandb_run_id": "eval-instruments-b"}}}}}}

example:
  python -m remote prepare-manifest --results-root ./results
  python -m remote prepare-manifest --results-root ./results --overrides ./results/overrides.json
"""
PACK_EXAMPLE = f"""\
{SUMMARY}

example:
  python -m remote pack --results-root ./results --outbox ./outbox --keep 20
"""
MANIFEST_OPTIONS = (
    "results_root",
    "overrides",
    "default_project",
    "default_entity",
    "default_eval_split",
    "run_id_prefix",
    "default_num_train_epochs",
    "default_wandb_group",
)
PACK_OPTIONS = ("outbox", "no_manifest", "full", "keep", "max_file_mb", "exclude", "jobs")


def _subparser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, example: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=example.replace("python -m remote", program_name()),  # as the user runs it
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser, ["log_level"], suppress=True)  # also after the command, as the original took it
    return parser


def program_name() -> str:
    """Return how the user ran the remote role: ``python3 <file>.pyz`` (the one-file build) or ``-m``."""
    if sys.argv and sys.argv[0].endswith(".pyz"):
        return "python3 " + os.path.basename(sys.argv[0])
    return "python -m remote"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m remote``."""
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Remote role (training machine): write the eval manifest, pack results into bundles.",
        epilog=f"example:\n  {program_name()} pack --results-root ./results --outbox ./outbox\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser, ["log_level"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prepare = _subparser(
        subparsers, "prepare-manifest", "Scan the results tree and write the manifest.", PREPARE_EXAMPLE
    )
    add_options(prepare, MANIFEST_OPTIONS + ("output_manifest",))
    prepare.set_defaults(func=run_prepare)
    packer = _subparser(
        subparsers, "pack", "Refresh the manifest, then publish new results as a bundle.", PACK_EXAMPLE
    )
    add_options(packer, MANIFEST_OPTIONS + PACK_OPTIONS)
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
        args.default_num_train_epochs,
        args.default_wandb_group,
    )


def print_manifest_report(report: ManifestReport, per_model: bool = True) -> None:
    """Print what prepare-manifest wrote, skipped and warned about."""
    verb = "written" if report.written else "unchanged"
    print(f"Manifest {verb}: {printable(report.path)} ({len(report.models)} models)")
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
        print(f"  {skipped.line()}")


def run_prepare(args: argparse.Namespace) -> int:
    """Run prepare-manifest with the parsed flags."""
    _require_dir(args)
    output = args.output_manifest or os.path.join(args.results_root, MANIFEST_NAME)
    report = prepare_manifest(manifest_options(args, output))
    print_manifest_report(report)
    if not report.models:
        warn_no_model(args.results_root)
    return EXIT_OK


def warn_no_model(results_root: str) -> None:
    """Say that no model was found, where it looked, and a folder below that does hold models."""
    root = os.path.abspath(results_root)
    log.warning(
        "no model found in %s: a model is a folder there holding checkpoint-<step>/ folders "
        "(%s/<model_dir>/checkpoint-100/metrics.json)",
        root,
        root,
    )
    deeper = _root_below(root)
    if deeper:
        log.warning("%s holds models: did you mean --results-root %s?", deeper, deeper)


def _root_below(root: str) -> Optional[str]:
    """Given a results root with no model, return a folder right below it that has models, if any."""
    for child in _subdirs(root):
        if any(
            checkpoint_step(os.path.basename(c)) is not None for m in _subdirs(child) for c in _subdirs(m)
        ):
            return child
    return None


def _subdirs(path: str) -> List[str]:
    """Given a folder, return its first 200 visible subfolders (a glance, not a crawl)."""
    try:
        names = sorted(os.listdir(path))[:200]
    except OSError:
        return []
    return [
        os.path.join(path, n) for n in names if not n.startswith(".") and os.path.isdir(os.path.join(path, n))
    ]


def print_pack_report(report: PackReport) -> None:
    """Print what pack published and what it left behind, with the reasons."""
    tally, record = report.tally, report.record
    if record is None:
        print(f"Nothing new to pack ({tally.unchanged} files unchanged).")
    else:
        print(f"Published {record.name}: {record.kind}, {record.files} files, {record.size} bytes")
    held = [
        ("over the size limit", tally.too_large),
        ("excluded by name", tally.excluded),
        ("changing while read, packed next time", len(report.changing)),
        ("skipped (listed below)", len(report.skipped)),
    ]
    details = ", ".join(f"{count} {what}" for what, count in held if count)
    if details:
        print("Not packed: " + details)
    for path in report.changing:
        log.info("changing while read: %s", printable(path))
    for skipped in report.skipped:
        print(f"  {skipped.line()}")
    if report.deleted:
        print("Removed from outbox: " + ", ".join(report.deleted))


def run_pack(args: argparse.Namespace) -> int:
    """Run pack with the parsed flags (prepare-manifest first unless --no-manifest)."""
    _require_dir(args)
    manifest_path = os.path.join(args.results_root, MANIFEST_NAME)
    if args.no_manifest and not os.path.isfile(manifest_path):
        raise UsageError(f"no manifest at {manifest_path}", "run without --no-manifest")
    if args.keep < 1 or args.max_file_mb <= 0 or args.jobs < 1:
        raise UsageError("--keep and --jobs must be at least 1 and --max-file-mb positive", "see --help")
    if not args.no_manifest:
        report = prepare_manifest(replace(manifest_options(args, manifest_path), list_skipped=False))
        print_manifest_report(report, per_model=False)
        if not report.models:
            warn_no_model(args.results_root)
    excludes = tuple(name.strip() for name in args.exclude.split(",") if name.strip())
    filters = Filters(int(args.max_file_mb * 1024 * 1024), excludes)
    print_pack_report(
        pack(PackOptions(args.results_root, args.outbox, args.full, args.keep, filters, args.jobs))
    )
    return EXIT_OK


class UsageError(ValueError):
    """Bad flags or input; carries a hint."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _require_dir(args: argparse.Namespace) -> None:
    """Given parsed flags, raise UsageError when the results root is not a folder."""
    path = args.results_root
    if os.path.isdir(path):
        return
    given = any(a == "--results-root" or a.startswith("--results-root=") for a in args.argv)
    if given or os.environ.get("RESULTS_ROOT"):
        hint = f"check the path (a relative one starts at the current folder, {os.getcwd()})"
    else:
        hint = "pass --results-root DIR (the folder that holds <model_dir>/checkpoint-<step>/)"
    raise UsageError(f"results root not found: {os.path.abspath(path)}", hint)


def print_error(message: object, hint: Optional[str]) -> None:
    """Print ``Error: message`` (and ``Hint: hint``) to stderr."""
    print(f"Error: {message}", file=sys.stderr)
    if hint:
        print(f"Hint: {hint}", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, run the command, and turn known failures into one-line errors."""
    try:
        parser = build_parser()
    except OptionEnvError as exc:  # a bad environment variable: nothing can run
        print_error(exc, "fix or unset that environment variable")
        return EXIT_USAGE
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # was --results-root given? (the hint)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    failures = (
        (UsageError, EXIT_USAGE, None),
        (OverridesError, EXIT_USAGE, "fix the overrides file (see the README's overrides reference)"),
        (LockHeldError, EXIT_BUSY, None),
        (PackError, EXIT_FAILED, None),
        (OSError, EXIT_FAILED, "check the path, free disk space and permissions, then run again"),
    )
    try:
        return int(args.func(args))
    except tuple(kind for kind, _, _ in failures) as exc:
        for kind, code, hint in failures:
            if isinstance(exc, kind):
                print_error(exc, getattr(exc, "hint", None) or hint)
                return code
        raise
