"""A bundle's tar stream read on a budget: it expands only as far as its checked headers allow.

gzip turns a few kilobytes into gigabytes, and tarfile reads some headers whole before the
validator sees any member: a GNU long-name or pax header declaring 8 GB is read as one 8 GB
string (measured: an 870 KB bundle made tarfile allocate 200 MB). So the decompressed stream is
wrapped. Its budget starts at one header's allowance and grows member by member: by the data a
regular file declares (which the validator bounds before anything reads it) plus the next
header's allowance. A read or seek past the budget raises :class:`StreamBudgetError` before a byte
of it is decompressed. Validation and extraction both read through :func:`open_bundle` and
:func:`members`, so neither can be made to expand the stream further than the checked headers.
"""

from __future__ import annotations

import contextlib
import gzip
import tarfile
from typing import BinaryIO, Iterator, Tuple

# Room for one member's headers. The largest a good bundle needs is a 4096-byte name as a GNU
# long-name or pax record: 512 + 4608 + 512 bytes. Everything beyond that is not a name.
HEADER_ALLOWANCE = 16 * 1024
# The only members whose data tarfile skips over (and which the validator accepts).
REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
BLOCK = tarfile.BLOCKSIZE


class StreamBudgetError(ValueError):
    """The tar stream expands beyond what its members' headers declare."""


class BoundedStream:
    """A read-only view of a decompressed stream that refuses to go past its budget."""

    def __init__(self, raw: BinaryIO, budget: int) -> None:
        self._raw = raw
        self.budget = budget

    def grant(self, more: int) -> None:
        """Given a number of bytes, let the stream expand that much further."""
        self.budget += more

    def _check(self, end: int) -> None:
        if end > self.budget:
            raise StreamBudgetError(
                f"its tar stream expands past the {self.budget} bytes its headers declare (to {end})"
            )

    def read(self, size: int = -1) -> bytes:
        """Given a size, read it, refusing first if that would go past the budget."""
        # tarfile always reads in sized pieces; an unsized read would decompress everything.
        self._check(self._raw.tell() + size if size >= 0 else self.budget + 1)
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Given an offset (from the start or the current position), seek, within the budget."""
        target = offset + (self._raw.tell() if whence == 1 else 0)
        self._check(target if whence in (0, 1) else self.budget + 1)
        return self._raw.seek(target)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def data_blocks(member: tarfile.TarInfo) -> int:
    """Given a member, return the bytes its data takes in the stream (tarfile skips only these)."""
    if member.type not in REGULAR_TYPES:
        return 0
    return -(-member.size // BLOCK) * BLOCK


@contextlib.contextmanager
def open_bundle(path: str) -> Iterator[Tuple[tarfile.TarFile, BoundedStream]]:
    """Given a bundle path, yield its tar file read through a budgeted stream."""
    with gzip.open(path, "rb") as raw:
        stream = BoundedStream(raw, HEADER_ALLOWANCE)  # type: ignore[arg-type]
        with tarfile.open(fileobj=stream, mode="r:") as tar:  # type: ignore[call-overload]
            yield tar, stream


def members(tar: tarfile.TarFile, stream: BoundedStream) -> Iterator[tarfile.TarInfo]:
    """Given an open bundle, yield its members in order, each growing the budget by what it declares.

    The grant happens before the member is yielded, so the caller must refuse a member it does
    not accept before asking for the next one (or reading its data).
    """
    for member in tar:
        # tarfile keeps every header it read; a huge bundle must stay small in memory.
        tar.members = []  # type: ignore[attr-defined]
        stream.grant(data_blocks(member) + HEADER_ALLOWANCE)
        yield member
