"""Bundles large on purpose or by accident: refused by their headers, before anything is written.

The per-file limit is pack's own (``--max-file-mb``, ``MAX_FILE_MB``, default 10, the manifest
exempt as in pack); the total is ``--max-bytes``. The tar stream is read on a budget, so neither a
header bomb (a long-name or pax header of gigabytes) nor a lying size can make unpack read or
write more than the checked headers declare.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from local.cli.main import main
from local.errors import UserError
from local.unpack import apply as unpack
from local.unpack import staging
from local.unpack.apply import unpack_bundles
from local.unpack.ledger import load_ledger
from local.unpack.tarsafety import DEFAULT_MAX_FILE_BYTES, Limits, validate_bundle
from remote.contract.exit_codes import EXIT_OK, EXIT_USAGE
from remote.contract.names import MANIFEST_NAME, STAGING_DIR
from remote.contract.outbox import bundle_name
from remote.contract.tree import DEFAULT_MAX_BUNDLE_BYTES
from tests.fixtures.hostile import Member, header_bomb, listing, member_bytes, write_gz, write_members, zeros

GOOD = "ModelA/checkpoint-100/metrics.json"
BIG = "ModelA/checkpoint-100/predictions.bin"


def _only_bookkeeping(root: Path) -> bool:
    return sorted(listing(root)) in ([], [".unpack.lock"])


def _zero_member_bundle(path: Path, name: str, size: int) -> Path:
    """A bundle of one good file and ``size`` zero bytes under ``name`` (compresses ~1000:1)."""
    info = tarfile.TarInfo(name)
    info.size = size
    pieces = [member_bytes(Member(GOOD, b"1")), info.tobuf(tarfile.GNU_FORMAT), *zeros(size)]
    return write_gz(path, [*pieces, bytes(-size % 512), bytes(1024)])


def test_unpack_default_per_file_limit_is_packs_own_and_refuses_one_byte_more(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAX_FILE_MB", raising=False)
    assert DEFAULT_MAX_FILE_BYTES == 10 * 1024 * 1024
    root = tmp_path / "results"
    over = _zero_member_bundle(tmp_path / "a" / bundle_name(1, "full"), BIG, DEFAULT_MAX_FILE_BYTES + 1)
    assert over.stat().st_size < 100_000
    assert main(["unpack", "--results-root", str(root), str(over)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"Error: bundle {over.name} refused, nothing written: member '{BIG}' is 10485761 bytes, "
        "over the per-file limit of 10485760 bytes (10 MB)",
        "Hint: pack never sends a file that large; if the training machine packs with a larger "
        "--max-file-mb, give unpack the same (--max-file-mb or MAX_FILE_MB)",
    ]
    assert _only_bookkeeping(root)
    # Exactly the limit is what pack still sends (it skips only files *over* it): accepted.
    at = _zero_member_bundle(tmp_path / "b" / bundle_name(1, "full"), BIG, DEFAULT_MAX_FILE_BYTES)
    assert main(["unpack", "--results-root", str(root), str(at)]) == EXIT_OK
    assert (root / BIG).stat().st_size == DEFAULT_MAX_FILE_BYTES and (root / GOOD).read_bytes() == b"1"


def test_unpack_per_file_limit_follows_the_flag_and_max_file_mb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    bundle = write_members(tmp_path / bundle_name(1, "full"), [Member(GOOD, b"1"), Member(BIG, bytes(3000))])
    root = tmp_path / "results"
    monkeypatch.setenv("MAX_FILE_MB", "0.002")  # 2097 bytes
    assert main(["unpack", "--results-root", str(root), str(bundle)]) == EXIT_USAGE
    assert "over the per-file limit of 2097 bytes (0.002 MB)" in capsys.readouterr().err
    assert main(["unpack", "--results-root", str(root), "--max-file-mb", "0.003", str(bundle)]) == EXIT_OK
    assert (root / BIG).read_bytes() == bytes(3000)
    assert main(["unpack", "--results-root", str(root), "--max-file-mb", "0", str(bundle)]) == EXIT_USAGE
    assert "must be above 0" in capsys.readouterr().err


def test_unpack_per_file_limit_spares_the_manifest_as_pack_does(tmp_path: Path) -> None:
    bundle = write_members(
        tmp_path / bundle_name(1, "full"), [Member(MANIFEST_NAME, bytes(5000)), Member(GOOD, b"1")]
    )
    root = tmp_path / "results"
    unpack_bundles(str(root), [str(bundle)], Limits(max_file_bytes=1000))
    assert (root / MANIFEST_NAME).stat().st_size == 5000


def test_unpack_total_limit_names_the_member_that_crosses_it(tmp_path: Path) -> None:
    files = [Member(f"ModelA/checkpoint-{i}/metrics.json", bytes(400)) for i in range(10)]
    bundle = write_members(tmp_path / bundle_name(1, "full"), files)
    root = tmp_path / "results"
    with pytest.raises(UserError) as caught:
        unpack_bundles(str(root), [str(bundle)], Limits(max_bytes=2000))
    assert caught.value.message.endswith(
        "member 'ModelA/checkpoint-5/metrics.json' takes the bundle over 2000 bytes uncompressed"
    )
    assert caught.value.hint == "if that much is expected, raise --max-bytes (UNPACK_MAX_BYTES)"
    assert _only_bookkeeping(root)


def test_unpack_total_default_is_sized_for_a_large_lab_and_stops_a_disk_filler() -> None:
    """5,000 models x 200 checkpoints at the sample tree's ~470 bytes each fit; 10 GiB does not."""
    sample_per_checkpoint = 16_384 / 35  # measured: metrics.json + metrics.tsv of the 35 sample checkpoints
    large_lab = 5_000 * 200 * sample_per_checkpoint + 5_000 * 530  # plus the manifest's entries
    assert 2 * large_lab < DEFAULT_MAX_BUNDLE_BYTES < 10 * 1024**3
    assert Limits().max_bytes == DEFAULT_MAX_BUNDLE_BYTES


def test_unpack_refuses_a_lying_size_header_before_reading_data(tmp_path: Path) -> None:
    """A header declaring 1 TiB with no data behind it: refused by the size, not by a read."""
    bundle = write_members(
        tmp_path / bundle_name(1, "full"), [Member(GOOD, b"1"), Member(BIG, b"tiny", declared=2**40)]
    )
    root = tmp_path / "results"
    with pytest.raises(UserError, match=f"member '{BIG}' is 1099511627776 bytes, over the per-file limit"):
        unpack_bundles(str(root), [str(bundle)])
    assert _only_bookkeeping(root)


def test_unpack_refuses_data_shorter_than_its_header_declares(tmp_path: Path) -> None:
    path = tmp_path / bundle_name(1, "full")
    write_gz(path, [member_bytes(Member(GOOD, b"1")), member_bytes(Member(BIG, bytes(100), declared=4000))])
    root = tmp_path / "results"
    with pytest.raises(UserError, match="not a readable tar.gz"):
        unpack_bundles(str(root), [str(path)])
    assert _only_bookkeeping(root)


@pytest.mark.parametrize(
    "kind",
    [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE],
    ids=["longname", "pax", "pax-global"],
)
def test_unpack_refuses_a_header_bomb_without_reading_it_into_memory(tmp_path: Path, kind: bytes) -> None:
    """A 64 MiB header of zeros (a 64 KB bundle) that tarfile would read whole into one string."""
    bomb = 64 * 1024 * 1024
    path = write_gz(tmp_path / bundle_name(1, "full"), header_bomb(kind, bomb))
    assert path.stat().st_size < 1024 * 1024
    root = tmp_path / "results"
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as caught:
            unpack_bundles(str(root), [str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "before its first member, its tar stream expands past the 16384 bytes" in caught.value.message
    assert peak < bomb // 8
    assert _only_bookkeeping(root)


def test_unpack_later_full_bundle_applies_after_a_refused_one(tmp_path: Path) -> None:
    root = tmp_path / "results"
    first = write_members(tmp_path / "in" / bundle_name(1, "full"), [Member(GOOD, b"1")])
    unpack_bundles(str(root), [str(first)])
    bad = write_members(tmp_path / "in" / bundle_name(2, "delta"), [Member(BIG, b"x", declared=2**33)])
    with pytest.raises(UserError, match="over the per-file limit"):
        unpack_bundles(str(root), [str(first), str(bad)])
    assert (root / GOOD).read_bytes() == b"1" and load_ledger(str(root)).applied_seq == 1
    full = write_members(tmp_path / "in2" / bundle_name(3, "full"), [Member(GOOD, b"3"), Member(BIG, b"ok")])
    assert unpack_bundles(str(root), [str(full)]).applied == [full.name]
    assert (root / GOOD).read_bytes() == b"3" and (root / BIG).read_bytes() == b"ok"


def test_unpack_refuses_a_bundle_changed_after_validation_and_leaves_no_staging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validated, then swapped for one whose member is larger: extraction refuses it and cleans up."""
    path = write_members(tmp_path / bundle_name(1, "full"), [Member(GOOD, b"1"), Member(BIG, b"small")])
    real_validate = unpack.validate_bundle

    def validate_then_swap(bundle_path: str, limits: Limits) -> object:
        contents = real_validate(bundle_path, limits)
        write_members(Path(bundle_path), [Member(GOOD, b"1"), Member(BIG, b"much larger now")])
        return contents

    monkeypatch.setattr(unpack, "validate_bundle", validate_then_swap)
    root = tmp_path / "results"
    with pytest.raises(UserError, match=f"member '{BIG}' changed since it was validated"):
        unpack_bundles(str(root), [str(path)])
    assert _only_bookkeeping(root) and not (root / STAGING_DIR).exists()


def test_extract_file_writes_exactly_the_declared_size(tmp_path: Path) -> None:
    """Even if the member's reader had more to give, only ``size`` bytes reach the staged file."""

    class _Tar:
        def extractfile(self, member: tarfile.TarInfo) -> io.BytesIO:
            return io.BytesIO(b"x" * 100)

    member = tarfile.TarInfo("a")
    member.size = 10
    target = tmp_path / "staged" / "a"
    staging._extract_file(_Tar(), member, str(target))  # type: ignore[arg-type]
    assert target.read_bytes() == b"x" * 10


def test_validate_counts_skipped_members_toward_the_total(tmp_path: Path) -> None:
    """A skipped member's data is still decompressed to get past it, so it counts."""
    odd = b"Caf\xe9".decode("utf-8", "surrogateescape")
    path = write_members(tmp_path / bundle_name(1, "full"), [Member(GOOD, b"1"), Member(odd, bytes(900))])
    assert validate_bundle(str(path)).total_bytes == 901
    with pytest.raises(Exception, match="takes the bundle over 500 bytes"):
        validate_bundle(str(path), Limits(max_bytes=500))
    assert os.path.getsize(path) < 1000


def test_unpack_refuses_a_tar_that_goes_on_after_a_damaged_header(tmp_path: Path) -> None:
    """A size declared short leaves data where the next header should be: tarfile would just stop."""
    path = write_members(
        tmp_path / bundle_name(1, "full"),
        [Member(GOOD, b"1"), Member(BIG, b"A" * 1500, declared=10), Member("ModelA/after.json", b"2")],
    )
    root = tmp_path / "results"
    with pytest.raises(UserError, match=f"after member '{BIG}', its tar stream holds a damaged header"):
        unpack_bundles(str(root), [str(path)])
    assert _only_bookkeeping(root)


def test_unpack_refuses_a_tar_without_its_end_and_a_gzip_with_a_bad_crc(tmp_path: Path) -> None:
    root = tmp_path / "results"
    no_end = write_gz(tmp_path / "a" / bundle_name(1, "full"), [member_bytes(Member(GOOD, b"1"))])
    with pytest.raises(UserError, match="ends without an end-of-archive block"):
        unpack_bundles(str(root), [str(no_end)])
    bad_crc = write_members(tmp_path / "b" / bundle_name(1, "full"), [Member(GOOD, b"1")])
    raw = bytearray(bad_crc.read_bytes())
    raw[-8] ^= 0xFF  # the gzip trailer's CRC-32
    bad_crc.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="not a readable tar.gz.*CRC"):
        unpack_bundles(str(root), [str(bad_crc)])
    assert _only_bookkeeping(root)


def test_unpack_accepts_a_gnu_tar_with_a_large_blocking_factor(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "ModelA" / "checkpoint-100").mkdir(parents=True)
    (tree / GOOD).write_bytes(b"1")
    bundle = tmp_path / bundle_name(1, "full")
    subprocess.run(["tar", "-b", "128", "-czf", str(bundle), "-C", str(tree), GOOD], check=True)
    root = tmp_path / "results"
    assert unpack_bundles(str(root), [str(bundle)]).applied == [bundle.name]
    assert (root / GOOD).read_bytes() == b"1"
