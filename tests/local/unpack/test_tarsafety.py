"""Malicious and broken bundles: each is refused whole, naming the member, with nothing written."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Callable, List

import pytest

from local.cli.main import main
from local.errors import UserError
from local.unpack.apply import unpack_bundles
from local.unpack.tarsafety import Limits
from remote.contract.exit_codes import EXIT_USAGE
from remote.contract.outbox import bundle_name

GOOD = "ModelA/checkpoint-100/metrics.json"


def regular(name: str, data: bytes = b'{"HR@10": 0.1}') -> tuple:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def write_bundle(directory: Path, members: List[tuple], seq: int = 1, kind: str = "full") -> Path:
    """Write a tar.gz bundle holding exactly ``members`` (a good file first, so order matters)."""
    path = directory / bundle_name(seq, kind)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def results_listing(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


MALICIOUS: List[tuple] = [
    ("absolute", lambda: [regular(GOOD), regular("/etc/cron.d/evil")], "/etc/cron.d/evil"),
    ("dotdot", lambda: [regular(GOOD), regular("ModelA/../../evil.json")], "ModelA/../../evil.json"),
    (
        "symlink",
        lambda: [regular(GOOD), special("ModelA/link", tarfile.SYMTYPE, "/etc/passwd")],
        "ModelA/link",
    ),
    ("hardlink", lambda: [regular(GOOD), special("ModelA/hard", tarfile.LNKTYPE, GOOD)], "ModelA/hard"),
    ("chardev", lambda: [regular(GOOD), special("ModelA/null", tarfile.CHRTYPE)], "ModelA/null"),
    ("blockdev", lambda: [regular(GOOD), special("ModelA/sda", tarfile.BLKTYPE)], "ModelA/sda"),
    ("fifo", lambda: [regular(GOOD), special("ModelA/pipe", tarfile.FIFOTYPE)], "ModelA/pipe"),
    ("sparse", lambda: [regular(GOOD), special("ModelA/holes", tarfile.GNUTYPE_SPARSE)], "ModelA/holes"),
    ("duplicate", lambda: [regular(GOOD), regular("./" + GOOD, b"{}")], "./" + GOOD),
    ("backslash", lambda: [regular(GOOD), regular("ModelA\\..\\evil.json")], "evil.json"),
    ("file_then_dir", lambda: [regular("ModelA/x"), regular("ModelA/x/metrics.json")], "ModelA/x"),
    (
        "ledger_overwrite",
        lambda: [regular(GOOD), regular(".unpack-ledger.json", b"{}")],
        ".unpack-ledger.json",
    ),
]


@pytest.mark.parametrize("case,members,named", MALICIOUS, ids=[case[0] for case in MALICIOUS])
def test_unpack_refuses_malicious_member(tmp_path: Path, case: str, members: Callable, named: str) -> None:
    bundle = write_bundle(tmp_path, members())
    root = tmp_path / "results"
    with pytest.raises(UserError) as caught:
        unpack_bundles(str(root), [str(bundle)])
    assert named in caught.value.message
    assert "nothing written" in caught.value.message
    assert results_listing(root) == [".unpack.lock"]


def test_unpack_refuses_too_many_members(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path, [regular("ModelA/checkpoint-{}/metrics.json".format(i)) for i in range(6)]
    )
    root = tmp_path / "results"
    with pytest.raises(UserError, match="checkpoint-5/metrics.json.*limit of 5 members"):
        unpack_bundles(str(root), [str(bundle)], Limits(max_members=5))
    assert results_listing(root) == [".unpack.lock"]


def test_unpack_refuses_size_bomb_by_its_headers(tmp_path: Path) -> None:
    """A member declaring more than the bound is refused before any of its data is read."""
    big = tarfile.TarInfo("ModelA/huge.bin")
    big.size = 64 * 1024 * 1024
    path = tmp_path / bundle_name(1, "full")
    with tarfile.open(path, "w:gz") as tar:
        info, data = regular(GOOD)
        tar.addfile(info, io.BytesIO(data))
        tar.addfile(big, io.BytesIO(bytes(big.size)))  # zeros: compresses to almost nothing
    assert path.stat().st_size < 1024 * 1024
    root = tmp_path / "results"
    with pytest.raises(UserError, match="ModelA/huge.bin.*over 1048576 bytes"):
        unpack_bundles(str(root), [str(path)], Limits(max_bytes=1024 * 1024, max_file_bytes=big.size))
    assert results_listing(root) == [".unpack.lock"]


def test_unpack_refuses_truncated_bundle(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path, [regular("ModelA/checkpoint-{}/metrics.json".format(i)) for i in range(50)]
    )
    bundle.write_bytes(bundle.read_bytes()[:200])
    root = tmp_path / "results"
    with pytest.raises(UserError, match="not a readable tar.gz"):
        unpack_bundles(str(root), [str(bundle)])
    assert results_listing(root) == [".unpack.lock"]


def test_unpack_refuses_link_in_results_root(tmp_path: Path) -> None:
    """A symlinked directory in the results root could lead writes outside it: refused."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "results"
    root.mkdir()
    (root / "ModelA").symlink_to(outside)
    bundle = write_bundle(tmp_path, [regular(GOOD)])
    with pytest.raises(UserError, match="link or file at 'ModelA'"):
        unpack_bundles(str(root), [str(bundle)])
    assert list(outside.iterdir()) == []


def test_unpack_cli_prints_one_error_line_for_bad_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bundle = write_bundle(tmp_path, [regular(GOOD), special("ModelA/link", tarfile.SYMTYPE, "/etc/shadow")])
    code = main(["unpack", "--results-root", str(tmp_path / "results"), str(bundle)])
    err = capsys.readouterr().err.splitlines()
    assert code == EXIT_USAGE
    assert [line for line in err if line.startswith("Error:")] == [
        "Error: bundle {} refused, nothing written: member 'ModelA/link' is a link (to '/etc/shadow')".format(
            bundle.name
        )
    ]


def test_unpack_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["unpack", "--results-root", str(tmp_path)]) == EXIT_USAGE
    assert main(["unpack", "--results-root", str(tmp_path), str(tmp_path / "notabundle.tgz")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("Error:") == 2
    assert "not named like a bundle" in err
