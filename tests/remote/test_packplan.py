"""Pure pack planning: what goes into a bundle, when it is full, what retention may delete."""

from __future__ import annotations

from typing import List

from remote.contract.outbox import Ack, BundleRecord, bundle_name
from remote.packplan import (
    UNTRUSTED,
    Filters,
    Tally,
    choose_kind,
    directory_stamp,
    listing_reusable,
    orphan_names,
    plan_directory,
    plan_retention,
)
from remote.scan import FileStat


def _records(kinds: str) -> List[BundleRecord]:
    """'FddF' -> seq 1 full, 2 delta, 3 delta, 4 full."""
    return [
        BundleRecord(
            seq,
            "full" if k == "F" else "delta",
            bundle_name(seq, "full" if k == "F" else "delta"),
            1,
            "0" * 64,
            1,
            "t",
        )
        for seq, k in enumerate(kinds, start=1)
    ]


def _ack(seq: int, name: str = "local") -> Ack:
    return Ack(name, seq, "t")


def test_packplan_delta_holds_only_new_and_changed_files() -> None:
    previous = {"m1.json": FileStat(5, 1), "m2.json": FileStat(5, 1), "held.json": None}
    files = [("m1.json", FileStat(5, 1)), ("m2.json", FileStat(6, 2)), ("m3.json", FileStat(5, 3))]
    files.append(("held.json", FileStat(5, 1)))  # listed but never packed (a filter held it back)
    tally = Tally()
    include = plan_directory(files, previous, False, Filters(), tally)
    assert [name for name, _ in include] == ["m2.json", "m3.json", "held.json"]
    assert (tally.unchanged, tally.included) == (1, 0)  # included counts files actually packed


def test_packplan_nothing_new_means_nothing_to_include() -> None:
    files = [("metrics.json", FileStat(5, 1))]
    assert plan_directory(files, dict(files), False, Filters(), Tally()) == []


def test_packplan_full_includes_unchanged_files_too() -> None:
    files = [("metrics.json", FileStat(5, 1))]
    assert plan_directory(files, dict(files), True, Filters(), Tally()) == files


def test_packplan_filters_hold_back_large_and_excluded_files() -> None:
    files = [
        ("final_result.json", FileStat(5, 1)),
        ("metrics.json", FileStat(5, 1)),
        ("rollout.json", FileStat(5, 1)),
        ("weights.bin", FileStat(11, 1)),
    ]
    tally = Tally()
    include = plan_directory(files, {}, True, Filters(max_bytes=10), tally)
    assert include == [("metrics.json", FileStat(5, 1))]
    assert (tally.too_large, tally.excluded) == (1, 2)


def test_packplan_a_listing_is_reused_only_while_the_directory_keeps_an_old_stamp() -> None:
    trust_before = 1_000
    stamp = directory_stamp(7, 999, trust_before)
    assert listing_reusable(stamp, 7, 999)
    assert not listing_reusable(stamp, 7, 1_005)  # an entry was added, removed or renamed
    assert not listing_reusable(stamp, 8, 999)  # another directory now has this name
    recent = directory_stamp(7, 1_000, trust_before)  # changed too close to the listing
    assert recent == UNTRUSTED and not listing_reusable(recent, 7, 1_000)


def test_packplan_kind_is_full_first_when_forced_and_when_the_chain_reaches_keep() -> None:
    assert choose_kind([], have_snapshot=False, force_full=False, keep=5) == "full"
    assert choose_kind(_records("Fd"), have_snapshot=False, force_full=False, keep=5) == "full"
    assert choose_kind(_records("Fd"), have_snapshot=True, force_full=True, keep=5) == "full"
    assert choose_kind(_records("Fd"), have_snapshot=True, force_full=False, keep=5) == "delta"
    assert choose_kind(_records("dFdddd"), have_snapshot=True, force_full=False, keep=5) == "full"


def test_packplan_retention_bounds_bundles_when_nobody_acked() -> None:
    doomed = plan_retention(_records("FdddFd"), [], keep=2)
    assert [r.seq for r in doomed] == [1, 2, 3, 4]


def test_packplan_retention_never_deletes_what_a_consumer_has_not_applied() -> None:
    records = _records("FdddFd")
    assert [r.seq for r in plan_retention(records, [_ack(2), _ack(6, "other")], keep=2)] == [1, 2]
    assert plan_retention(records, [_ack(0)], keep=2) == []


def test_packplan_retention_keeps_the_newest_full_bundle_and_its_chain() -> None:
    # keep=1 would drop everything but seq 6, yet seq 6 is a delta of the full seq 5.
    doomed = plan_retention(_records("FdddFd"), [_ack(6)], keep=1)
    assert [r.seq for r in doomed] == [1, 2, 3, 4]


def test_packplan_orphans_are_bundle_files_no_index_entry_names() -> None:
    names = {bundle_name(1, "full"), bundle_name(2, "delta"), bundle_name(3, "delta")}
    assert orphan_names(names, _records("Fd")) == [bundle_name(3, "delta")]
