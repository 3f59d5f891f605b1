"""Pure planning for ``pack``: what goes into the next bundle, and which bundles may go.

No I/O here, so every rule is tested with plain data. Standard library only.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from remote.contract.names import MANIFEST_NAME
from remote.contract.outbox import Ack, BundleRecord
from remote.contract.tree import DEFAULT_EXCLUDES, DEFAULT_MAX_FILE_MB
from remote.scan import FileStat


@dataclass(frozen=True)
class Filters:
    """The original tool's filters: files over ``max_bytes`` and excluded basenames never travel."""

    max_bytes: int = int(DEFAULT_MAX_FILE_MB * 1024 * 1024)
    exclude_names: Tuple[str, ...] = DEFAULT_EXCLUDES


@dataclass
class FilePlan:
    """The files to pack (manifest first) and the counts of files the filters kept back."""

    include: List[str]
    unchanged: int = 0
    too_large: List[str] = field(default_factory=list)
    excluded: List[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        """Tell whether anything besides the manifest is new."""
        return any(path != MANIFEST_NAME for path in self.include)


def plan_files(
    current: Dict[str, FileStat], previous: Dict[str, FileStat], full: bool, filters: Filters
) -> FilePlan:
    """Given the tree's files now and at the last bundle, return what the next bundle holds.

    A full bundle holds every file that passes the filters; a delta only those new or changed
    (size or mtime differ) since the last bundle. The manifest is always included.
    """
    plan = FilePlan(include=[])
    for path in sorted(current):
        info = current[path]
        if path == MANIFEST_NAME:
            continue
        if posixpath.basename(path) in filters.exclude_names:
            plan.excluded.append(path)
        elif info.size > filters.max_bytes:
            plan.too_large.append(path)
        elif full or previous.get(path) != info:
            plan.include.append(path)
        else:
            plan.unchanged += 1
    manifest_changed = previous.get(MANIFEST_NAME) != current.get(MANIFEST_NAME)
    if MANIFEST_NAME in current and (full or manifest_changed or plan.include):
        plan.include.insert(0, MANIFEST_NAME)
    return plan


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
