"""pack: incremental bundles published atomically, filters, half-written files, retention, locking."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest

import remote.bundle
import remote.pack
import remote.packunit
from remote.cli import main
from remote.contract.files import exclusive_lock, write_json_atomic
from remote.contract.names import MANIFEST_NAME
from remote.contract.outbox import Ack, ack_name, ack_to_json, parse_index
from remote.snapshot import directory_key, parse_record, read_snapshot
from tests.fixtures.trees import REPO_ROOT, make_results_tree, write_checkpoint


def _pack(root: Path, outbox: Path, *extra: str) -> int:
    return main(["pack", "--results-root", str(root), "--outbox", str(outbox), *extra])


def _pack_command(root: Path, outbox: Path) -> List[str]:
    """Return ``python -S -m remote pack`` for a subprocess: -S drops site-packages, so only the
    standard library is importable (the training machine's situation)."""
    return [
        sys.executable,
        "-S",
        "-m",
        "remote",
        "pack",
        "--results-root",
        str(root),
        "--outbox",
        str(outbox),
    ]


def _index(outbox: Path) -> List:
    return parse_index(json.loads((outbox / "index.json").read_text()))


def _members(outbox: Path, name: str) -> Dict[str, bytes]:
    with tarfile.open(outbox / name) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _assert_index_consistent(outbox: Path) -> None:
    """Every listed bundle exists whole: size and sha256 match the index."""
    for record in _index(outbox):
        data = (outbox / record.name).read_bytes()
        assert len(data) == record.size and hashlib.sha256(data).hexdigest() == record.sha256


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_results_tree(tmp_path / "results", ["ModelA-sft-x", "ModelB-sft-y"], [100, 200])


def test_pack_first_bundle_is_full_and_later_ones_hold_only_new_files(tree: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    assert _pack(tree, outbox) == 0
    write_checkpoint(tree, "ModelA-sft-x", 300)
    assert _pack(tree, outbox) == 0
    first, second = _index(outbox)
    assert (first.kind, second.kind) == ("full", "delta")
    assert sorted(_members(outbox, first.name)) == [
        MANIFEST_NAME,
        "ModelA-sft-x/checkpoint-100/metrics.json",
        "ModelA-sft-x/checkpoint-200/metrics.json",
        "ModelB-sft-y/checkpoint-100/metrics.json",
        "ModelB-sft-y/checkpoint-200/metrics.json",
    ]
    delta = _members(outbox, second.name)
    assert sorted(delta) == [MANIFEST_NAME, "ModelA-sft-x/checkpoint-300/metrics.json"]
    assert (
        delta["ModelA-sft-x/checkpoint-300/metrics.json"]
        == (tree / "ModelA-sft-x/checkpoint-300/metrics.json").read_bytes()
    )
    _assert_index_consistent(outbox)


def test_pack_idle_run_publishes_nothing(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    index_before = (outbox / "index.json").read_bytes()
    assert _pack(tree, outbox) == 0
    assert "Nothing new to pack" in capsys.readouterr().out
    assert (outbox / "index.json").read_bytes() == index_before


def test_pack_changed_file_travels_again_and_full_flag_packs_everything(tree: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    write_checkpoint(tree, "ModelB-sft-y", 100, {"HR@10": 0.5})  # re-evaluated
    _pack(tree, outbox)
    _pack(tree, outbox, "--full")
    records = _index(outbox)
    assert [r.kind for r in records] == ["full", "delta", "full"]
    assert "ModelB-sft-y/checkpoint-100/metrics.json" in _members(outbox, records[1].name)
    assert len(_members(outbox, records[2].name)) == 5


def test_pack_filters_skip_large_and_excluded_files_and_say_so(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = tree / "ModelA-sft-x" / "checkpoint-100"
    (checkpoint / "final_result.json").write_text("{}")
    (checkpoint / "rollout.json").write_text("{}")
    (checkpoint / "big.bin").write_bytes(b"x" * (2 * 1024 * 1024))
    outbox = tmp_path / "outbox"
    assert _pack(tree, outbox, "--max-file-mb", "1") == 0
    names = _members(outbox, _index(outbox)[0].name)
    assert not any(n.endswith(("final_result.json", "rollout.json", "big.bin")) for n in names)
    assert "Not packed: 1 over the size limit, 2 excluded by name" in capsys.readouterr().out


def test_pack_file_changed_between_scan_and_read_waits_for_the_next_pack(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    target = tree / "ModelA-sft-x" / "checkpoint-200" / "metrics.json"
    real_read = remote.packunit.read_stable

    def writer_appends_after_the_scan(path, expected):
        if path == str(target):
            with open(target, "a") as handle:  # the evaluator is still writing
                handle.write(" ")
        return real_read(path, expected)

    monkeypatch.setattr(remote.packunit, "read_stable", writer_appends_after_the_scan)
    outbox = tmp_path / "outbox"
    assert _pack(tree, outbox) == 0
    assert "ModelA-sft-x/checkpoint-200/metrics.json" not in _members(outbox, _index(outbox)[0].name)
    assert "1 changing while read" in capsys.readouterr().out
    monkeypatch.setattr(remote.packunit, "read_stable", real_read)
    assert _pack(tree, outbox) == 0
    assert (
        _members(outbox, _index(outbox)[1].name)["ModelA-sft-x/checkpoint-200/metrics.json"]
        == target.read_bytes()
    )


def test_pack_file_rewritten_while_being_read_waits_for_the_next_pack(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tree / "ModelB-sft-y" / "checkpoint-100" / "metrics.json"
    original = target.read_bytes()
    real_os = remote.packunit.os

    def read_then_writer_rewrites(fd, size):  # same size, new content and mtime: only the stat shows it
        data = real_os.read(fd, size)
        before = real_os.fstat(fd)
        if before.st_ino == real_os.stat(target).st_ino:
            target.write_bytes(original.replace(b"0", b"9"))
            real_os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        return data

    monkeypatch.setattr(
        remote.packunit, "os", SimpleNamespace(**{**vars(real_os), "read": read_then_writer_rewrites})
    )
    outbox = tmp_path / "outbox"
    assert _pack(tree, outbox) == 0
    assert "ModelB-sft-y/checkpoint-100/metrics.json" not in _members(outbox, _index(outbox)[0].name)
    monkeypatch.setattr(remote.packunit, "os", real_os)
    assert _pack(tree, outbox) == 0
    shipped = _members(outbox, _index(outbox)[1].name)["ModelB-sft-y/checkpoint-100/metrics.json"]
    assert shipped == target.read_bytes() != original


def test_pack_unreadable_file_is_skipped_and_packed_once_readable(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_read = remote.packunit.read_stable

    def read(path, expected):
        if path.endswith("ModelB-sft-y/checkpoint-100/metrics.json"):
            raise PermissionError(13, "Permission denied")
        return real_read(path, expected)

    monkeypatch.setattr(remote.packunit, "read_stable", read)
    outbox = tmp_path / "outbox"
    assert _pack(tree, outbox) == 0
    assert len(_members(outbox, _index(outbox)[0].name)) == 4
    assert "not packed this time: ModelB-sft-y/checkpoint-100/metrics.json (Permission denied)" in caplog.text
    monkeypatch.setattr(remote.packunit, "read_stable", real_read)
    _pack(tree, outbox)
    assert "ModelB-sft-y/checkpoint-100/metrics.json" in _members(outbox, _index(outbox)[1].name)


@pytest.mark.parametrize("crash_at", ["bundle-rename", "index-write", "snapshot-write"])
def test_pack_interrupted_never_exposes_a_half_bundle_and_loses_nothing(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    write_checkpoint(tree, "ModelA-sft-x", 300)
    real_replace, real_write = os.replace, remote.pack.write_bytes_atomic

    def replace(src, dst):
        if (crash_at == "bundle-rename" and "bundle-" in str(dst)) or (
            crash_at == "snapshot-write" and str(dst).endswith(".packer-state.json")
        ):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    def write(path, data, *args):
        if crash_at == "index-write" and path.endswith("index.json"):
            raise OSError(28, "No space left on device")
        return real_write(path, data, *args)

    monkeypatch.setattr(remote.pack.os, "replace", replace)
    monkeypatch.setattr(remote.pack, "write_bytes_atomic", write)
    monkeypatch.setattr(remote.contract.files, "write_bytes_atomic", write)
    assert _pack(tree, outbox) == 1
    _assert_index_consistent(outbox)
    monkeypatch.undo()
    assert _pack(tree, outbox) == 0
    _assert_index_consistent(outbox)
    shipped = set().union(*(_members(outbox, r.name) for r in _index(outbox)))
    assert "ModelA-sft-x/checkpoint-300/metrics.json" in shipped
    assert not [n for n in os.listdir(outbox) if n.startswith(".tmp-")]
    listed = {r.name for r in _index(outbox)}
    assert {n for n in os.listdir(outbox) if n.startswith("bundle-")} == listed


def test_pack_killed_mid_write_leaves_a_consistent_outbox(tmp_path: Path) -> None:
    root = make_results_tree(tmp_path / "results", ["ModelA-sft-x"], [1])
    for index in range(6):  # incompressible data makes the write long enough to interrupt
        (root / "ModelA-sft-x" / "checkpoint-1" / "blob{}.bin".format(index)).write_bytes(os.urandom(8 << 20))
    outbox = tmp_path / "outbox"
    command = _pack_command(root, outbox)
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if outbox.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(outbox)):
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if (outbox / "index.json").exists():
        _assert_index_consistent(outbox)
    assert subprocess.run(command, cwd=REPO_ROOT, capture_output=True).returncode == 0
    _assert_index_consistent(outbox)
    shipped = set().union(*(_members(outbox, r.name) for r in _index(outbox)))
    assert {"ModelA-sft-x/checkpoint-1/blob5.bin", "ModelA-sft-x/checkpoint-1/metrics.json"} <= shipped


def test_pack_retention_deletes_only_what_every_consumer_applied(tree: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    (outbox / "acks").mkdir(parents=True)
    (outbox / ack_name("slow")).write_text(json.dumps(ack_to_json(Ack("slow", 2, "t"))))
    for step in range(300, 800, 100):  # bundles 1 (full) .. 6
        _pack(tree, outbox, "--keep", "3")
        write_checkpoint(tree, "ModelA-sft-x", step)
    assert [r.seq for r in _index(outbox)][0] == 3  # 1 and 2 applied by "slow": deleted
    (outbox / ack_name("slow")).write_text(json.dumps(ack_to_json(Ack("slow", 6, "t"))))
    _pack(tree, outbox, "--keep", "3")
    records = _index(outbox)
    assert len(records) <= 3 + 1 and any(r.kind == "full" for r in records)
    assert {n for n in os.listdir(outbox) if n.startswith("bundle-")} == {r.name for r in records}


def test_pack_unreadable_ack_stops_retention_with_a_clear_error(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    (outbox / "acks").mkdir(parents=True)
    (outbox / "acks" / "broken.json").write_text("{half")
    assert _pack(tree, outbox) == 1
    assert "Error: ack broken.json is unreadable" in capsys.readouterr().err


def test_pack_second_packer_on_one_outbox_exits_at_once(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    with exclusive_lock(str(outbox / ".lock"), "pack"):
        assert _pack(tree, outbox) == 5
    assert "Error: another pack" in capsys.readouterr().err


def test_pack_no_manifest_without_a_manifest_is_a_usage_error(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _pack(tree, tmp_path / "outbox", "--no-manifest") == 2
    assert "Error: no manifest at" in capsys.readouterr().err


def test_pack_runs_on_the_standard_library_alone(tree: Path, tmp_path: Path) -> None:
    # python -S: no site-packages, so any third-party import would fail here.
    command = _pack_command(tree, tmp_path / "outbox")
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Published bundle-00000001-full.tar.gz: full, 5 files" in result.stdout


def _records_by_unit(outbox: Path) -> Dict[str, List[str]]:
    snapshot = read_snapshot(str(outbox / ".packer-state.json"))
    return {unit: list(snapshot.lines(unit)) for unit in snapshot.units}


def _assert_one_record_per_directory_in_walk_order(outbox: Path, root: Path) -> None:
    """The snapshot's records are those of the tree's folders, each once, in walk order."""
    recorded = [
        parse_record(line.split("\t")).relative
        for lines in _records_by_unit(outbox).values()
        for line in lines
    ]
    folders = [""] + [str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()]
    assert recorded == sorted(recorded, key=directory_key)
    assert sorted(recorded) == sorted(folders)


def test_pack_reads_the_old_snapshot_format_and_continues_the_delta_chain(tree: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    shipped = {}
    for lines in _records_by_unit(outbox).values():
        for line in lines:
            record = parse_record(line.split("\t"))
            for name, info in record.files.items():
                shipped[f"{record.relative}/{name}".lstrip("/")] = [info.size, info.mtime_ns]  # type: ignore[union-attr]
    write_json_atomic(str(outbox / ".packer-state.json"), {"version": 1, "last_seq": 1, "files": shipped})
    index_before = (outbox / "index.json").read_bytes()
    assert _pack(tree, outbox) == 0  # idle: nothing published, but the snapshot is converted for good
    assert (outbox / "index.json").read_bytes() == index_before
    assert (outbox / ".packer-state.json").read_bytes().startswith(b'{"format": "remote-pack-snapshot"')
    assert read_snapshot(str(outbox / ".packer-state.json")).last_seq == 1
    write_json_atomic(str(outbox / ".packer-state.json"), {"version": 1, "last_seq": 1, "files": shipped})
    write_checkpoint(tree, "ModelB-sft-y", 300)
    assert _pack(tree, outbox) == 0
    second = _index(outbox)[1]
    assert second.kind == "delta"
    assert sorted(_members(outbox, second.name)) == [
        MANIFEST_NAME,
        "ModelB-sft-y/checkpoint-300/metrics.json",
    ]
    assert (outbox / ".packer-state.json").read_bytes().startswith(b'{"format": "remote-pack-snapshot"')
    assert not [n for n in os.listdir(outbox) if n.startswith(".tmp-")]
    assert _pack(tree, outbox) == 0 and len(_index(outbox)) == 2


def test_pack_unusable_snapshot_means_a_full_bundle(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    state = outbox / ".packer-state.json"
    state.write_bytes(state.read_bytes()[:-20])  # cut short
    assert _pack(tree, outbox) == 0
    assert [r.kind for r in _index(outbox)] == ["full", "full"]
    assert "packer snapshot unreadable" in caplog.text


def test_pack_manifest_change_alone_is_published(tree: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"ModelA-sft-x": {"wandb_project": "Other"}}))
    assert _pack(tree, outbox, "--overrides", str(overrides)) == 0
    delta = _index(outbox)[1]
    assert (delta.kind, sorted(_members(outbox, delta.name))) == ("delta", [MANIFEST_NAME])


def test_pack_with_worker_processes_gives_the_same_bundles_and_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    models = ["Model{:02d}-sft-x".format(n) for n in range(remote.bundle.POOL_MIN_UNITS + 3)]
    root = make_results_tree(tmp_path / "results", models, [100, 200])
    pools = []
    real_pool = remote.bundle.ProcessPoolExecutor

    def counted_pool(*args, **kwargs):
        pools.append(kwargs["max_workers"])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(remote.bundle, "ProcessPoolExecutor", counted_pool)
    monkeypatch.setattr(remote.pack, "prune", lambda outbox, records, keep: (records, []))  # see leftovers
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for step in (None, 300):
        if step:
            write_checkpoint(root, models[7], step)
        assert _pack(root, serial, "--jobs", "1") == 0
        assert _pack(root, parallel, "--jobs", "2") == 0
    assert pools == [2, 2]
    for one, other in zip(_index(serial), _index(parallel)):
        assert (one.kind, one.files) == (other.kind, other.files)
        assert _members(serial, one.name) == _members(parallel, other.name)
    assert _records_by_unit(serial) == _records_by_unit(parallel)
    _assert_one_record_per_directory_in_walk_order(parallel, root)
    capsys.readouterr()
    assert _pack(root, parallel, "--jobs", "2") == 0  # idle: the workers' scratch files go too
    assert "Nothing new to pack" in capsys.readouterr().out
    assert not [n for n in os.listdir(parallel) if n.startswith(".tmp-")]


def test_pack_reuses_listings_yet_sees_rewritten_new_and_released_files(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote.bundle, "STAMP_MARGIN_NS", -(10**12))  # trust every directory at once
    listed: List[str] = []
    real_list = remote.packunit.list_directory
    monkeypatch.setattr(remote.packunit, "list_directory", lambda p, r: listed.append(r) or real_list(p, r))
    checkpoint = tree / "ModelA-sft-x" / "checkpoint-100"
    (checkpoint / "big.bin").write_bytes(b"x" * (2 << 20))
    write_checkpoint(tree, "ModelC-sft-z", 100)  # never touched again
    outbox = tmp_path / "outbox"
    assert _pack(tree, outbox, "--max-file-mb", "1") == 0
    untouched = _records_by_unit(outbox)["ModelC-sft-z"]
    listed.clear()
    assert _pack(tree, outbox, "--max-file-mb", "1") == 0  # idle: only the root is read again
    assert listed == [""] and len(_index(outbox)) == 1
    metrics = checkpoint / "metrics.json"
    before = metrics.stat()
    metrics.write_bytes(metrics.read_bytes().replace(b"0", b"1"))  # in place: the directory does not change
    os.utime(metrics, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    (tree / "ModelB-sft-y" / "checkpoint-200" / "metrics.tsv").write_text("path\tHR@10\nx\t0.1\n")
    write_checkpoint(tree, "ModelB-sft-y", 150)  # a new folder between two unchanged ones
    assert _pack(tree, outbox, "--max-file-mb", "3") == 0
    assert sorted(_members(outbox, _index(outbox)[1].name)) == [
        MANIFEST_NAME,
        "ModelA-sft-x/checkpoint-100/big.bin",
        "ModelA-sft-x/checkpoint-100/metrics.json",
        "ModelB-sft-y/checkpoint-150/metrics.json",
        "ModelB-sft-y/checkpoint-200/metrics.tsv",
    ]
    assert "ModelB-sft-y/checkpoint-200" in listed and "ModelA-sft-x/checkpoint-100" not in listed
    assert _records_by_unit(outbox)["ModelC-sft-z"] == untouched
    _assert_one_record_per_directory_in_walk_order(outbox, tree)
    listed.clear()
    assert _pack(tree, outbox, "--max-file-mb", "3") == 0  # idle again: the new records hold too
    assert listed == [""] and len(_index(outbox)) == 2


def test_pack_without_a_usable_process_pool_packs_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    models = ["Model{:02d}-sft-x".format(n) for n in range(remote.bundle.POOL_MIN_UNITS)]
    root = make_results_tree(tmp_path / "results", models, [100])

    def no_semaphores(*args, **kwargs):  # what a machine without a usable /dev/shm answers
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(remote.bundle, "ProcessPoolExecutor", no_semaphores)
    outbox = tmp_path / "outbox"
    assert _pack(root, outbox, "--jobs", "2") == 0
    assert _index(outbox)[0].files == len(models) + 1
    assert "cannot start worker processes" in caplog.text


def test_pack_damaged_snapshot_record_means_a_full_bundle(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    state = outbox / ".packer-state.json"
    text = state.read_text()
    damaged = re.sub(r"\tmetrics\.json\t\d", "\tmetrics.json\tx", text, count=1)  # a size that is no number
    assert len(damaged) == len(text)  # the index still points at the right places
    state.write_text(damaged)
    write_checkpoint(tree, "ModelA-sft-x", 300)
    assert _pack(tree, outbox) == 0
    assert [r.kind for r in _index(outbox)] == ["full", "full"]
    assert len(_members(outbox, _index(outbox)[1].name)) == 6
    assert "packer snapshot unusable" in caplog.text
    assert _pack(tree, outbox) == 0 and len(_index(outbox)) == 2  # the new snapshot is whole


def test_pack_full_bundles_favour_speed_and_deltas_size(tree: Path, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    _pack(tree, outbox)
    write_checkpoint(tree, "ModelA-sft-x", 300)
    _pack(tree, outbox)
    full, delta = ((outbox / r.name).read_bytes() for r in _index(outbox))
    assert (full[8], delta[8]) == (4, 0)  # gzip's XFL byte: 4 "fastest" (level 1), 0 default (level 6)


@pytest.mark.parametrize("trusted", [False, True], ids=["listed", "listing-reused"])
def test_pack_hidden_files_and_symlinks_never_travel_and_the_manifest_comes_first(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, trusted: bool
) -> None:
    if trusted:  # the second pack then reuses every unchanged listing
        monkeypatch.setattr(remote.bundle, "STAMP_MARGIN_NS", -(10**12))
    outbox, outside = tmp_path / "outbox", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    _pack(tree, outbox)
    checkpoint = tree / "ModelA-sft-x" / "checkpoint-200"
    (checkpoint / ".metrics.json.swp").write_text("half")  # an editor's or writer's temporary file
    (tree / "ModelB-sft-y" / ".cache").mkdir()
    (tree / "ModelB-sft-y" / ".cache" / "metrics.json").write_text("{}")
    os.symlink(outside / "secret.json", checkpoint / "linked.json")
    os.symlink(outside, tree / "ModelB-sft-y" / "checkpoint-900")
    write_checkpoint(tree, "ModelB-sft-y", 300)
    capsys.readouterr()
    assert _pack(tree, outbox) == 0
    out = capsys.readouterr().out
    with tarfile.open(outbox / _index(outbox)[1].name) as tar:
        names = tar.getnames()
    assert names == [MANIFEST_NAME, "ModelB-sft-y/checkpoint-300/metrics.json"]
    for again in (False, True):  # an idle pack lists them again
        assert "skipped ModelA-sft-x/checkpoint-200/linked.json: symlink (not followed)" in out
        assert "skipped ModelB-sft-y/checkpoint-900: symlink (not followed)" in out
        if not again:
            assert _pack(tree, outbox) == 0 and len(_index(outbox)) == 2
            out = capsys.readouterr().out
