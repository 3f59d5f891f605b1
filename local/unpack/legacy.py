"""The original tool's transfer archives, applied with the same safety checks as bundles.

``sync_results_from_remote.sh pack`` made ``results_sync_latest.tar.gz`` (any name ending in
``.tar.gz``) holding ``<path>/results/...`` relative to the user's home on the cluster (usually
``GenRec/results/``, always with ``.wandb_eval_manifest.json``), split into ``<archive>.part.000``,
``.001``, ... when larger than its chunk size. A user switching over can start from the last one they
carried across: ``python -m local unpack --results-root results results_sync_latest.tar.gz`` (or any
one of its parts).

The parts are joined into one file in the staging area, every member is validated as a bundle's
are (before anything is written), the results folder inside (the one holding the manifest) becomes
the results root, and the files are staged, journaled and moved into place like a bundle's. Unlike
the original, nothing in the results root is deleted (files merge), and no ledger entry is made:
the archive is not part of the outbox's chain, so a later pull still applies the newest full bundle.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
from typing import List, Sequence, Tuple

from local.errors import UserError
from local.unpack.ledger import load_ledger
from local.unpack.staging import commit, discard, recover, stage
from local.unpack.tarsafety import BundleContents, Limits, UnsafeBundleError, validate_bundle
from remote.contract.files import exclusive_lock, sha256_file, write_json_atomic
from remote.contract.names import (
    JOURNAL_SUFFIX,
    MANIFEST_NAME,
    STAGING_DIR,
    UNPACK_LOCK_NAME,
    UNPACK_RESERVED,
)
from remote.contract.tree import shown_name

log = logging.getLogger(__name__)

PART_RE = re.compile(r"^(?P<archive>.+\.tar\.gz)\.part\.(?P<number>\d{3})$")
CHUNK = 1 << 20


def is_original_archive(path: str) -> bool:
    """Given a path, tell whether it names one of the original tool's archives or parts."""
    name = os.path.basename(path)
    return bool(PART_RE.match(name)) or (name.endswith(".tar.gz") and not name.startswith("bundle-"))


def archive_parts(path: str) -> Tuple[str, List[str]]:
    """Given an archive or any one of its parts, return (archive name, its files in order).

    Parts must run from .part.000 without a gap: a missing part would make a truncated archive.
    """
    match = PART_RE.match(os.path.basename(path))
    if not match:
        if not os.path.isfile(path):
            raise UserError(f"archive {path} does not exist", "check the path")
        return os.path.basename(path), [path]
    prefix = os.path.join(os.path.dirname(path), match.group("archive") + ".part.")
    parts = sorted(glob.glob(glob.escape(prefix) + "[0-9][0-9][0-9]"))
    numbers = [int(part[-3:]) for part in parts]
    if numbers != list(range(len(parts))):
        raise UserError(
            f"the parts of {match.group('archive')} do not run from .part.000 without a gap "
            f"(found {', '.join(os.path.basename(p) for p in parts)})",
            "copy every part of the archive into one folder",
        )
    return match.group("archive"), parts


def _join(parts: Sequence[str], target: str) -> None:
    """Given the parts in order, write their concatenation to ``target`` (what `cat` did)."""
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out, CHUNK)


def results_folder(contents: BundleContents, archive: str) -> str:
    """Given the validated members, return the folder holding the manifest (``GenRec/results/``)."""
    manifests = [name for name in contents.files if name.rsplit("/", 1)[-1] == MANIFEST_NAME]
    if len(manifests) != 1:
        raise UserError(
            f"archive {archive} holds {len(manifests)} manifests ({MANIFEST_NAME}), not one",
            "pass an archive made by sync_results_from_remote.sh pack, or a bundle",
        )
    return manifests[0][: -len(MANIFEST_NAME)]


def strip_folder(contents: BundleContents, folder: str, archive: str) -> BundleContents:
    """Given members under ``folder``, return them relative to it; refuse any outside or reserved."""
    stripped = BundleContents(total_bytes=contents.total_bytes, skipped=list(contents.skipped))
    for name, size in contents.files.items():
        inner = name[len(folder) :] if name.startswith(folder) else ""
        if not inner or inner.split("/", 1)[0] in UNPACK_RESERVED:
            raise UserError(
                f"archive {archive} refused, nothing written: member {shown_name(name)} is outside "
                f"its results folder {folder!r} or would overwrite the unpacker's bookkeeping",
                "pass an archive made by sync_results_from_remote.sh pack, or a bundle",
            )
        stripped.files[inner] = size
    return stripped


def unpack_original(results_root: str, path: str, limits: Limits) -> Tuple[str, int, List[str]]:
    """Given an original archive (or any one of its parts), apply it; return (name, files, skipped)."""
    name, parts = archive_parts(path)
    os.makedirs(results_root, exist_ok=True)
    with exclusive_lock(os.path.join(results_root, UNPACK_LOCK_NAME), "unpack"):
        ledger = load_ledger(results_root)
        recover(results_root, ledger)
        base = os.path.join(results_root, STAGING_DIR)
        os.makedirs(base, exist_ok=True)
        joined = os.path.join(base, name + ".joined") if len(parts) > 1 else parts[0]
        try:
            if len(parts) > 1:
                _join(parts, joined)
            staging, stripped = _stage(results_root, joined, name, limits)
            commit(results_root, staging + JOURNAL_SUFFIX, ledger)
        finally:
            if len(parts) > 1:
                discard(joined)
            with contextlib.suppress(OSError):
                os.rmdir(base)  # only when empty: nothing hidden lingers in the results root
    log.info("applied the original tool's archive %s: %d files", name, len(stripped.files))
    return name, len(stripped.files), stripped.skipped


def _stage(results_root: str, archive: str, name: str, limits: Limits) -> Tuple[str, BundleContents]:
    """Given the joined archive, validate it, extract its results folder to staging, write the journal."""
    from local.unpack.apply import check_targets  # apply's rule for what the results root holds

    try:
        contents = validate_bundle(archive, limits)
    except UnsafeBundleError as exc:
        raise UserError(
            f"archive {name} refused, nothing written: {exc}", "check the archive's source"
        ) from exc
    folder = results_folder(contents, name)
    stripped = strip_folder(contents, folder, name)
    check_targets(results_root, stripped)
    base = os.path.join(results_root, STAGING_DIR)
    raw, staging = os.path.join(base, name + ".raw"), os.path.join(base, name)
    try:
        stage(archive, contents, raw)
        discard(staging)
        os.replace(os.path.join(raw, folder.rstrip("/")) if folder else raw, staging)
    except UnsafeBundleError as exc:
        raise UserError(
            f"archive {name} refused, nothing written: {exc}", "check the archive's source"
        ) from exc
    finally:
        discard(raw)
    os.sync()  # staged bytes must be durable before the journal lets a later run commit them
    journal = {"seq": None, "name": name, "sha256": sha256_file(archive), "files": sorted(stripped.files)}
    write_json_atomic(staging + JOURNAL_SUFFIX, journal)
    return staging, stripped
