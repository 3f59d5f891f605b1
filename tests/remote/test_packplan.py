"""Pure pack planning: what goes into a bundle, when it is full, what retention may delete."""

from __future__ import annotations

from typing import List

from remote.contract.names import MANIFEST_NAME
from remote.contract.outbox import Ack, BundleRecord, bundle_name
from remote.packplan import Filters, choose_kind, orphan_names, plan_files, plan_retention
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


def test_packplan_delta_holds_only_new_and_changed_files_plus_manifest() -> None:
    previous = {
        MANIFEST_NAME: FileStat(10, 1),
        "a/c-1/metrics.json": FileStat(5, 1),
        "a/c-2/metrics.json": FileStat(5, 1),
    }
    current = dict(previous, **{"a/c-2/metrics.json": FileStat(6, 2), "a/c-3/metrics.json": FileStat(5, 3)})
    plan = plan_files(current, previous, full=False, filters=Filters())
    assert plan.include == [MANIFEST_NAME, "a/c-2/metrics.json", "a/c-3/metrics.json"]
    assert plan.unchanged == 1


def test_packplan_nothing_new_means_empty_plan() -> None:
    files = {MANIFEST_NAME: FileStat(10, 1), "a/c-1/metrics.json": FileStat(5, 1)}
    plan = plan_files(files, dict(files), full=False, filters=Filters())
    assert plan.include == [] and not plan.has_data


def test_packplan_changed_manifest_alone_is_published() -> None:
    previous = {MANIFEST_NAME: FileStat(10, 1)}
    plan = plan_files({MANIFEST_NAME: FileStat(11, 2)}, previous, full=False, filters=Filters())
    assert plan.include == [MANIFEST_NAME] and not plan.has_data


def test_packplan_filters_hold_back_large_and_excluded_files() -> None:
    current = {
        "a/c-1/metrics.json": FileStat(5, 1),
        "a/c-1/rollout.json": FileStat(5, 1),
        "a/c-1/final_result.json": FileStat(5, 1),
        "a/c-1/weights.bin": FileStat(11, 1),
    }
    plan = plan_files(current, {}, full=True, filters=Filters(max_bytes=10))
    assert plan.include == ["a/c-1/metrics.json"]
    assert plan.too_large == ["a/c-1/weights.bin"]
    assert plan.excluded == ["a/c-1/final_result.json", "a/c-1/rollout.json"]


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
