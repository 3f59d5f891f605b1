"""The bundle's bytes: tar members, compressed in independent pieces, stitched into one gzip member.

``pack`` compresses each batch of top-level folders of the results tree on its own (possibly in
another process) as a *piece*: raw deflate ending in a sync flush, so pieces concatenate into
one valid deflate stream (the way ``pigz`` works). :class:`GzipAssembler` writes the gzip header, appends
the pieces in order, combines their CRC-32s (:func:`crc32_combine`), and ends the tar archive
and the gzip member. The result is one ordinary gzip member holding one POSIX.1-2001 tar
archive, byte for byte the tar stream ``tarfile`` writes for the same members.

:func:`member_header` builds a member's 512-byte header from a template made by ``tarfile``
itself, patching only name, size, mtime and checksum (``tarfile`` takes some 30 µs per header,
a cost paid a million times per full bundle); anything the template cannot express (long or
non-ASCII names, out-of-range numbers) goes through ``tarfile``. Standard library only.
"""

from __future__ import annotations

import os
import struct
import tarfile
import time
import zlib
from dataclasses import dataclass
from typing import Any, List, Protocol

from remote.contract.files import copy_range

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: tarfile pads the archive to a multiple of this
MEMBER_MODE = 0o644
COMPRESS_LEVEL = 6
# A full bundle moves the whole tree: level 1 takes ~15% less time for ~60% more bytes (still a
# tenth of tar czf's). A delta is small: level 6 costs nothing noticeable and keeps it small.
FULL_COMPRESS_LEVEL = 1
DELTA_COMPRESS_LEVEL = COMPRESS_LEVEL
_ZEROS = bytes(BLOCK)
_FLUSH_AT = 256 * 1024  # tar bytes gathered before one compress call (each call has a fixed cost)
_COPY_CHUNK = 1 << 20
_CRC_POLY = 0xEDB88320  # CRC-32 (gzip), reflected


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, MEMBER_MODE
    return info


def _tarfile_header(name: str, size: int, mtime: int) -> bytes:
    return _tarinfo(name, size, mtime).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _template() -> bytes:
    """Return tarfile's header for an empty name, size and mtime, checksum field blank."""
    header = bytearray(_tarfile_header("", 0, 0))
    header[148:156] = b" " * 8
    header[124:148] = bytes(24)
    return bytes(header)


_TEMPLATE = _template()
_TEMPLATE_SUM = sum(_TEMPLATE)
_NUMBER_LIMIT = 8**11  # what an 11-digit octal field holds; beyond it tarfile writes a pax header


def _fast_header(name: bytes, size: int, mtime: int) -> bytes:
    size_field = b"%011o\0" % size
    mtime_field = b"%011o\0" % mtime
    checksum = _TEMPLATE_SUM + sum(name) + sum(size_field) + sum(mtime_field)
    return b"".join(
        (name, _ZEROS[: 100 - len(name)], _TEMPLATE[100:124], size_field, mtime_field)
        + (b"%06o\0 " % checksum, _TEMPLATE[156:])
    )


# If a future tarfile lays its header out differently, every header goes through tarfile.
_FAST = _fast_header(b"a/checkpoint-1/metrics.json", 1234, 1700000000) == _tarfile_header(
    "a/checkpoint-1/metrics.json", 1234, 1700000000
)


def member_header(name: str, size: int, mtime: int) -> bytes:
    """Given a member name, size and mtime (seconds), return the header ``tarfile`` would write."""
    if (
        _FAST
        and name.isascii()
        and len(name) <= 100
        and 0 <= size < _NUMBER_LIMIT
        and 0 <= mtime < _NUMBER_LIMIT
    ):
        return _fast_header(name.encode("ascii"), size, mtime)
    return _tarfile_header(name, size, mtime)


def archive_tail(length: int) -> bytes:
    """Given the tar bytes written so far, return the end-of-archive blocks and record padding."""
    end = length + 2 * BLOCK
    return bytes(2 * BLOCK + (-end % RECORD))


def _multmodp(a: int, b: int) -> int:
    """Given two polynomials modulo the CRC polynomial (reflected), return their product."""
    product, mask = 0, 1 << 31
    while mask:
        if a & mask:
            product ^= b
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1
        mask >>= 1
    return product


def _powers() -> List[int]:
    """Return x^(2^k) modulo the CRC polynomial for k = 0..31."""
    powers = [1 << 30]  # x^1
    for _ in range(31):
        powers.append(_multmodp(powers[-1], powers[-1]))
    return powers


_X2N = _powers()


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """Given CRC-32s of two byte strings and the second's length, return the CRC-32 of both.

    zlib's own algorithm (``crc32_combine``, which Python does not expose): multiply ``crc1``
    by x^(8 * length2) modulo the polynomial, then add ``crc2``.
    """
    shift, bits, k = 1 << 31, length2, 3  # x^(length2 * 2^3)
    while bits:
        if bits & 1:
            shift = _multmodp(_X2N[k & 31], shift)
        bits >>= 1
        k += 1
    return _multmodp(shift, crc1) ^ crc2


@dataclass(frozen=True)
class Piece:
    """One compressed piece: where its bytes are, their CRC-32 and length before compression."""

    path: str
    offset: int
    size: int
    crc: int
    length: int


class Spool:
    """An append-only scratch file of one process, written with plain ``os.write``.

    Nothing is buffered in the process, so once a piece is finished another process can read it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.offset = 0

    def write(self, data: bytes) -> None:
        """Given bytes, append them."""
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.offset += len(data)

    def close(self) -> None:
        """Close the file (the caller deletes it)."""
        os.close(self.fd)


class PieceWriter:
    """Given a spool, compress the tar bytes added to it into one piece (raw deflate, sync flush)."""

    def __init__(self, spool: Spool, level: int = COMPRESS_LEVEL) -> None:
        self._spool = spool
        self._start = spool.offset
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._pending: List[bytes] = []
        self._pending_size = 0
        self.crc = 0
        self.length = 0

    def add_member(self, name: str, data: bytes, mtime: int) -> None:
        """Given a member's name, content and mtime (seconds), add its header, data and padding."""
        size = len(data)
        if (
            _FAST
            and name.isascii()
            and len(name) <= 100
            and size < _NUMBER_LIMIT
            and 0 <= mtime < _NUMBER_LIMIT
        ):
            header = _fast_header(name.encode("ascii"), size, mtime)  # member_header's common case, inlined
        else:
            header = member_header(name, size, mtime)
        self._pending += (header, data, _ZEROS[: -size % BLOCK])
        self._pending_size += BLOCK + size
        if self._pending_size >= _FLUSH_AT:
            self._compress()

    def _compress(self) -> None:
        chunk = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        self.crc = zlib.crc32(chunk, self.crc)
        self.length += len(chunk)
        self._spool.write(self._compressor.compress(chunk))

    def finish(self) -> Piece:
        """Return the finished piece; an empty one takes no bytes at all."""
        self._compress()
        if self.length:
            self._spool.write(self._compressor.flush(zlib.Z_SYNC_FLUSH))
        return Piece(self._spool.path, self._start, self._spool.offset - self._start, self.crc, self.length)


class Writable(Protocol):
    """Anything bytes can be written to (a file, a hashing wrapper)."""

    def write(self, data: Any) -> Any: ...


class GzipAssembler:
    """Given an output file, write one gzip member from pieces appended in order.

    The header is the one ``gzip.GzipFile`` writes without a file name (mtime now).
    """

    def __init__(self, out: Writable, level: int = COMPRESS_LEVEL) -> None:
        self._out = out
        self._level = level
        extra = {9: b"\002", 1: b"\004"}.get(level, b"\000")
        out.write(b"\037\213\010\000" + struct.pack("<I", int(time.time())) + extra + b"\377")
        self.crc = 0
        self.length = 0

    def append(self, piece: Piece) -> None:
        """Given a finished piece, copy its bytes and account for its content."""
        copy_range(piece.path, piece.offset, piece.size, self._out.write, _COPY_CHUNK)
        self.crc = crc32_combine(self.crc, piece.crc, piece.length)
        self.length += piece.length

    def finish(self) -> None:
        """End the tar archive, the deflate stream and the gzip member."""
        tail = archive_tail(self.length)
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._out.write(compressor.compress(tail) + compressor.flush(zlib.Z_FINISH))
        self.crc = zlib.crc32(tail, self.crc)
        self.length += len(tail)
        self._out.write(struct.pack("<II", self.crc, self.length & 0xFFFFFFFF))
