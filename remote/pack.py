"""``pack``: publish the new or changed result files as one bundle in the outbox (Contract 2).

Publishing order makes every step safe to interrupt: the bundle is written under a temporary
name and renamed, then the index naming it is replaced, then the packer's snapshot is saved.
A crash before the index leaves an orphan file that no reader sees (removed next time); a
crash before the snapshot only makes the next delta repeat some files, which unpack merges
harmlessly. Nothing is ever lost. Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from remote.contract import outbox
from remote.contract.files import exclusive_lock, fsync_dir, now_iso, write_bytes_atomic, write_json_atomic
from remote.contract.names import (
    ACKS_DIR,
    INDEX_NAME,
    MANIFEST_NAME,
    PACK_LOCK_NAME,
    PACKER_STATE_NAME,
    TEMP_PREFIX,
)
from remote.packplan import FilePlan, Filters, choose_kind, orphan_names, plan_files, plan_retention
from remote.scan import FileStat, Skipped, shown, snapshot

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1


class PackError(RuntimeError):
    """The outbox cannot be used (corrupt index, unwritable directory)."""


@dataclass
class PackOptions:
    """The settings of one pack run (the CLI flags)."""

    results_root: str
    outbox: str
    full: bool = False
    keep: int = 20
    filters: Filters = field(default_factory=Filters)


@dataclass
class PackReport:
    """What one pack run did."""

    record: Optional[outbox.BundleRecord]
    plan: FilePlan
    skipped: List[Skipped]
    changing: List[str]
    deleted: List[str]


class _HashingWriter(io.RawIOBase):
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.target.write(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)
        return len(chunk)


def read_stable(path: str, expected: FileStat) -> Optional[bytes]:
    """Given a file and its scanned stat, return its bytes, or None if it changed while read.

    A file still being written (size or mtime moving between the scan, the open and the
    end of the read) is left for the next pack rather than shipped half-written.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        before = os.fstat(handle.fileno())
        data = handle.read()
        after = os.fstat(handle.fileno())
    seen = {FileStat(s.st_size, s.st_mtime_ns) for s in (before, after)}
    if seen != {expected} or len(data) != expected.size:
        return None
    return data


def _add_member(tar: tarfile.TarFile, name: str, data: bytes, info: FileStat) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mtime = info.mtime_ns // 1_000_000_000
    member.mode = 0o644
    tar.addfile(member, io.BytesIO(data))


def write_bundle(
    options: PackOptions, plan: FilePlan, current: Dict[str, FileStat], seq: int, kind: str
) -> Tuple[outbox.BundleRecord, Dict[str, FileStat], List[str]]:
    """Given the planned files, write and rename the bundle; return its record, what it holds, what moved."""
    packed: Dict[str, FileStat] = {}
    changing: List[str] = []
    fd, tmp_path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=options.outbox)
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = _HashingWriter(raw)
            with tarfile.open(fileobj=writer, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
                for name in plan.include:
                    data = _read_or_none(os.path.join(options.results_root, name), current[name])
                    if data is None:
                        changing.append(name)
                        continue
                    _add_member(tar, name, data, current[name])
                    packed[name] = current[name]
            raw.flush()
            os.fsync(raw.fileno())
            os.fchmod(raw.fileno(), 0o644)  # readable by the SFTP account, which may not be the packer's
        name = outbox.bundle_name(seq, kind)
        os.replace(tmp_path, os.path.join(options.outbox, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    fsync_dir(options.outbox)
    record = outbox.BundleRecord(
        seq, kind, name, writer.size, writer.sha256.hexdigest(), len(packed), now_iso()
    )
    return record, packed, changing


def _read_or_none(path: str, expected: FileStat) -> Optional[bytes]:
    try:
        return read_stable(path, expected)
    except OSError as exc:
        log.warning("not packed this time: %s (%s)", shown(path), exc.strerror or exc)
        return None


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


def _load_snapshot(outbox_dir: str) -> Optional[Dict[str, FileStat]]:
    try:
        with open(os.path.join(outbox_dir, PACKER_STATE_NAME), "rb") as handle:
            document = json.load(handle)
        return {path: FileStat(int(v[0]), int(v[1])) for path, v in document["files"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        log.warning("packer snapshot unreadable (%s); the next bundle is full", exc)
        return None


def _save_snapshot(outbox_dir: str, files: Dict[str, FileStat], last_seq: int) -> None:
    document = {
        "version": SNAPSHOT_VERSION,
        "last_seq": last_seq,
        "files": {path: [s.size, s.mtime_ns] for path, s in sorted(files.items())},
    }
    write_json_atomic(os.path.join(outbox_dir, PACKER_STATE_NAME), document)


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


def pack(options: PackOptions) -> PackReport:
    """Given the options, publish a bundle of what is new (or everything, for a full bundle)."""
    os.makedirs(options.outbox, exist_ok=True)
    with exclusive_lock(os.path.join(options.outbox, PACK_LOCK_NAME), "pack"):
        records = load_index(options.outbox)
        previous = _load_snapshot(options.outbox)
        kind = choose_kind(records, previous is not None, options.full, options.keep)
        current, skipped = snapshot(options.results_root, always=(MANIFEST_NAME,))
        plan = plan_files(current, previous or {}, kind == "full", options.filters)
        record: Optional[outbox.BundleRecord] = None
        changing: List[str] = []
        if kind == "full" or plan.include:
            seq = max([r.seq for r in records] + [0]) + 1
            record, packed, changing = write_bundle(options, plan, current, seq, kind)
            records.append(record)
            _publish_index(options.outbox, records)
            base = {} if kind == "full" else dict(previous or {})
            base.update(packed)
            _save_snapshot(options.outbox, base, seq)
        records, deleted = prune(options.outbox, records, options.keep)
        return PackReport(record, plan, skipped, changing, deleted)
