"""Apply bundles to the results root: validate, stage, then move into place (crash-safe).

For each bundle, in sequence order: every member is validated (``local.unpack.tarsafety``) and the
results root is checked for clashes before anything is written; the files are extracted to
``<results-root>/.unpack-staging/<bundle>/`` (same file system, so moving is a rename); a
journal naming the staged files is written; the files are renamed into place, the manifest
last; the ledger records the bundle; the staging area is removed. A crash before the journal
leaves only staging debris (discarded next run); a crash after it is finished by the next run
from the journal. Bundles merge: files are replaced, nothing else in the results root is deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set, Tuple

from local.errors import UserError
from local.unpack.ledger import Ledger, load_ledger, new_entry, record_applied
from local.unpack.tarsafety import (
    REGULAR_TYPES,
    BundleContents,
    Limits,
    UnsafeBundleError,
    normalise_name,
    validate_bundle,
)
from remote.contract.files import exclusive_lock, sha256_file, write_json_atomic
from remote.contract.names import JOURNAL_SUFFIX, LEDGER_NAME, MANIFEST_NAME, STAGING_DIR, UNPACK_LOCK_NAME
from remote.contract.outbox import ChainGapError, bundles_after, parse_bundle_name

log = logging.getLogger(__name__)

CHUNK = 1 << 20


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
    applied_seq: int = 0


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


def stage(bundle: BundleFile, contents: BundleContents, staging: str) -> None:
    """Given a validated bundle, extract its regular files under ``staging`` (re-checking each)."""
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    with tarfile.open(bundle.path, mode="r:gz") as tar:
        for member in tar:
            tar.members = []  # type: ignore[attr-defined]  # keep memory flat on huge bundles
            if member.isdir():
                continue
            name = normalise_name(member.name)
            if member.type not in REGULAR_TYPES or contents.files.get(name) != member.size:
                raise UnsafeBundleError(f"member {member.name!r} changed since it was validated")
            _extract_file(tar, member, os.path.join(staging, name))


def _extract_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> None:
    """Given a regular member, copy exactly its declared size to a new file at ``target``."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise UnsafeBundleError(f"member {member.name!r} has no data")
    remaining = member.size
    with open(target, "xb") as out:
        while remaining > 0:
            block = source.read(min(CHUNK, remaining))
            if not block:
                raise UnsafeBundleError(f"member {member.name!r} is truncated")
            out.write(block)
            remaining -= len(block)


def commit(results_root: str, journal_path: str, ledger: Ledger) -> str:
    """Given a journal, move its staged files into place (manifest last), record it, clean up.

    Safe to run again after a crash at any point: files already moved are simply skipped.
    """
    with open(journal_path, "rb") as handle:
        journal = json.load(handle)
    staging = journal_path[: -len(JOURNAL_SUFFIX)]
    for name in sorted(journal["files"], key=lambda n: (n == MANIFEST_NAME, n)):
        source = os.path.join(staging, name)
        if not os.path.lexists(source):
            continue  # moved before a crash
        target = os.path.join(results_root, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
    os.sync()  # the moves must be on disk before the ledger says the bundle is applied
    if ledger.find(int(journal["seq"])) is None:
        entry = new_entry(int(journal["seq"]), journal["name"], journal["sha256"], len(journal["files"]))
        record_applied(results_root, ledger, entry)
    shutil.rmtree(staging, ignore_errors=True)
    os.unlink(journal_path)
    return str(journal["name"])


def recover(results_root: str, ledger: Ledger) -> List[str]:
    """Given a results root, finish journaled unpacks a crash interrupted and drop unjournaled debris."""
    base = os.path.join(results_root, STAGING_DIR)
    names = sorted(os.listdir(base)) if os.path.isdir(base) else []
    journals = sorted((n for n in names if n.endswith(JOURNAL_SUFFIX)), key=_journal_seq)
    finished = [commit(results_root, os.path.join(base, n), ledger) for n in journals]
    for name in os.listdir(base) if os.path.isdir(base) else []:
        log.info("discarding the unfinished staging of %s", name)
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    for name in finished:
        log.info("finished the interrupted unpack of %s", name)
    with contextlib.suppress(OSError):
        os.rmdir(base)  # only when empty: nothing hidden lingers in the results root
    return finished


def _journal_seq(name: str) -> int:
    record = parse_bundle_name(name[: -len(JOURNAL_SUFFIX)])
    return record.seq if record else 0


def apply_bundle(results_root: str, bundle: BundleFile, ledger: Ledger, limits: Limits) -> None:
    """Given one bundle next in the chain, validate it whole, stage it, and commit it."""
    try:
        contents = validate_bundle(bundle.path, limits)
    except UnsafeBundleError as exc:
        raise UserError(
            f"bundle {bundle.name} refused, nothing written: {exc}",
            f"delete {bundle.path} and publish a full bundle: python -m remote pack --full",
        ) from exc
    check_targets(results_root, contents)
    if MANIFEST_NAME not in contents.files:
        log.warning("bundle %s has no manifest; the results root keeps its current one", bundle.name)
    staging = os.path.join(results_root, STAGING_DIR, bundle.name)
    sha256 = sha256_file(bundle.path)
    stage(bundle, contents, staging)
    os.sync()  # staged bytes must be durable before the journal lets a later run commit them
    journal = {"seq": bundle.seq, "name": bundle.name, "sha256": sha256, "files": sorted(contents.files)}
    write_json_atomic(staging + JOURNAL_SUFFIX, journal)
    commit(results_root, staging + JOURNAL_SUFFIX, ledger)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(staging))
    log.info("applied %s: %d files, %d bytes", bundle.name, len(contents.files), contents.total_bytes)


def unpack_bundles(results_root: str, paths: Sequence[str], limits: Optional[Limits] = None) -> UnpackReport:
    """Given bundle files, apply those the results root lacks, in order; return what happened."""
    bundles = [identify(path) for path in paths]
    os.makedirs(results_root, exist_ok=True)
    report = UnpackReport()
    with exclusive_lock(os.path.join(results_root, UNPACK_LOCK_NAME), "unpack"):
        ledger = load_ledger(results_root)
        report.recovered = recover(results_root, ledger)
        chain, older = plan_chain(ledger, bundles)
        for bundle in older:
            check_already_applied(ledger, bundle)
            report.already.append(bundle.name)
        for bundle in chain:
            apply_bundle(results_root, bundle, ledger, limits or Limits())
            report.applied.append(bundle.name)
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
