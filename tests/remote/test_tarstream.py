"""The bundle's bytes: the same tar stream tarfile writes, in one gzip member, from pieces made apart."""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from pathlib import Path
from typing import List, Tuple

import pytest

from remote.tarstream import GzipAssembler, PieceWriter, Spool, crc32_combine, member_header

Member = Tuple[str, bytes, int]


def _tarfile_bytes(members: List[Member]) -> bytes:
    """What ``tarfile`` (the packer before) writes for these members, uncompressed."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mtime in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _stitched(tmp_path: Path, groups: List[List[Member]]) -> bytes:
    """Each group compressed as its own piece (as units are), then assembled into one gzip file."""
    spool = Spool(str(tmp_path / "spool"))
    pieces = []
    for group in groups:
        writer = PieceWriter(spool)
        for name, data, mtime in group:
            writer.add_member(name, data, mtime)
        pieces.append(writer.finish())
    out = io.BytesIO()
    assembler = GzipAssembler(out)
    for piece in pieces:
        assembler.append(piece)
    assembler.finish()
    spool.close()
    return out.getvalue()


@pytest.mark.parametrize(
    "name, size, mtime",
    [
        ("a/checkpoint-1/metrics.json", 412, 1_700_000_000),
        ("x" * 100, 0, 0),  # the longest name a plain header holds
        ("x" * 101, 1, 1),  # longer: tarfile adds a pax header
        ("caf\u00e9/metrics.json", 3, 5),  # not ASCII: pax header
        ("a", 8**11, 1),  # size beyond 11 octal digits: pax header
        ("a", 1, -5),  # mtime before 1970: pax header
        ("a b\\c", 7, 8**11 - 1),
    ],
)
def test_tarstream_member_header_is_tarfiles(name: str, size: int, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    assert member_header(name, size, mtime) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize("sizes", [(0, 0), (0, 5), (5, 0), (1, 1), (1000, 70_000), (3, 1 << 20)])
def test_tarstream_crc32_combine_equals_crc_of_the_concatenation(sizes: Tuple[int, int]) -> None:
    first, second = os.urandom(sizes[0]), os.urandom(sizes[1])
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def test_tarstream_pieces_make_one_gzip_member_holding_tarfiles_stream(tmp_path: Path) -> None:
    members = [
        (f"m{i}/checkpoint-{i}/metrics.json", os.urandom(i * 37 % 3000), 1_700_000_000 + i) for i in range(60)
    ]
    members.append(("n" * 120 + "/long.json", b"{}", 1))
    groups = [members[:20], [], members[20:21], members[21:]]  # an empty unit takes no bytes
    data = _stitched(tmp_path, groups)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert inflate.decompress(data) == _tarfile_bytes(members)
    assert inflate.eof and inflate.unused_data == b""  # a single gzip member, nothing after it
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        read = [(m.name, tar.extractfile(m).read(), int(m.mtime), m.mode) for m in tar]  # type: ignore[union-attr]
    assert read == [(name, body, mtime, 0o644) for name, body, mtime in members]


def test_tarstream_empty_bundle_is_an_empty_archive(tmp_path: Path) -> None:
    assert zlib.decompress(_stitched(tmp_path, [[]]), 16 + zlib.MAX_WBITS) == _tarfile_bytes([])
