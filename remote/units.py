"""A unit of ``pack``'s work, what it gives back, and the scratch files it writes to.

A *unit* is one top-level folder of the results root. Units share nothing, so ``pack`` can give
batches of them to several processes (:mod:`remote.bundle`); tasks and results are small
picklable values, and the bulky output (one compressed tar piece per batch, snapshot records
per unit) goes to two spool files per process, which the pack's own process reads back in
order. Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from remote.contract.names import SPOOL_PREFIX
from remote.packplan import Filters, Tally
from remote.scan import Skipped
from remote.tarstream import COMPRESS_LEVEL, Piece, Spool

_RECORDS_FLUSH_AT = 1 << 20


@dataclass(frozen=True)
class UnitTask:
    """What one unit needs: the tree, the rules, and where its previous records are (if any)."""

    results_root: str
    unit: str
    spool_dir: str
    full: bool
    filters: Filters
    trust_before_ns: int
    snapshot_path: str = ""
    records_at: Tuple[int, int] = (0, 0)
    level: int = COMPRESS_LEVEL


@dataclass
class UnitResult:
    """What one unit produced: where its records are, and what to report."""

    unit: str
    records: Optional[Tuple[str, int, int]] = None  # None: its records in the old snapshot still hold
    tally: Tally = field(default_factory=Tally)
    changing: List[str] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


@dataclass
class BatchResult:
    """What a batch of consecutive units produced: one compressed piece, each unit's result."""

    piece: Piece
    units: List[UnitResult]
    spool_paths: Tuple[str, ...]  # the spools of the process that made it, deleted when the pack ends


_SPOOLS: Dict[str, Tuple[Spool, Spool]] = {}


def spools(directory: str) -> Tuple[Spool, Spool]:
    """Given the outbox, return this process's spools for tar pieces and records (made once)."""
    if directory not in _SPOOLS:
        base = os.path.join(directory, f"{SPOOL_PREFIX}{os.getpid()}")
        _SPOOLS[directory] = (Spool(base + ".tar"), Spool(base + ".rec"))
    return _SPOOLS[directory]


def release_spools() -> None:
    """Close and delete this process's spools (a pack's own process, when the pack ends)."""
    while _SPOOLS:
        for spool in _SPOOLS.popitem()[1]:
            spool.close()
            if os.path.exists(spool.path):
                os.unlink(spool.path)


class RecordWriter:
    """Given a spool, write a unit's snapshot record lines to it in batches.

    A unit whose records all stay as they were (the usual case of an idle pack) writes
    nothing: the new snapshot takes that unit's records from the old one.
    """

    def __init__(self, spool: Spool) -> None:
        self._spool, self._start = spool, spool.offset
        self._lines: List[str] = []
        self._size = 0
        self.kept_all = True

    def keep(self, line: str) -> None:
        """Given a record line kept as it was in the previous snapshot, queue it."""
        self._queue(line)

    def append(self, line: str) -> None:
        """Given a new or rebuilt record line (without newline), queue it."""
        self.kept_all = False
        self._queue(line)

    def _queue(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= _RECORDS_FLUSH_AT:
            self.kept_all = False  # memory is bounded: written after all
            self.flush()

    def flush(self) -> None:
        """Write the queued lines, unless all of them may still turn out unchanged."""
        if self._lines and not self.kept_all:
            self._spool.write(("\n".join(self._lines) + "\n").encode("utf-8"))
            self._lines, self._size = [], 0

    def finish(self, old_records_all_taken: bool) -> Optional[Tuple[str, int, int]]:
        """Given whether every old record of the unit was met, return where its lines are, or None
        when they are the old snapshot's exactly."""
        if self.kept_all and old_records_all_taken:
            return None
        self.kept_all = False
        self.flush()
        return self._spool.path, self._start, self._spool.offset - self._start
