"""Applying bundles: merge semantics, the ledger, order and gaps, crash recovery, the inbox form."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Dict

import pytest

from local.cli.main import main
from local.errors import UserError
from local.unpack import apply as unpack
from local.unpack import staging
from local.unpack.apply import STAGING_DIR, unpack_bundles, unpack_inbox
from local.unpack.ledger import load_ledger
from remote.contract.names import MANIFEST_NAME
from remote.contract.outbox import bundle_name


def make_bundle(directory: Path, seq: int, kind: str, files: Dict[str, bytes]) -> Path:
    """Write a well-formed bundle holding ``files`` (path relative to the results root -> content)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / bundle_name(seq, kind)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tree(root: Path) -> Dict[str, bytes]:
    """Return the visible files under ``root`` (the unpacker's hidden bookkeeping left out)."""
    found = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        if path.is_file() and not rel.startswith(".unpack"):
            found[rel] = path.read_bytes()
    return found


def test_unpack_merges_bundles_in_order(tmp_path: Path) -> None:
    root = tmp_path / "results"
    (root / "ModelZ").mkdir(parents=True)
    (root / "ModelZ" / "local-only.txt").write_bytes(b"keep me")
    full = make_bundle(
        tmp_path / "in", 1, "full", {MANIFEST_NAME: b"m1", "A/checkpoint-1/metrics.json": b"a1"}
    )
    delta = make_bundle(
        tmp_path / "in", 2, "delta", {MANIFEST_NAME: b"m2", "A/checkpoint-1/metrics.json": b"a1b"}
    )
    report = unpack_bundles(str(root), [str(delta), str(full)])  # given out of order on purpose
    assert report.applied == [full.name, delta.name]
    assert tree(root) == {
        MANIFEST_NAME: b"m2",
        "A/checkpoint-1/metrics.json": b"a1b",
        "ModelZ/local-only.txt": b"keep me",
    }
    assert load_ledger(str(root)).applied_seq == 2
    assert not (root / STAGING_DIR).exists()


def test_unpack_reapplying_is_a_noop(tmp_path: Path) -> None:
    root = tmp_path / "results"
    bundle = make_bundle(tmp_path / "in", 1, "full", {"A/m.json": b"1"})
    unpack_bundles(str(root), [str(bundle)])
    (root / "A" / "m.json").write_bytes(b"changed locally")
    report = unpack_bundles(str(root), [str(bundle)])
    assert report.applied == [] and report.already == [bundle.name]
    assert (root / "A" / "m.json").read_bytes() == b"changed locally"


def test_unpack_refuses_a_different_bundle_under_an_applied_seq(tmp_path: Path) -> None:
    root = tmp_path / "results"
    unpack_bundles(str(root), [str(make_bundle(tmp_path / "a", 1, "full", {"A/m.json": b"1"}))])
    other = make_bundle(tmp_path / "b", 1, "full", {"A/m.json": b"other"})
    with pytest.raises(UserError, match="differs from the bundle"):
        unpack_bundles(str(root), [str(other)])


def test_unpack_refuses_delta_after_a_gap(tmp_path: Path) -> None:
    root = tmp_path / "results"
    unpack_bundles(str(root), [str(make_bundle(tmp_path / "in", 1, "full", {"A/m.json": b"1"}))])
    gap = make_bundle(tmp_path / "in", 3, "delta", {"A/m.json": b"3"})
    with pytest.raises(UserError, match="bundle 2 before it is missing"):
        unpack_bundles(str(root), [str(gap)])
    assert (root / "A" / "m.json").read_bytes() == b"1"


def test_unpack_starts_from_newest_full_bundle(tmp_path: Path) -> None:
    root = tmp_path / "results"
    paths = [
        make_bundle(tmp_path / "in", 1, "full", {"A/m.json": b"1", "old.json": b"o"}),
        make_bundle(tmp_path / "in", 2, "delta", {"A/m.json": b"2"}),
        make_bundle(tmp_path / "in", 3, "full", {"A/m.json": b"3"}),
        make_bundle(tmp_path / "in", 4, "delta", {"B/m.json": b"4"}),
    ]
    report = unpack_bundles(str(root), [str(p) for p in paths])
    assert report.applied == [paths[2].name, paths[3].name]
    assert tree(root) == {"A/m.json": b"3", "B/m.json": b"4"}


def test_unpack_crash_mid_commit_is_finished_by_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill the move phase after one rename: the next run completes it from the journal."""
    root = tmp_path / "results"
    files = {"A/c-{}/metrics.json".format(i): str(i).encode() for i in range(5)}
    files[MANIFEST_NAME] = b"manifest"
    bundle = make_bundle(tmp_path / "in", 1, "full", files)
    real_replace, calls = os.replace, []

    def crashing_replace(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(unpack.os, "replace", crashing_replace)
    with pytest.raises(KeyboardInterrupt):
        unpack_bundles(str(root), [str(bundle)])
    monkeypatch.undo()
    assert not (root / MANIFEST_NAME).exists()  # the manifest moves last
    assert load_ledger(str(root)).applied_seq == 0
    report = unpack_bundles(str(root), [])  # recovery needs no bundle: the staging area has it all
    assert report.recovered == [bundle.name]
    assert tree(root) == files
    assert load_ledger(str(root)).applied_seq == 1
    assert not (root / STAGING_DIR).exists()


def test_unpack_crash_mid_staging_leaves_root_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "results"
    bundle = make_bundle(tmp_path / "in", 1, "full", {"A/{}.json".format(i): b"x" for i in range(4)})

    def crashing_extract(*args: object) -> None:
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(staging, "_extract_file", crashing_extract)
    with pytest.raises(KeyboardInterrupt):
        unpack_bundles(str(root), [str(bundle)])
    monkeypatch.undo()
    assert tree(root) == {}
    assert unpack_bundles(str(root), [str(bundle)]).applied == [bundle.name]
    assert sorted(tree(root)) == ["A/{}.json".format(i) for i in range(4)]
    assert not (root / STAGING_DIR).exists()


def test_unpack_inbox_applies_and_removes_applied_bundles(tmp_path: Path) -> None:
    inbox, root = tmp_path / "inbox", tmp_path / "results"
    make_bundle(inbox, 1, "full", {"A/m.json": b"1"})
    make_bundle(inbox, 2, "delta", {"A/n.json": b"2"})
    (inbox / (bundle_name(3, "delta") + ".part")).write_bytes(b"half a download")
    report = unpack_inbox(str(root), str(inbox))
    assert report.applied_seq == 2
    assert sorted(p.name for p in inbox.iterdir()) == [bundle_name(3, "delta") + ".part"]


def test_unpack_cli_applies_inbox(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inbox, root = tmp_path / "inbox", tmp_path / "results"
    make_bundle(inbox, 1, "full", {"A/m.json": b"1"})
    code = main(["unpack", "--results-root", str(root), "--inbox", str(inbox), "--keep-bundles"])
    assert code == 0
    assert "applied 1 bundle(s)" in capsys.readouterr().out
    assert (inbox / bundle_name(1, "full")).exists()
    ledger = json.loads((root / ".unpack-ledger.json").read_text())
    assert ledger["applied_seq"] == 1


def test_unpack_cli_disk_error_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    bundle = tmp_path / bundle_name(1, "full")
    with tarfile.open(bundle, "w:gz") as tar:
        data = b'{"HR@10": 0.1}'
        member = tarfile.TarInfo("m/checkpoint-1/metrics.json")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(unpack.os, "replace", disk_full)
    assert main(["unpack", "--results-root", str(tmp_path / "results"), str(bundle)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line[:4].isdigit()]  # not log lines
    assert err[0] == "Error: [Errno 28] No space left on device" and err[1].startswith("Hint:")
    assert "Traceback" not in "\n".join(err)
