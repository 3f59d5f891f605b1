"""``pack``: publish the new or changed result files as one bundle in the outbox (Contract 2).

Publishing order makes every step safe to interrupt: the bundle is written under a temporary
name and renamed, then the index naming it is replaced, then the packer's snapshot is saved.
A crash before the index leaves an orphan file that no reader sees (removed next time); a
crash before the snapshot only makes the next delta repeat some files, which unpack merges
harmlessly. Nothing is ever lost. Writing the bundle is :mod:`remote.bundle`'s job; memory
stays flat whatever the size of the tree. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from remote.bundle import Bundle, PackError, worker_count, write_bundle
from remote.contract import outbox
from remote.contract.files import exclusive_lock, fsync_dir, now_iso, write_bytes_atomic
from remote.contract.names import ACKS_DIR, INDEX_NAME, PACK_LOCK_NAME, PACKER_STATE_NAME, TEMP_PREFIX
from remote.packplan import Filters, Tally, choose_kind, orphan_names, plan_retention
from remote.scan import Skipped
from remote.snapshot import Snapshot, SnapshotError, read_snapshot
from remote.snapshot_v1 import V1_HEAD, convert_v1

log = logging.getLogger(__name__)
__all__ = ["PackError", "PackOptions", "PackReport", "pack"]


@dataclass
class PackOptions:
    """The settings of one pack run (the CLI flags)."""

    results_root: str
    outbox: str
    full: bool = False
    keep: int = 20
    filters: Filters = field(default_factory=Filters)
    jobs: int = 2


@dataclass
class PackReport:
    """What one pack run did."""

    record: Optional[outbox.BundleRecord]
    tally: Tally
    skipped: List[Skipped]
    changing: List[str]
    deleted: List[str]


def load_index(outbox_dir: str) -> List[outbox.BundleRecord]:
    """Given an outbox directory, return its published bundles (none if it has no index yet)."""
    path = os.path.join(outbox_dir, INDEX_NAME)
    try:
        with open(path, "rb") as handle:
            return outbox.parse_index(json.load(handle))
    except FileNotFoundError:
        return []
    except (ValueError, OSError) as exc:
        raise PackError(
            f"outbox index {path} is unusable ({exc}); move the outbox aside and pack --full"
        ) from exc


def load_acks(outbox_dir: str) -> List[outbox.Ack]:
    """Given an outbox directory, return the consumers' acknowledgements (bad ones are logged and ignored)."""
    acks: List[outbox.Ack] = []
    directory = os.path.join(outbox_dir, ACKS_DIR)
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    for name in (n for n in names if n.endswith(".json") and not n.startswith(".")):
        try:
            with open(os.path.join(directory, name), "rb") as handle:
                acks.append(outbox.parse_ack(json.load(handle)))
        except (OSError, ValueError) as exc:
            # An unreadable ack must not let retention delete what that consumer still needs.
            raise PackError(f"ack {name} is unreadable ({exc}); fix or delete it") from exc
    return acks


def load_snapshot(outbox_dir: str) -> Optional[Snapshot]:
    """Given an outbox, return the packer's snapshot, or None (no snapshot yet, or unusable: full next).

    A version 1 snapshot is first rewritten as version 2 under a temporary name (which the
    pack's final clean-up removes); the old file stays until the new snapshot replaces it.
    """
    path = os.path.join(outbox_dir, PACKER_STATE_NAME)
    try:
        with open(path, "rb") as handle:
            old_format = handle.read(len(V1_HEAD)) == V1_HEAD
        if not old_format:
            return read_snapshot(path)
        fd, converted = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=outbox_dir)
        os.close(fd)
        convert_v1(path, converted)
        return read_snapshot(converted)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # SnapshotError and UnicodeDecodeError are ValueErrors
        log.warning("packer snapshot unreadable (%s); the next bundle is full", exc)
        return None


def _remove_converted(outbox_dir: str, snapshot: Optional[Snapshot]) -> None:
    """Given the snapshot a pack read, delete it if it was a temporary conversion of version 1."""
    if snapshot is not None and snapshot.path != os.path.join(outbox_dir, PACKER_STATE_NAME):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(snapshot.path)


def _publish_index(outbox_dir: str, records: List[outbox.BundleRecord]) -> None:
    write_bytes_atomic(
        os.path.join(outbox_dir, INDEX_NAME), outbox.dumps(outbox.index_to_json(records, now_iso()))
    )


def prune(
    outbox_dir: str, records: List[outbox.BundleRecord], keep: int
) -> Tuple[List[outbox.BundleRecord], List[str]]:
    """Given the published bundles, unpublish and delete what retention allows; return what stays."""
    doomed = plan_retention(records, load_acks(outbox_dir), keep)
    kept = [r for r in records if r not in doomed]
    if doomed:
        _publish_index(outbox_dir, kept)  # unpublish first: a reader never sees a missing file
    on_disk = {n for n in os.listdir(outbox_dir) if outbox.parse_bundle_name(n)}
    stale = orphan_names(on_disk, kept)
    stale += [n for n in os.listdir(outbox_dir) if n.startswith(TEMP_PREFIX)]
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(outbox_dir, name))
    return kept, sorted(stale)


def _publish(
    outbox_dir: str, bundle: Bundle, records: List[outbox.BundleRecord], kind: str
) -> outbox.BundleRecord:
    """Given a written bundle, rename it into place, then list it in the index, then save the snapshot."""
    seq = max([r.seq for r in records] + [0]) + 1
    name = outbox.bundle_name(seq, kind)
    try:
        os.replace(bundle.path, os.path.join(outbox_dir, name))
    except BaseException:
        bundle.discard()
        raise
    fsync_dir(outbox_dir)
    record = outbox.BundleRecord(seq, kind, name, bundle.size, bundle.sha256, bundle.members, now_iso())
    _publish_index(outbox_dir, records + [record])
    if bundle.snapshot is not None:  # always, for a bundle worth publishing
        bundle.snapshot.publish(os.path.join(outbox_dir, PACKER_STATE_NAME), seq)
    return record


def _write(options: PackOptions, previous: Optional[Snapshot], resave: bool = False) -> Bundle:
    """Given the options and the snapshot to compare with (None: a full bundle), write the bundle."""
    workers = worker_count(options.jobs)
    full = previous is None
    return write_bundle(
        options.results_root, options.outbox, previous, full, options.filters, workers, resave
    )


def pack(options: PackOptions) -> PackReport:
    """Given the options, publish a bundle of what is new (or everything, for a full bundle)."""
    os.makedirs(options.outbox, exist_ok=True)
    with exclusive_lock(os.path.join(options.outbox, PACK_LOCK_NAME), "pack"):
        records = load_index(options.outbox)
        previous = load_snapshot(options.outbox)
        kind = choose_kind(records, previous is not None, options.full, options.keep)
        converted = previous is not None and previous.path != os.path.join(options.outbox, PACKER_STATE_NAME)
        try:
            bundle = _write(options, None if kind == "full" else previous, resave=converted)
        except SnapshotError as exc:  # a damaged record, found only while walking
            log.warning("packer snapshot unusable (%s); this bundle is full", exc)
            kind = "full"
            bundle = _write(options, None)
        finally:
            _remove_converted(options.outbox, previous)
        for warning in bundle.warnings:
            log.warning("%s", warning)
        record: Optional[outbox.BundleRecord] = None
        if bundle.publishable:
            record = _publish(options.outbox, bundle, records, kind)
            records.append(record)
        else:
            if bundle.snapshot is not None:  # a converted old snapshot: not converted again next time
                last_seq = max([r.seq for r in records] + [0])
                bundle.snapshot.publish(os.path.join(options.outbox, PACKER_STATE_NAME), last_seq)
                bundle.snapshot = None
            bundle.discard()
        records, deleted = prune(options.outbox, records, options.keep)
        return PackReport(record, bundle.tally, bundle.skipped, bundle.changing, deleted)
