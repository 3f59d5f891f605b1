"""Write one bundle and the snapshot that goes with it, without publishing either.

The pack's own process visits the results root (the manifest first, then the root's files);
each top-level folder is a unit (:mod:`remote.packunit`), packed in batches here or, for trees
with many of them, by a small pool of worker processes. Results are taken in order, so the
bundle's members and the snapshot's records come out in the same order whatever the number of
processes. Memory holds a few batches' results at a time, never a list of the tree's files.
Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import logging
import multiprocessing
import os
import signal
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Deque, Iterator, List, Optional, Sequence, Set, Tuple

from remote.contract.names import TEMP_PREFIX
from remote.packplan import STAMP_MARGIN_NS, Filters, Tally
from remote.packunit import Walker, pack_units
from remote.scan import Skipped
from remote.snapshot import RecordCursor, Snapshot, SnapshotWriter
from remote.tarstream import DELTA_COMPRESS_LEVEL, FULL_COMPRESS_LEVEL, GzipAssembler, PieceWriter
from remote.units import BatchResult, UnitResult, UnitTask, release_spools, spools

log = logging.getLogger(__name__)

# Below this many top-level folders, starting worker processes costs more than it saves.
POOL_MIN_UNITS = 32
# Batches handed out ahead of the one being stitched, per worker: bounds memory, keeps workers busy.
WINDOW_PER_WORKER = 3
UNITS_PER_BATCH = 32


class PackError(RuntimeError):
    """The outbox cannot be used (corrupt index, unwritable directory), or a worker died."""


@dataclass
class Bundle:
    """A written but unpublished bundle, the snapshot that describes it, and what to report."""

    path: str
    full: bool
    snapshot: Optional[SnapshotWriter] = None  # written only for a bundle worth publishing
    size: int = 0
    sha256: str = ""
    manifest_changed: bool = False
    manifest_packed: bool = False
    tally: Tally = field(default_factory=Tally)
    changing: List[str] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def publishable(self) -> bool:
        """Tell whether the bundle is worth publishing: full, or anything new (the manifest too)."""
        return self.full or self.tally.included > 0 or self.manifest_changed

    @property
    def members(self) -> int:
        """Return how many files the bundle holds (the manifest included)."""
        return self.tally.included + int(self.manifest_packed)

    def take(self, result: UnitResult) -> None:
        """Given a unit's result, account for what it packed and what it reports."""
        self.tally.add(result.tally)
        self.changing += result.changing
        self.skipped += result.skipped
        self.warnings += result.warnings

    def discard(self) -> None:
        """Delete the unpublished bundle and snapshot."""
        if self.snapshot is not None:
            self.snapshot.discard()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


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


def worker_count(asked: int) -> int:
    """Given the workers asked for, return how many this machine lets the process use."""
    affinity = getattr(os, "sched_getaffinity", None)
    available = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, min(asked, available))


def run_batches(tasks: Sequence[UnitTask], workers: int) -> Iterator[BatchResult]:
    """Given the units' tasks, pack them in batches and yield the results in order, from worker
    processes when it pays (handing a unit over costs about as much as packing an unchanged one,
    hence batches).
    """
    batches = [tasks[start : start + UNITS_PER_BATCH] for start in range(0, len(tasks), UNITS_PER_BATCH)]
    pool = _pool(workers) if len(tasks) >= POOL_MIN_UNITS else None
    if pool is None:
        yield from (pack_units(batch) for batch in batches)
        return
    with pool:
        window: Deque[Future] = deque()
        try:
            for batch in batches:
                window.append(pool.submit(pack_units, batch))
                if len(window) >= workers * WINDOW_PER_WORKER:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        except BrokenProcessPool as exc:
            raise PackError(f"a pack worker process died ({exc}); run pack again") from exc


def _pool(workers: int) -> Optional[ProcessPoolExecutor]:
    """Given the workers allowed, start them, or return None to pack in this process.

    Workers are started fresh (``spawn``): they inherit no open file, so not the outbox lock,
    and they ignore Ctrl-C, which the pack's own process handles. Some machines cannot run a
    process pool (no usable ``/dev/shm`` for its semaphores): then the pack runs in this process.
    """
    if workers < 2:
        return None
    try:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_interrupts)
        pool.submit(int).result()  # starts the workers: a failure shows here, not mid-bundle
        return pool
    except (OSError, ImportError, NotImplementedError, BrokenProcessPool) as exc:
        log.warning("cannot start worker processes (%s); packing in one process", exc)
        return None


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def write_bundle(
    root: str,
    outbox_dir: str,
    old: Optional[Snapshot],
    full: bool,
    filters: Filters,
    workers: int,
    resave: bool = False,
) -> Bundle:
    """Given the tree, the outbox and the previous snapshot (None: full), write bundle and snapshot.

    Both stay under temporary names in the outbox for the caller to publish or discard; the
    snapshot is written only when the bundle is worth publishing, or when asked to ``resave``
    it (an old-format snapshot, converted at every pack until it is replaced).
    """
    trust_before_ns = time.time_ns() - STAMP_MARGIN_NS
    level = FULL_COMPRESS_LEVEL if full else DELTA_COMPRESS_LEVEL
    base = UnitTask(
        root, "", outbox_dir, full, filters, trust_before_ns, old.path if old else "", level=level
    )
    fd, path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=outbox_dir)
    bundle = Bundle(path, full)
    segments: List[Tuple[str, str, int, int]] = []  # per unit: where its new records are
    spool_paths: Set[str] = set()
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = _HashingWriter(raw)
            _assemble(bundle, GzipAssembler(writer, level), base, old, workers, segments, spool_paths)
            raw.flush()
            os.fsync(raw.fileno())
            os.fchmod(raw.fileno(), 0o644)  # readable by the SFTP account, which may not be the packer's
        bundle.size, bundle.sha256 = writer.size, writer.sha256.hexdigest()
        if bundle.publishable or resave:
            bundle.snapshot = _write_snapshot(outbox_dir, segments)
    except BaseException:
        bundle.discard()
        raise
    finally:
        release_spools()
        for spool in spool_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spool)
    return bundle


def _write_snapshot(outbox_dir: str, segments: List[Tuple[str, str, int, int]]) -> SnapshotWriter:
    """Given where each unit's records are (in spools or in the old snapshot), write the new one."""
    snapshot_fd, snapshot_path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=outbox_dir)
    os.close(snapshot_fd)
    snapshot = SnapshotWriter(snapshot_path)
    try:
        for unit, source, offset, size in segments:
            snapshot.copy(unit, source, offset, size)
    except BaseException:
        snapshot.discard()
        raise
    return snapshot


def _assemble(
    bundle: Bundle,
    gzip: GzipAssembler,
    base: UnitTask,
    old: Optional[Snapshot],
    workers: int,
    segments: List[Tuple[str, str, int, int]],
    spool_paths: Set[str],
) -> None:
    """Given an open bundle, stitch the root's piece and every unit's piece in order; note the records."""
    piece = PieceWriter(spools(base.spool_dir)[0], base.level)
    walker = Walker(base, piece)
    old_root = RecordCursor(old.lines("")).take("") if old else None
    units, bundle.manifest_changed = walker.visit_root(old_root)
    bundle.manifest_packed = walker.manifest_packed
    units_at = old.units if old else {}
    tasks = [replace(base, unit=unit, records_at=units_at.get(unit, (0, 0))) for unit in units]
    root = BatchResult(piece.finish(), [walker.finish()], tuple(s.path for s in spools(base.spool_dir)))
    for batch in itertools.chain([root], run_batches(tasks, workers)):
        spool_paths.update(batch.spool_paths)
        gzip.append(batch.piece)
        for result in batch.units:
            if result.records is None:  # not one record moved: keep the old snapshot's (if any)
                if old is not None and result.unit in old.units:
                    segments.append((result.unit, old.path, *old.units[result.unit]))
            else:
                segments.append((result.unit, *result.records))
            bundle.take(result)
    gzip.finish()
