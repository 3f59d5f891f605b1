r"""The packer's snapshot (``outbox/.packer-state.json``): what the bundles so far hold, per directory.

Version 2 is UTF-8 text written and read one directory at a time, so memory never grows with
the tree (version 1, one JSON object of every file, is still read: :mod:`remote.snapshot_v1`)::

    {"format": "remote-pack-snapshot", "version": 2}
    <dir>\t<stamp>[\t<name>\t<size>\t<mtime_ns>]...      one record per directory
    #index\t{"last_seq": 7, "units": [["", offset, size], ["<top-level folder>", offset, size], ...]}
    #end\t<offset of the #index line>

A record lists every regular file of the directory with the size and mtime it had when last
packed (``f`` and an empty mtime: not packed yet, e.g. held back by a filter) and every
subfolder (``d``). ``<stamp>`` says whether the listing can be reused (see
:func:`remote.packplan.directory_stamp`). Records come in walk order (depth first, names
sorted), which is the order of :func:`directory_key`; the index says where the records of the
root (``""``) and of each top-level folder are, so each can be read on its own. In names, tab,
newline and backslash are escaped as ``\t``, ``\n`` and ``\\``. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from remote.contract.files import copy_range, fsync_dir
from remote.scan import FileStat

SNAPSHOT_FORMAT = "remote-pack-snapshot"
SNAPSHOT_VERSION = 2
NOT_PACKED = "f"
SUBDIR = "d"
_INDEX_TAG = "#index\t"
_END_TAG = "#end\t"
_ESCAPES = {"t": "\t", "n": "\n"}
_ESCAPED = re.compile(r"\\(.)")
_READ_CHUNK = 1 << 20


class SnapshotError(ValueError):
    """The snapshot file cannot be used; the next bundle is a full one."""


def escape(name: str) -> str:
    """Given a name or path, return it with no tab or newline (the record separators)."""
    if "\\" in name or "\t" in name or "\n" in name:
        return name.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return name


def unescape(text: str) -> str:
    """Given an escaped name or path, return the original."""
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda match: _ESCAPES.get(match.group(1), match.group(1)), text)


def directory_key(relative: str) -> str:
    """Given a directory's path relative to the root, return its sort key in walk order.

    A separator that sorts before every name character makes plain string order the order of
    a depth-first walk with sorted names (``a`` and all below it before ``a-b``).
    """
    return relative.replace("/", "\0")


class Record(NamedTuple):
    """One directory as last recorded: files (None: not packed yet) and subfolders, in name order."""

    relative: str
    stamp: str
    files: Dict[str, Optional[FileStat]]
    subdirs: List[str]


def check_fields(fields: List[str]) -> List[str]:
    """Given one record line split at its tabs, return it if it has the shape of a record."""
    if len(fields) < 2 or len(fields) % 3 != 2:
        raise SnapshotError(f"snapshot record of {unescape(fields[0])!r} has {len(fields)} fields")
    return fields


def parse_record(fields: List[str]) -> Record:
    """Given one record line split at its tabs, return the record."""
    files: Dict[str, Optional[FileStat]] = {}
    subdirs: List[str] = []
    for index in range(2, len(check_fields(fields)), 3):
        name, size, mtime = unescape(fields[index]), fields[index + 1], fields[index + 2]
        if size == SUBDIR:
            subdirs.append(name)
        elif size == NOT_PACKED:
            files[name] = None
        elif size.isdigit() and mtime.lstrip("-").isdigit():
            files[name] = FileStat(int(size), int(mtime))
        else:
            raise SnapshotError(f"snapshot record of {unescape(fields[0])!r} has a bad entry {name!r}")
    return Record(unescape(fields[0]), fields[1], files, subdirs)


def format_record(
    relative: str, stamp: str, files: Sequence[Tuple[str, Optional[FileStat]]], subdirs: Sequence[str]
) -> str:
    """Given a directory's path, stamp, files (with the stat last packed) and subfolders, return its line."""
    fields = [escape(relative), stamp]
    for name, info in files:
        if info is None:
            fields += (escape(name), NOT_PACKED, "")
        else:
            fields += (escape(name), str(info.size), str(info.mtime_ns))
    for name in subdirs:
        fields += (escape(name), SUBDIR, "")
    return "\t".join(fields)


class RecordCursor:
    """Given records in walk order, hand out the one of each directory the walk reaches (merge join)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._line: Optional[str] = next(lines, None)
        self.passed = 0  # records of directories the walk did not reach (gone since)

    @property
    def all_taken(self) -> bool:
        """Tell whether every record was handed out (none left behind, none passed over)."""
        return self._line is None and self.passed == 0

    def peek(self) -> Optional[str]:
        """Return the next record line without taking it (None at the end)."""
        return self._line

    def advance(self) -> None:
        """Take the next record line (after :meth:`peek` showed it is the one wanted)."""
        self._line = next(self._lines, None)

    def _key(self) -> Optional[str]:
        if self._line is None:
            return None
        return directory_key(unescape(self._line.split("\t", 1)[0]))

    def take(self, relative: str) -> Optional[str]:
        """Given the next directory of the walk, return its record line, skipping vanished ones'."""
        line, size = self._line, len(relative)
        if line is None:
            return None
        if line.startswith(relative) and line[size : size + 1] == "\t" and escape(relative) == relative:
            self._line = next(self._lines, None)  # the common case: the record is the very next line
            return line
        key = directory_key(relative)
        while self._line is not None and str(self._key()) < key:
            self._line = next(self._lines, None)
            self.passed += 1
        if self._line is None or self._key() != key:
            return None
        line, self._line = self._line, next(self._lines, None)
        return line


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"snapshot is not UTF-8 ({exc})") from exc


def read_lines(path: str, offset: int, size: int) -> Iterator[str]:
    """Given a file and a byte range of whole lines, yield them one by one (without newlines)."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        remaining, tail = size, b""
        while remaining > 0:
            block = handle.read(min(remaining, _READ_CHUNK))
            if not block:
                raise SnapshotError(f"snapshot {path} ends early")
            remaining -= len(block)
            whole, _, tail = (tail + block).rpartition(b"\n")  # decode whole lines, in one go
            if whole:
                yield from _decoded(whole).split("\n")
        if tail:
            yield _decoded(tail)


@dataclass
class Snapshot:
    """A readable snapshot: where the records of the root and of each top-level folder are."""

    path: str
    last_seq: int
    units: Dict[str, Tuple[int, int]] = field(default_factory=dict)

    def lines(self, unit: str) -> Iterator[str]:
        """Given a top-level folder (``""``: the root), yield its records' lines in walk order."""
        offset, size = self.units.get(unit, (0, 0))
        return read_lines(self.path, offset, size)


def _read_header(handle: BinaryIO) -> None:
    first = handle.readline(4096)
    try:
        header = json.loads(first.decode("utf-8"))
    except ValueError as exc:
        raise SnapshotError(f"snapshot header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError("not a snapshot file")
    if header.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {header.get('version')!r} is not {SNAPSHOT_VERSION}")


def read_snapshot(path: str) -> Snapshot:
    """Given a version 2 snapshot file, return its header and index (records stay on disk)."""
    with open(path, "rb") as handle:
        _read_header(handle)
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - 64))
        end = handle.read().decode("utf-8").rstrip("\n").rsplit("\n", 1)[-1]
        if not end.startswith(_END_TAG):
            raise SnapshotError("snapshot has no end line (cut short?)")
        handle.seek(int(end[len(_END_TAG) :]))
        index_line = handle.readline().decode("utf-8")
    if not index_line.startswith(_INDEX_TAG):
        raise SnapshotError("snapshot index is missing")
    try:
        index = json.loads(index_line[len(_INDEX_TAG) :])
        units = {str(unit): (int(offset), int(size)) for unit, offset, size in index["units"]}
        return Snapshot(path, int(index["last_seq"]), units)
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"snapshot index is malformed ({exc})") from exc


class SnapshotWriter:
    """Given a temporary path, write a version 2 snapshot unit by unit; :meth:`publish` renames it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._out = open(path, "wb")  # noqa: SIM115 - closed by publish() or discard()
        header = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION}
        self._out.write(json.dumps(header).encode("utf-8") + b"\n")
        self._index: List[Tuple[str, int, int]] = []

    def add(self, unit: str, data: bytes) -> None:
        """Given a top-level folder (``""``: the root) and its records as bytes, append them."""
        self._index.append((unit, self._out.tell(), len(data)))
        self._out.write(data)

    def copy(self, unit: str, source: str, offset: int, size: int) -> None:
        """Given a top-level folder and where another file holds its records, append them."""
        self._index.append((unit, self._out.tell(), size))
        copy_range(source, offset, size, self._out.write, _READ_CHUNK)

    def publish(self, target: str, last_seq: int) -> None:
        """Given the newest published bundle's seq, write the index, flush and rename to ``target``."""
        index_at = self._out.tell()
        index = {"last_seq": last_seq, "units": self._index}
        self._out.write((_INDEX_TAG + json.dumps(index, ensure_ascii=False) + "\n").encode("utf-8"))
        self._out.write(f"{_END_TAG}{index_at}\n".encode())
        self._out.flush()
        os.fsync(self._out.fileno())
        os.fchmod(self._out.fileno(), 0o644)
        self._out.close()
        os.replace(self.path, target)
        fsync_dir(os.path.dirname(os.path.abspath(target)))

    def discard(self) -> None:
        """Close and delete the unfinished file."""
        self._out.close()
        os.unlink(self.path)
