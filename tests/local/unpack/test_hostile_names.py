"""Members whose names are not valid UTF-8: skipped with a warning, the rest applied, later bundles too.

Such bundles come from an older packer or from the original tool's ``tar czf`` over a tree with a
Latin-1 folder name. Before, unpack staged them and then crashed writing its journal, leaving the
staging folder behind and every later bundle blocked.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tarfile
from pathlib import Path
from typing import List

import pytest

from local.cli.main import main
from local.errors import UserError
from local.unpack.apply import unpack_bundles, unpack_inbox
from local.unpack.ledger import load_ledger
from remote.contract.exit_codes import EXIT_OK
from remote.contract.names import LEDGER_NAME, MANIFEST_NAME, STAGING_DIR
from remote.contract.outbox import bundle_name
from remote.contract.tree import shown_name
from tests.fixtures.hostile import SYM, Member, listing, undecodable, write_members

GOOD = "ModelA/checkpoint-100/metrics.json"
ODD_DIR = undecodable("Caf")  # b"Caf\xe9": a Latin-1 folder name
ODD = f"{ODD_DIR}/checkpoint-100/metrics.json"


def _visible(root: Path) -> dict:
    return {name: data for name, data in listing(root).items() if not name.startswith(".unpack")}


def _gnu_tar_bundle(tmp_path: Path, seq: int) -> Path:
    """Pack a tree with a Latin-1 folder the way the original tool did: GNU ``tar czf``."""
    tree = tmp_path / f"tree-{seq}"
    for name, data in ((GOOD, b'{"HR@10": 0.5}'), (ODD, b'{"HR@10": 0.7}'), (MANIFEST_NAME, b"{}")):
        path = os.path.join(os.fsencode(tree), os.fsencode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(os.fsdecode(path)).write_bytes(data)
    bundle = tmp_path / "in" / bundle_name(seq, "full")
    bundle.parent.mkdir(exist_ok=True)
    names = [MANIFEST_NAME, GOOD, ODD]
    subprocess.run(["tar", "czf", str(bundle), "-C", str(tree), *names], check=True)
    return bundle


def test_unpack_skips_a_gnu_tar_member_not_in_utf8_and_applies_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bundle = _gnu_tar_bundle(tmp_path, 1)
    root = tmp_path / "results"
    assert main(["unpack", "--results-root", str(root), str(bundle)]) == EXIT_OK
    assert _visible(root) == {MANIFEST_NAME: b"{}", GOOD: b'{"HR@10": 0.5}'}
    out, err = capsys.readouterr()
    warnings = [line.split(": ", 1)[1] for line in err.splitlines() if "WARNING" in line]
    assert warnings == [
        f"bundle {bundle.name}: skipped member 'Caf\\xe9/checkpoint-100/metrics.json': its name is not "
        "valid UTF-8, so no manifest, ledger or W&B run could name it; the rest of the bundle is applied"
    ]
    assert "Traceback" not in err and "skipped 1 member(s) not named in UTF-8" in out
    assert load_ledger(str(root)).applied_seq == 1
    assert not (root / STAGING_DIR).exists()
    json.loads((root / LEDGER_NAME).read_text(encoding="utf-8"))
    later = write_members(
        tmp_path / "in" / bundle_name(2, "delta"), [Member("ModelB/checkpoint-1/metrics.json", b"b")]
    )
    assert main(["unpack", "--results-root", str(root), str(later)]) == EXIT_OK
    assert _visible(root)["ModelB/checkpoint-1/metrics.json"] == b"b"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_unpack_skips_undecodable_names_in_python_made_bundles_and_later_bundles_apply(
    tmp_path: Path, fmt: int
) -> None:
    """PAX marks such a name hdrcharset=BINARY; tarfile decodes both formats the same way."""
    root = tmp_path / "results"
    first = write_members(
        tmp_path / "in" / bundle_name(1, "full"),
        [Member(GOOD, b"1"), Member(ODD_DIR, kind=b"5"), Member(ODD, b"2"), Member(MANIFEST_NAME, b"m1")],
        fmt,
    )
    second = write_members(
        tmp_path / "in" / bundle_name(2, "delta"),
        [Member("ModelA/checkpoint-200/metrics.json", b"3"), Member(MANIFEST_NAME, b"m2")],
        fmt,
    )
    report = unpack_bundles(str(root), [str(first), str(second)])
    assert report.applied == [first.name, second.name]
    assert report.skipped == [
        f"{first.name}: 'Caf\\xe9'",
        f"{first.name}: 'Caf\\xe9/checkpoint-100/metrics.json'",
    ]
    assert _visible(root) == {GOOD: b"1", "ModelA/checkpoint-200/metrics.json": b"3", MANIFEST_NAME: b"m2"}
    assert sorted(os.listdir(os.fsencode(root))) == [
        b".unpack-ledger.json",
        b".unpack.lock",
        b".wandb_eval_manifest.json",
        b"ModelA",
    ]


def test_unpack_after_the_old_crash_discards_its_staging_and_applies_the_bundle(tmp_path: Path) -> None:
    """The state the old unpack left: staged files, no journal. The same bundle now applies."""
    inbox, root = tmp_path / "inbox", tmp_path / "results"
    first = write_members(inbox / bundle_name(1, "full"), [Member(GOOD, b"1"), Member(ODD, b"2")])
    debris = root / STAGING_DIR / first.name / "ModelA" / "checkpoint-100"
    debris.mkdir(parents=True)
    (debris / "metrics.json").write_bytes(b"1")
    (root / STAGING_DIR / ".tmp-abc123").write_bytes(b"{")  # a stray temporary file, too
    write_members(inbox / bundle_name(2, "delta"), [Member("ModelB/checkpoint-1/metrics.json", b"b")])
    report = unpack_inbox(str(root), str(inbox))
    assert report.applied_seq == 2
    assert _visible(root) == {GOOD: b"1", "ModelB/checkpoint-1/metrics.json": b"b"}
    assert not (root / STAGING_DIR).exists()
    assert list(inbox.iterdir()) == []


@pytest.mark.parametrize(
    "member",
    [
        Member(undecodable("../../evil"), b"x"),
        Member(undecodable("/etc/evil"), b"x"),
        Member(undecodable("ModelA/link"), kind=SYM, linkname="/etc/passwd"),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_unpack_refuses_an_unsafe_member_even_when_its_name_is_also_undecodable(
    tmp_path: Path, member: Member
) -> None:
    bundle = write_members(tmp_path / bundle_name(1, "full"), [Member(GOOD, b"1"), member])
    root = tmp_path / "results"
    with pytest.raises(UserError) as caught:
        unpack_bundles(str(root), [str(bundle)])
    assert shown_name(member.name) in caught.value.message
    assert "\\xe9" in caught.value.message and "nothing written" in caught.value.message
    assert sorted(listing(root)) == [".unpack.lock"]


def test_unpack_names_at_most_ten_skipped_members_then_counts_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    odd: List[Member] = [Member(undecodable(f"M/{i:02d}-"), b"x") for i in range(25)]
    bundle = write_members(tmp_path / bundle_name(1, "full"), [Member(GOOD, b"1"), *odd])
    caplog.set_level(logging.WARNING)
    report = unpack_bundles(str(tmp_path / "results"), [str(bundle)])
    assert len(report.skipped) == 25
    lines = [r.getMessage() for r in caplog.records if r.name == "local.unpack.apply"]
    assert len([line for line in lines if "skipped member" in line]) == 10
    assert f"bundle {bundle.name}: skipped 15 more members whose names are not valid UTF-8" in lines
    assert all("\n" not in line for line in lines)


def test_shown_name_escapes_undecodable_bytes_and_line_breaks() -> None:
    assert shown_name(undecodable("Caf")) == "'Caf\\xe9'"
    assert shown_name(undecodable("x", b"\xff\xfe")) == "'x\\xff\\xfe'"
    assert shown_name("a\nb") == "'a\\x0ab'"  # a control character as \\xNN, as both roles show it
    assert shown_name("back\\udce9") == "'back\\udce9'"  # a real backslash is kept, never shown as a byte
    assert shown_name("ModelA/metrics.json") == "'ModelA/metrics.json'"
