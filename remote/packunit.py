"""Pack one unit (a top-level folder): walk it, compare with the snapshot, read and compress what changed.

A unit's directories are visited depth first with sorted names, which is also the order of its
snapshot records, so each directory meets its record in passing
(:class:`~remote.snapshot.RecordCursor`) and memory holds one directory at a time. A directory
whose listing still holds (:func:`~remote.packplan.listing_reusable`) is not listed again: its
files are stat'ed by the names the record gives, and when none moved its record is kept as it
is. What a unit produces goes to this process's spools (:mod:`remote.units`). Standard library only.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Iterator, List, Optional, Sequence, Tuple

from remote.contract.names import MANIFEST_NAME
from remote.contract.tree import printable
from remote.packplan import UNTRUSTED, Tally, directory_stamp, listing_reusable, plan_directory
from remote.scan import FileStat, Listing, Skipped, list_directory, stat_known
from remote.snapshot import (
    SUBDIR,
    Record,
    RecordCursor,
    check_fields,
    format_record,
    parse_record,
    read_lines,
    unescape,
)
from remote.tarstream import PieceWriter
from remote.units import BatchResult, RecordWriter, UnitResult, UnitTask, spools

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)


def read_stable(path: str, expected: FileStat) -> Optional[bytes]:
    """Given a file and its scanned stat, return its bytes, or None if it changed while read.

    A file still being written (its size or mtime moving between the scan, the open and the end
    of the read) is left for the next pack rather than shipped half-written. Any write after the
    scan moves the mtime, so the stat taken after the last byte was read covers the open too.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        chunks, total = [], 0
        while total < expected.size:  # asking one byte more than expected shows a file that grew
            block = os.read(fd, expected.size + 1 - total)
            if not block:
                break
            chunks.append(block)
            total += len(block)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if total != expected.size or after.st_size != total or after.st_mtime_ns != expected.mtime_ns:
        return None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Walker:
    """Given one pack's settings and this process's spools, pack directories one at a time."""

    def __init__(self, task: UnitTask, piece: PieceWriter) -> None:
        self.task = task
        self.piece = piece
        self.records = RecordWriter(spools(task.spool_dir)[1])
        self.result = UnitResult(task.unit)
        self.manifest_packed = False
        self._held = Tally()  # reused by recheck(), which runs once per unchanged directory

    def walk(self, cursor: RecordCursor) -> UnitResult:
        """Given the unit's previous records, visit every directory below it; return what it made.

        Depth first, names sorted. The stack holds runs of siblings still to visit, so that the
        unchanged leaves among them (most checkpoint folders, most of the time) go through
        :meth:`keep_unchanged_leaves`, and the others through :meth:`visit`.
        """
        unit = self.task.unit
        stack = [(unit, self.visit(unit, cursor.take(unit)), 0)]
        while stack:
            parent, names, start = stack.pop()
            index = self.keep_unchanged_leaves(parent, names, start, cursor)
            if index < len(names):
                child = f"{parent}/{names[index]}"
                stack.append((parent, names, index + 1))
                subdirs = self.visit(child, cursor.take(child))
                if subdirs:
                    stack.append((child, subdirs, 0))
        return self.finish(cursor.all_taken)

    def keep_unchanged_leaves(self, parent: str, names: List[str], start: int, cursor: RecordCursor) -> int:
        """Given sibling folders from ``start`` on, keep the records of those that are unchanged and
        have no subfolder, in a tight loop; return the index of the first one that needs :meth:`visit`.
        """
        root = self.task.results_root
        for index in range(start, len(names)):
            child = f"{parent}/{names[index]}"
            line = cursor.peek()
            if line is None or not line.startswith(child) or line[len(child) : len(child) + 1] != "\t":
                return index  # no record, or one to look for (the cursor knows how)
            fields = line.split("\t")
            if len(fields) % 3 != 2 or SUBDIR in fields[3::3]:
                return index
            try:
                info = os.lstat(f"{root}/{child}")
            except OSError:
                return index
            if not listing_reusable(fields[1], info.st_ino, info.st_ctime_ns):
                return index
            if self.recheck(f"{root}/{child}", fields) is None:
                return index
            self.records.keep(line)
            cursor.advance()
        return len(names)

    def finish(self, old_records_all_taken: bool = False) -> UnitResult:
        """Close the unit's records; return the result."""
        self.result.records = self.records.finish(old_records_all_taken)
        return self.result

    def visit(self, relative: str, line: Optional[str]) -> List[str]:
        """Given a directory and its previous record line, pack what changed in it; return its subfolders."""
        path = f"{self.task.results_root}/{relative}"
        try:
            info = os.lstat(path)  # before listing: a change after this moves the ctime past the stamp
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # gone since its parent was read: nothing to pack
                self.result.skipped.append(Skipped(relative, f"cannot stat ({exc.strerror})"))
            return []
        if not stat.S_ISDIR(info.st_mode):  # replaced since its parent was read: listed next time
            return []
        fields = line.split("\t") if line is not None else []
        if fields and len(fields) % 3 != 2:
            check_fields(fields)  # raises: the snapshot is damaged
        reusable = bool(fields) and listing_reusable(fields[1], info.st_ino, info.st_ctime_ns)
        if reusable:
            subdirs = self.recheck(path, fields)
            if subdirs is not None:
                self.records.keep(str(line))  # nothing moved: the record stays as it was
                return subdirs
        old = parse_record(fields) if fields else None
        if old is not None and reusable:
            listing = stat_known(path, old.files)
            listing.subdirs, stamp = old.subdirs, old.stamp
        else:
            listing = list_directory(path, relative)
            stamp = directory_stamp(info.st_ino, info.st_ctime_ns, self.task.trust_before_ns)
        self.result.skipped.extend(listing.skipped)
        if listing.readable:
            self.pack_directory(relative, stamp if listing.clean else UNTRUSTED, listing, old)
        return listing.subdirs

    def recheck(self, path: str, fields: List[str]) -> Optional[List[str]]:
        """Given an unchanged directory's record fields, stat its files; return its subfolders if none
        needs packing, else None (then the directory takes the general path).

        The common case of an idle or delta pack, so it compares the record's text as it is.
        """
        held, subdirs, unchanged = self._held, [], 0
        held.excluded = held.too_large = 0
        filters = self.task.filters
        for index in range(2, len(fields), 3):
            name, size = fields[index], fields[index + 1]
            if "\\" in name:
                name = unescape(name)
            if size == SUBDIR:
                subdirs.append(name)
                continue
            try:
                info = os.lstat(f"{path}/{name}")
            except OSError:
                return None
            if not stat.S_ISREG(info.st_mode):
                return None
            if filters.count_held(name, info.st_size, held):
                continue
            if size != str(info.st_size) or fields[index + 2] != str(info.st_mtime_ns):
                return None  # changed, or never packed (size "f")
            unchanged += 1
        tally = self.result.tally  # counted only now: a directory that changed is counted once, later
        tally.unchanged += unchanged
        tally.excluded += held.excluded
        tally.too_large += held.too_large
        return subdirs

    def pack_directory(
        self,
        relative: str,
        stamp: str,
        listing: Listing,
        old: Optional[Record],
        leading: Sequence[Tuple[str, Optional[FileStat]]] = (),
    ) -> None:
        """Given a directory's files, pack those new or changed and write its record."""
        previous = {} if old is None or self.task.full else old.files
        include = plan_directory(
            listing.files, previous, self.task.full, self.task.filters, self.result.tally
        )
        recorded = {name: previous.get(name) for name, _ in listing.files}
        for name, info in include:
            if self.add_file(f"{relative}/{name}" if relative else name, info):
                recorded[name] = info
                self.result.tally.included += 1
        files = list(leading) + list(recorded.items())
        self.records.append(format_record(relative, stamp, files, listing.subdirs))

    def add_file(self, member: str, info: FileStat) -> bool:
        """Given a file and its scanned stat, add it to the piece; False if it moved or is unreadable."""
        try:
            data = read_stable(f"{self.task.results_root}/{member}", info)
        except OSError as exc:
            self.result.warnings.append(f"not packed this time: {printable(member)} ({exc.strerror or exc})")
            data = None
        if data is None:
            self.result.changing.append(member)
            return False
        self.piece.add_member(member, data, info.mtime_ns // 1_000_000_000)
        return True

    def visit_root(self, line: Optional[str]) -> Tuple[List[str], bool]:
        """Given the root's previous record line, pack the manifest first (every bundle holds it),
        then the root's own files; return the top-level folders (the units) and whether the
        manifest changed. The root is always listed: it is small, and the manifest's rename
        changes it anyway.
        """
        listing = list_directory(self.task.results_root, "")
        if not listing.readable:
            raise OSError(f"cannot list results root {self.task.results_root}: {listing.skipped[0].reason}")
        self.result.skipped.extend(listing.skipped)
        old = parse_record(line.split("\t")) if line is not None and not self.task.full else None
        previous = {} if old is None else old.files
        leading: List[Tuple[str, Optional[FileStat]]] = []
        changed = False
        try:
            found = os.lstat(f"{self.task.results_root}/{MANIFEST_NAME}")
        except FileNotFoundError:
            found = None
        if found is not None and stat.S_ISREG(found.st_mode):
            info = FileStat(found.st_size, found.st_mtime_ns)
            self.manifest_packed = self.add_file(MANIFEST_NAME, info)
            changed = self.manifest_packed and previous.get(MANIFEST_NAME) != info
            leading.append((MANIFEST_NAME, info if self.manifest_packed else previous.get(MANIFEST_NAME)))
        self.pack_directory("", UNTRUSTED, listing, old, leading)
        return listing.subdirs, changed


def pack_unit(task: UnitTask, piece: PieceWriter) -> UnitResult:
    """Given a unit and the piece its batch is compressed into, pack what changed in the unit."""
    lines: Iterator[str] = iter(())
    if task.snapshot_path:
        lines = read_lines(task.snapshot_path, *task.records_at)
    return Walker(task, piece).walk(RecordCursor(lines))


def pack_units(tasks: Sequence[UnitTask]) -> BatchResult:
    """Given consecutive units, pack them into one piece (in a worker process or the pack's own).

    One piece per batch, not per unit: each piece starts a fresh compressor, which costs a few
    hundred bytes of a small delta.
    """
    tar_spool, record_spool = spools(tasks[0].spool_dir)
    piece = PieceWriter(tar_spool, tasks[0].level)
    results = [pack_unit(task, piece) for task in tasks]
    return BatchResult(piece.finish(), results, (tar_spool.path, record_spool.path))
