"""Read the packer's version 1 snapshot (before the per-directory format) as a version 2 one.

Version 1 was one indented JSON object, ``{"version": 1, "last_seq": N, "files": {path: [size,
mtime_ns], ...}}`` with paths sorted, written by ``json.dumps(indent=2)``. It is read line by
line, never as one document, and turned into version 2 records (stamp ``-``: every directory is
listed again once) in a temporary file; the first ``pack`` after the upgrade then continues the
delta chain where the old packer left it. Memory: one short string per directory, not per file.
Standard library only.
"""

from __future__ import annotations

import json
from typing import Dict, Iterator, List, Tuple

from remote.packplan import UNTRUSTED
from remote.snapshot import SnapshotError, SnapshotWriter, directory_key, escape

V1_HEAD = b"{\n"


def _entries(path: str) -> Iterator[Tuple[str, int, int]]:
    """Given a version 1 file, yield ``(path, size, mtime_ns)`` for each file it lists."""
    with open(path, "r", encoding="utf-8") as handle:
        lines = (line.strip() for line in handle)
        for line in lines:
            if line == '"version": 1,' or line.startswith(('"last_seq"', '"files"', "{", "}")):
                continue
            if not (line.startswith('"') and line.endswith('": [')):
                raise SnapshotError(f"version 1 snapshot: unexpected line {line[:60]!r}")
            name = json.loads(line[:-3])
            size, mtime = next(lines).rstrip(","), next(lines)
            if next(lines) not in ("]", "],"):
                raise SnapshotError(f"version 1 snapshot: entry {name!r} is malformed")
            yield name, int(size), int(mtime)


def last_seq_v1(path: str) -> int:
    """Given a version 1 file, return its ``last_seq`` (it comes before the files)."""
    with open(path, "r", encoding="utf-8") as handle:
        for line in handle:
            if line.strip().startswith('"last_seq"'):
                return int(line.split(":", 1)[1].strip().rstrip(","))
    raise SnapshotError("version 1 snapshot has no last_seq")


def _by_directory(path: str) -> Dict[str, str]:
    """Given a version 1 file, return each directory's record fields after the stamp, by walk key."""
    grouped: Dict[str, str] = {}
    current = ""
    fields: List[str] = []
    for relative, size, mtime in _entries(path):
        directory, _, name = relative.rpartition("/")
        if directory != current:
            _flush(grouped, current, fields)
            current, fields = directory, []
        fields += (escape(name), str(size), str(mtime))
    _flush(grouped, current, fields)
    return grouped


def _flush(grouped: Dict[str, str], directory: str, fields: List[str]) -> None:
    if fields:
        key = directory_key(directory)
        joined = "\t".join(fields)
        grouped[key] = f"{grouped[key]}\t{joined}" if key in grouped else joined


def convert_v1(source: str, target: str) -> None:
    """Given a version 1 snapshot, write the same content as a version 2 snapshot to ``target``."""
    grouped = _by_directory(source)
    writer = SnapshotWriter(target)
    unit = ""
    records: List[bytes] = []
    for key in sorted(grouped):
        relative = key.replace("\0", "/")
        top = relative.split("/", 1)[0] if "/" in relative else relative
        if top != unit and records:
            writer.add(unit, b"".join(records))
            records = []
        unit = top
        records.append(f"{escape(relative)}\t{UNTRUSTED}\t{grouped.pop(key)}\n".encode())
    if records:
        writer.add(unit, b"".join(records))
    writer.publish(target, last_seq_v1(source))
