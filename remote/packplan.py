"""Pure planning for ``pack``: what goes into the next bundle, and which bundles may go.

No I/O here, so every rule is tested with plain data. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Set, Tuple

from remote.contract.outbox import Ack, BundleRecord
from remote.contract.tree import DEFAULT_EXCLUDES, DEFAULT_MAX_FILE_MB
from remote.scan import FileStat

# A directory whose listing must be read again next time (see directory_stamp).
UNTRUSTED = "-"
# Margin for coarse file-system timestamps and small clock differences with a file server.
STAMP_MARGIN_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class Filters:
    """The original tool's filters: files over ``max_bytes`` and excluded basenames never travel."""

    max_bytes: int = int(DEFAULT_MAX_FILE_MB * 1024 * 1024)
    exclude_names: Tuple[str, ...] = DEFAULT_EXCLUDES

    def count_held(self, name: str, size: int, tally: Tally) -> bool:
        """Given a file's name and size, count it in ``tally`` and say True if it never travels."""
        if name in self.exclude_names:
            tally.excluded += 1
        elif size > self.max_bytes:
            tally.too_large += 1
        else:
            return False
        return True


@dataclass
class Tally:
    """How many files one pack put in the bundle, found unchanged, or held back by the filters.

    The manifest, which every bundle carries, is not counted here.
    """

    included: int = 0
    unchanged: int = 0
    too_large: int = 0
    excluded: int = 0

    def add(self, other: Tally) -> None:
        """Given another tally, add its counts to this one."""
        self.included += other.included
        self.unchanged += other.unchanged
        self.too_large += other.too_large
        self.excluded += other.excluded


def plan_directory(
    files: Sequence[Tuple[str, FileStat]],
    previous: Mapping[str, Optional[FileStat]],
    full: bool,
    filters: Filters,
    tally: Tally,
) -> List[Tuple[str, FileStat]]:
    """Given one directory's files now and as last packed, return those the bundle should hold.

    A full bundle holds every file that passes the filters; a delta only those new or changed
    (size or mtime differ) since they were last packed. Counts go to ``tally``.
    """
    include: List[Tuple[str, FileStat]] = []
    for name, info in files:
        if filters.count_held(name, info.size, tally):
            continue
        if full or previous.get(name) != info:
            include.append((name, info))
        else:
            tally.unchanged += 1
    return include


def directory_stamp(inode: int, ctime_ns: int, trust_before_ns: int) -> str:
    """Given a directory's inode and ctime, read just before it was listed, return its stamp.

    Creating, deleting or renaming an entry sets the directory's ctime to the current time, and
    nothing can set a ctime back, so while a directory keeps its stamp its listing still holds
    and need not be read again (its files are still stat'ed: rewriting a file in place does not
    touch the directory). A ctime within ``STAMP_MARGIN_NS`` of the listing is not trusted: on
    a file system with coarse timestamps (one second on some network file systems) an entry
    made just after the listing could share that ctime.
    """
    return f"{inode}:{ctime_ns}" if ctime_ns < trust_before_ns else UNTRUSTED


def listing_reusable(stamp: str, inode: int, ctime_ns: int) -> bool:
    """Given a directory's recorded stamp and its inode and ctime now, tell if its listing holds."""
    return stamp != UNTRUSTED and stamp == f"{inode}:{ctime_ns}"


def choose_kind(records: Sequence[BundleRecord], have_snapshot: bool, force_full: bool, keep: int) -> str:
    """Given the published bundles, return ``full`` or ``delta`` for the next one.

    A full bundle is made when asked, when there is nothing to be a delta of, and when the
    chain since the newest full bundle has reached ``keep`` bundles: otherwise retention
    could never drop the old full bundle a new consumer must start from.
    """
    newest_full = newest_full_seq(records)
    if force_full or not have_snapshot or newest_full is None:
        return "full"
    chain = [r for r in records if r.seq >= newest_full]
    return "full" if len(chain) >= keep else "delta"


def newest_full_seq(records: Sequence[BundleRecord]) -> Optional[int]:
    """Given bundle records, return the sequence number of the newest full bundle, if any."""
    fulls = [r.seq for r in records if r.kind == "full"]
    return max(fulls) if fulls else None


def plan_retention(records: Sequence[BundleRecord], acks: Sequence[Ack], keep: int) -> List[BundleRecord]:
    """Given the published bundles and consumer acks, return the bundles that may be deleted.

    At most ``keep`` bundles stay, oldest go first, but a bundle is deleted only when every
    consumer that wrote an ack has applied it, and the newest full bundle with everything
    after it always stays, so a new consumer can still start from a full bundle.
    """
    ordered = sorted(records, key=lambda r: r.seq)
    excess = len(ordered) - max(keep, 1)
    if excess <= 0:
        return []
    applied_by_all = min(a.applied_seq for a in acks) if acks else None
    protected_from = newest_full_seq(ordered)
    doomed: List[BundleRecord] = []
    for record in ordered[:excess]:
        if protected_from is not None and record.seq >= protected_from:
            break
        if applied_by_all is not None and record.seq > applied_by_all:
            break
        doomed.append(record)
    return doomed


def orphan_names(names: Set[str], records: Sequence[BundleRecord]) -> List[str]:
    """Given bundle file names found in the outbox, return those no index entry names.

    Such files are left by a crash between writing a bundle and publishing the index,
    or between unpublishing and deleting; readers never see them, so they can go.
    """
    listed = {r.name for r in records}
    return sorted(names - listed)
