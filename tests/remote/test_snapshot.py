"""The packer's snapshot: the per-directory format round-trips, and version 1 files are still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from remote.scan import FileStat
from remote.snapshot import (
    RecordCursor,
    SnapshotError,
    SnapshotWriter,
    directory_key,
    escape,
    format_record,
    parse_record,
    read_snapshot,
    unescape,
)
from remote.snapshot_v1 import convert_v1

ODD = "tab\there\nnew\\line"


def _write(path: Path, units: dict, last_seq: int = 3) -> None:
    writer = SnapshotWriter(str(path))
    for unit, lines in units.items():
        writer.add(unit, "".join(line + "\n" for line in lines).encode("utf-8"))
    writer.publish(str(path), last_seq)


def test_snapshot_names_with_separators_round_trip() -> None:
    assert "\t" not in escape(ODD) and "\n" not in escape(ODD)
    assert unescape(escape(ODD)) == ODD
    files = [("metrics.json", FileStat(412, 1_700_000_000_123_456_789)), (ODD, None)]
    line = format_record(f"model/{ODD}", "12:34", files, ["checkpoint-1", ODD])
    record = parse_record(line.split("\t"))
    assert record.relative == f"model/{ODD}" and record.stamp == "12:34"
    assert record.files == dict(files)
    assert record.subdirs == ["checkpoint-1", ODD]


def test_snapshot_directory_key_sorts_in_depth_first_walk_order() -> None:
    walk = ["a", "a/b", "a/b/c", "a/b-c", "a-b", "a-b/x", "a0", "b"]  # depth first, names sorted
    assert sorted(walk, key=directory_key) == walk
    assert sorted(walk) != walk  # plain path order differs ("a-b" < "a/b")


def test_snapshot_writer_and_reader_round_trip_by_unit(tmp_path: Path) -> None:
    path = tmp_path / "state"
    units = {
        "": ["\t-\t.wandb_eval_manifest.json\t10\t5\tm\td\t"],
        "m": ["m\t1:2\tc-1\td\t", "m/c-1\t3:4\tmetrics.json\t5\t6"],
        ODD: [f"{escape(ODD)}\t-"],
    }
    _write(path, units, last_seq=7)
    snapshot = read_snapshot(str(path))
    assert snapshot.last_seq == 7 and sorted(snapshot.units) == sorted(units)
    for unit, lines in units.items():
        assert list(snapshot.lines(unit)) == lines
    assert list(snapshot.lines("absent")) == []


def test_snapshot_cut_short_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    _write(path, {"m": ["m\t-"]})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SnapshotError):
        read_snapshot(str(path))


def test_snapshot_cursor_hands_out_records_in_walk_order() -> None:
    lines = ["m\t-", "m/a\t-", "m/gone\t-", "m/gone/x\t-", "m/z\t-"]
    cursor = RecordCursor(iter(lines))
    taken: List[object] = [cursor.take(d) for d in ["m", "m/a", "m/new", "m/z", "m/zz"]]
    assert taken == ["m\t-", "m/a\t-", None, "m/z\t-", None]  # vanished skipped, new has none


def test_snapshot_version_1_is_read_as_the_same_content(tmp_path: Path) -> None:
    files = {
        ".wandb_eval_manifest.json": [900, 11],
        "A/checkpoint-1/metrics.json": [5, 12],
        "A/checkpoint-1/sub/deep.json": [6, 13],
        "A/checkpoint-1/z.json": [7, 14],  # after "sub/deep.json" in path order: same directory again
        "A-b/checkpoint-2/metrics.json": [8, 15],
        f"A/{ODD}/m.json": [9, 16],
    }
    old = tmp_path / "v1.json"
    old.write_text(json.dumps({"version": 1, "last_seq": 4, "files": dict(sorted(files.items()))}, indent=2))
    convert_v1(str(old), str(tmp_path / "v2"))
    snapshot = read_snapshot(str(tmp_path / "v2"))
    assert snapshot.last_seq == 4 and sorted(snapshot.units) == ["", "A", "A-b"]
    seen = {}
    for unit in snapshot.units:
        for line in snapshot.lines(unit):
            record = parse_record(line.split("\t"))
            assert record.stamp == "-"  # listed again once, since version 1 kept no stamps
            for name, info in record.files.items():
                seen[f"{record.relative}/{name}".lstrip("/")] = list(info or ())
    assert seen == files
    walk = [parse_record(line.split("\t")).relative for line in snapshot.lines("A")]
    assert walk == sorted(walk, key=directory_key)
