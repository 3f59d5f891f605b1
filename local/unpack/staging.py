"""The crash-safe staging area of unpack: extract a validated bundle, then move it into place.

A bundle is extracted under ``<results-root>/.unpack-staging/<bundle>/`` (the same file system,
so moving is a rename), then a journal naming its files is written, then the files are renamed
into place (the manifest last), the ledger records the bundle and the staging area goes. A crash
before the journal leaves only debris, which :func:`recover` discards; a crash after it is
finished by :func:`recover` from the journal, so nothing half-written ever sits in the results
root under a real name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tarfile
from typing import List, Optional

from local.unpack.ledger import Ledger, new_entry, record_applied
from local.unpack.stream import members, open_bundle
from local.unpack.tarsafety import REGULAR_TYPES, BundleContents, UnsafeBundleError, normalise_name
from remote.contract.names import JOURNAL_SUFFIX, MANIFEST_NAME, STAGING_DIR
from remote.contract.outbox import parse_bundle_name
from remote.contract.tree import is_utf8, shown_name

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def stage(bundle_path: str, contents: BundleContents, staging: str) -> None:
    """Given a validated bundle, extract its regular files under ``staging`` (re-checking each)."""
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    extracted = 0
    with open_bundle(bundle_path) as (tar, stream):
        for member in members(tar, stream):
            name = normalise_name(member.name)
            if member.isdir() or not is_utf8(name):
                continue  # directories come with their files; undecodable names were skipped
            if member.type not in REGULAR_TYPES or contents.files.get(name) != member.size:
                raise UnsafeBundleError(f"member {shown_name(member.name)} changed since it was validated")
            _extract_file(tar, member, os.path.join(staging, name))
            extracted += 1
    if extracted != len(contents.files):
        raise UnsafeBundleError(f"{bundle_path} changed since it was validated")


def _extract_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> None:
    """Given a regular member, copy exactly its declared size to a new file at ``target``."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise UnsafeBundleError(f"member {shown_name(member.name)} has no data")
    remaining = member.size
    with open(target, "xb") as out:
        while remaining > 0:
            block = source.read(min(CHUNK, remaining))
            if not block:
                raise UnsafeBundleError(f"member {shown_name(member.name)} is truncated")
            out.write(block)
            remaining -= len(block)


def commit(results_root: str, journal_path: str, ledger: Ledger, written: Optional[List[str]] = None) -> str:
    """Given a journal, move its staged files into place (manifest last), record it, clean up.

    Safe to run again after a crash at any point: files already moved are simply skipped. The
    journal's file names (relative to the results root) are added to ``written``, if given.
    """
    with open(journal_path, "rb") as handle:
        journal = json.load(handle)
    if written is not None:
        written.extend(journal["files"])
    staging = journal_path[: -len(JOURNAL_SUFFIX)]
    for name in sorted(journal["files"], key=lambda n: (n == MANIFEST_NAME, n)):
        source = os.path.join(staging, name)
        if not os.path.lexists(source):
            continue  # moved before a crash
        target = os.path.join(results_root, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
    os.sync()  # the moves must be on disk before the ledger says the bundle is applied
    # The original tool's archives (seq null) are not part of the outbox's chain: no ledger entry.
    if journal.get("seq") is not None and ledger.find(int(journal["seq"])) is None:
        entry = new_entry(int(journal["seq"]), journal["name"], journal["sha256"], len(journal["files"]))
        record_applied(results_root, ledger, entry)
    shutil.rmtree(staging, ignore_errors=True)
    os.unlink(journal_path)
    return str(journal["name"])


def recover(results_root: str, ledger: Ledger, written: Optional[List[str]] = None) -> List[str]:
    """Given a results root, finish journaled unpacks a crash interrupted and drop unjournaled debris.

    The names of the files moved into place are added to ``written``, if given.
    """
    base = os.path.join(results_root, STAGING_DIR)
    names = sorted(os.listdir(base)) if os.path.isdir(base) else []
    journals = sorted((n for n in names if n.endswith(JOURNAL_SUFFIX)), key=_journal_seq)
    finished = [commit(results_root, os.path.join(base, n), ledger, written) for n in journals]
    for name in os.listdir(base) if os.path.isdir(base) else []:
        log.info("discarding the unfinished staging of %s", shown_name(name))
        discard(os.path.join(base, name))
    for name in finished:
        log.info("finished the interrupted unpack of %s", name)
    with contextlib.suppress(OSError):
        os.rmdir(base)  # only when empty: nothing hidden lingers in the results root
    return finished


def discard(path: str) -> None:
    """Given a staging entry, remove it, folder or file (a stray temporary file must not linger)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _journal_seq(name: str) -> int:
    record = parse_bundle_name(name[: -len(JOURNAL_SUFFIX)])
    return record.seq if record else 0
