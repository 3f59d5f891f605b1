"""Apply bundles to the results root: validate, stage, then move into place (crash-safe).

For each bundle, in sequence order: every member is validated (``local.unpack.tarsafety``) and the
results root is checked for clashes before anything is written; the files are extracted to
``<results-root>/.unpack-staging/<bundle>/`` (same file system, so moving is a rename); a
journal naming the staged files is written; the files are renamed into place, the manifest
last; the ledger records the bundle; the staging area is removed (``local.unpack.staging``). A
crash before the journal leaves only staging debris (discarded next run); a crash after it is
finished by the next run from the journal; a bundle refused while staging leaves nothing. Bundles
merge: files are replaced, nothing else in the results root is deleted. Members whose names are
not valid UTF-8 are skipped with a warning (``local.unpack.tarsafety`` says why).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set, Tuple

from local.errors import UserError
from local.unpack.ledger import Ledger, load_ledger
from local.unpack.staging import commit, discard, recover, stage
from local.unpack.stream import StreamBudgetError
from local.unpack.tarsafety import BundleContents, Limits, UnsafeBundleError, validate_bundle
from remote.contract.files import exclusive_lock, sha256_file, write_json_atomic
from remote.contract.names import JOURNAL_SUFFIX, LEDGER_NAME, MANIFEST_NAME, STAGING_DIR, UNPACK_LOCK_NAME
from remote.contract.outbox import ChainGapError, bundles_after, parse_bundle_name

log = logging.getLogger(__name__)

# Reading a bundle that passed validation can still fail if it changed since: refuse it, as then.
# (An OSError while writing, a full disk say, is not the bundle's fault and is raised as it is.)
CHANGED_ERRORS = (UnsafeBundleError, StreamBudgetError, tarfile.TarError, EOFError, zlib.error)
# Skipped members named one warning line each, up to this many per bundle; then one line for the rest.
SKIPPED_LINES = 10


@dataclass(frozen=True)
class BundleFile:
    """A bundle file on local disk, identified by its name."""

    path: str
    seq: int
    kind: str
    name: str


@dataclass
class UnpackReport:
    """What one unpack run did."""

    applied: List[str] = field(default_factory=list)
    already: List[str] = field(default_factory=list)
    recovered: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    applied_seq: int = 0
    # Every file this run moved into place, relative to the results root: what the service's next
    # upload pass plans from, instead of stat-ing the whole tree (local.service.changes).
    files: List[str] = field(default_factory=list)


def identify(path: str) -> BundleFile:
    """Given a bundle path, return its identity from the file name, or raise UserError."""
    record = parse_bundle_name(os.path.basename(path))
    if record is None:
        raise UserError(
            f"{path} is not named like a bundle",
            "bundles are named bundle-<8-digit seq>-<full|delta>.tar.gz",
        )
    if not os.path.isfile(path):
        raise UserError(f"bundle {path} does not exist", "check the path, or pull it first")
    return BundleFile(path, record.seq, record.kind, record.name)


def plan_chain(ledger: Ledger, bundles: Sequence[BundleFile]) -> Tuple[List[BundleFile], List[BundleFile]]:
    """Given the ledger and available bundles, return (to apply in order, older than the ledger).

    The chain is :func:`remote.contract.outbox.bundles_after` the ledger; raises UserError on a gap.
    """
    unique = {b.seq: b for b in bundles}
    older = [unique[seq] for seq in sorted(unique) if seq <= ledger.applied_seq]
    try:
        chain = bundles_after(list(unique.values()), ledger.applied_seq)
    except ChainGapError as exc:
        raise UserError(
            f"bundle {exc.delta_name} cannot be applied: bundle {exc.missing_seq} before it is missing",
            "run pull again (it falls back to the newest full bundle) or pass a full bundle",
        ) from exc
    return chain, older


def check_already_applied(ledger: Ledger, bundle: BundleFile) -> None:
    """Given a bundle at or below the ledger's sequence, refuse it if it differs from the one applied."""
    entry = ledger.find(bundle.seq)
    if entry is not None and entry.sha256 != sha256_file(bundle.path):
        raise UserError(
            f"bundle {bundle.path} differs from the bundle {entry.name} applied earlier",
            f"the remote outbox was probably reset; move {LEDGER_NAME} aside to start over",
        )


def check_targets(results_root: str, contents: BundleContents) -> None:
    """Given validated contents, refuse them if the results root has a non-directory in their way."""
    good_dirs: Set[str] = set()
    for name in contents.files:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            _require_directory(results_root, "/".join(parts[:depth]), name, good_dirs)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(os.path.join(results_root, name)).st_mode):
                raise UserError(f"bundle file {name!r} would replace a directory in the results root")


def _require_directory(results_root: str, prefix: str, name: str, good_dirs: Set[str]) -> None:
    """Given a path prefix, accept it if missing or a real directory (links could lead outside)."""
    if prefix in good_dirs:
        return
    try:
        mode = os.lstat(os.path.join(results_root, prefix)).st_mode
    except FileNotFoundError:
        mode = stat.S_IFDIR  # created on commit
    if not stat.S_ISDIR(mode):
        raise UserError(
            f"results root has a link or file at {prefix!r} where bundle file {name!r} needs a directory",
            f"move {os.path.join(results_root, prefix)} aside and unpack again",
        )
    good_dirs.add(prefix)


def _refused(bundle: BundleFile, exc: Exception) -> UserError:
    """Given why a bundle cannot be applied, return the one-line error naming it, with a fix."""
    default = f"delete {bundle.path} and publish a full bundle: python -m remote pack --full"
    hint = exc.hint if isinstance(exc, UnsafeBundleError) and exc.hint else default
    return UserError(f"bundle {bundle.name} refused, nothing written: {exc}", hint)


def _warn_skipped(bundle: BundleFile, skipped: Sequence[str]) -> None:
    """Given the members a bundle had to skip, name them in one warning line each (bounded)."""
    for shown in skipped[:SKIPPED_LINES]:
        log.warning(
            "bundle %s: skipped member %s: its name is not valid UTF-8, so no manifest, ledger or "
            "W&B run could name it; the rest of the bundle is applied",
            bundle.name,
            shown,
        )
    if len(skipped) > SKIPPED_LINES:
        log.warning(
            "bundle %s: skipped %d more members whose names are not valid UTF-8",
            bundle.name,
            len(skipped) - SKIPPED_LINES,
        )


def apply_bundle(
    results_root: str,
    bundle: BundleFile,
    ledger: Ledger,
    limits: Limits,
    written: Optional[List[str]] = None,
) -> List[str]:
    """Given one bundle next in the chain, validate it whole, stage it, and commit it.

    Returns the members it skipped (names not valid UTF-8), as shown in the warnings; the names of
    the files it moved into place are added to ``written``, if given.
    """
    try:
        contents = validate_bundle(bundle.path, limits)
    except UnsafeBundleError as exc:
        raise _refused(bundle, exc) from exc
    check_targets(results_root, contents)
    if MANIFEST_NAME not in contents.files:
        log.warning("bundle %s has no manifest; the results root keeps its current one", bundle.name)
    staging = os.path.join(results_root, STAGING_DIR, bundle.name)
    sha256 = sha256_file(bundle.path)
    try:
        stage(bundle.path, contents, staging)
    except BaseException as exc:
        discard(staging)  # nothing half-staged stays behind, whatever stopped the extraction
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(staging))
        if isinstance(exc, CHANGED_ERRORS):
            raise _refused(bundle, exc) from exc
        raise
    os.sync()  # staged bytes must be durable before the journal lets a later run commit them
    journal = {"seq": bundle.seq, "name": bundle.name, "sha256": sha256, "files": sorted(contents.files)}
    write_json_atomic(staging + JOURNAL_SUFFIX, journal)
    commit(results_root, staging + JOURNAL_SUFFIX, ledger, written)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(staging))
    _warn_skipped(bundle, contents.skipped)
    size = sum(contents.files.values())
    log.info("applied %s: %d files, %d bytes", bundle.name, len(contents.files), size)
    return contents.skipped


def unpack_bundles(results_root: str, paths: Sequence[str], limits: Optional[Limits] = None) -> UnpackReport:
    """Given bundle files, apply those the results root lacks, in order; return what happened."""
    bundles = [identify(path) for path in paths]
    os.makedirs(results_root, exist_ok=True)
    report = UnpackReport()
    with exclusive_lock(os.path.join(results_root, UNPACK_LOCK_NAME), "unpack"):
        ledger = load_ledger(results_root)
        report.recovered = recover(results_root, ledger, report.files)
        chain, older = plan_chain(ledger, bundles)
        for bundle in older:
            check_already_applied(ledger, bundle)
            report.already.append(bundle.name)
        for bundle in chain:
            skipped = apply_bundle(results_root, bundle, ledger, limits or Limits(), report.files)
            report.applied.append(bundle.name)
            report.skipped.extend(f"{bundle.name}: {shown}" for shown in skipped)
        report.applied_seq = ledger.applied_seq
    return report


def inbox_bundles(inbox: str) -> List[str]:
    """Given an inbox directory, return the paths of the complete bundles in it, by sequence."""
    if not os.path.isdir(inbox):
        raise UserError(f"inbox {inbox} does not exist", "run pull first, or check --inbox")
    names = sorted(n for n in os.listdir(inbox) if parse_bundle_name(n))
    return [os.path.join(inbox, n) for n in names]


def unpack_inbox(
    results_root: str, inbox: str, limits: Optional[Limits] = None, keep: bool = False
) -> UnpackReport:
    """Given an inbox, apply its bundles; unless ``keep``, delete those the ledger now covers."""
    report = unpack_bundles(results_root, inbox_bundles(inbox), limits)
    if not keep:
        for path in inbox_bundles(inbox):
            if identify(path).seq <= report.applied_seq:
                os.unlink(path)
    return report
