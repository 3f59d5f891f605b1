"""Resumable, hashed SFTP downloads: append to a ``.part`` file from where the last attempt stopped.

The SHA-256 is computed while the bytes arrive (the kept prefix of a partial file is hashed
first), so verifying a 200 MB bundle costs no second read of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import BinaryIO

import paramiko

from local.errors import TransientError
from local.progress import Progress

log = logging.getLogger(__name__)

# Small reads: paramiko joins prefetched blocks per read() call, and what one read() has gathered
# is lost if the connection breaks inside it, so resume points stay fine-grained.
READ_BLOCK = 64 * 1024
# 128 KiB read requests (OpenSSH serves up to 255 KiB; a server that answers short is still
# correct, paramiko re-reads the gap) with 128 in flight: 16 MiB in flight stays above the SSH
# window (local.transfer.sftp.WINDOW); at or below it paramiko's prefetch was measured to stall.
REQUEST_SIZE = 128 * 1024
PREFETCH_REQUESTS = 128


@dataclass(frozen=True)
class Download:
    """The outcome of one download attempt: bytes fetched now, and the whole file's size and hash."""

    fetched: int
    size: int
    sha256: str


def _hash_prefix(part_path: str) -> hashlib._Hash:
    """Given a partial file, return a SHA-256 object fed with its content."""
    digest = hashlib.sha256()
    with open(part_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def _start_offset(part_path: str, size: int) -> int:
    """Given the partial file and the expected size, return where to resume (0 if it is too long)."""
    offset = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    if offset > size:
        os.truncate(part_path, 0)
        return 0
    return offset


def download_resumable(sftp: paramiko.SFTPClient, remote_path: str, part_path: str, size: int) -> Download:
    """Given a remote file of known size, append what ``part_path`` lacks; return what was done."""
    offset = _start_offset(part_path, size)
    remote_size = sftp.stat(remote_path).st_size
    if remote_size != size:
        raise TransientError(
            f"remote {remote_path} is {remote_size} bytes but the outbox index says {size}",
            "the outbox may be mid-update or damaged; pull again later, or repack with --full",
        )
    with open(part_path, "ab") as out:
        digest = _hash_prefix(part_path)
        if offset < size:
            log.info("fetching %s from byte %d of %d", os.path.basename(remote_path), offset, size)
            fetched = _fetch(sftp, remote_path, out, digest, offset, size)
        else:
            fetched = 0
    return Download(fetched, offset + fetched, digest.hexdigest())


def _fetch(
    sftp: paramiko.SFTPClient,
    remote_path: str,
    out: BinaryIO,
    digest: hashlib._Hash,
    offset: int,
    size: int,
) -> int:
    """Given an open output, copy bytes ``offset..size`` of the remote file into it with read-ahead."""
    fetched = 0
    progress = Progress(os.path.basename(remote_path), size, " bytes")
    progress.advance(offset)
    with sftp.open(remote_path, "rb") as remote:
        remote.MAX_REQUEST_SIZE = REQUEST_SIZE
        remote.seek(offset)
        remote.prefetch(size, max_concurrent_requests=PREFETCH_REQUESTS)
        try:
            while offset + fetched < size:
                block = remote.read(min(READ_BLOCK, size - offset - fetched))
                if not block:
                    raise EOFError(f"remote file ended at byte {offset + fetched}")
                out.write(block)
                digest.update(block)
                fetched += len(block)
                progress.advance(len(block))
        finally:
            progress.close()
            out.flush()
            os.fsync(out.fileno())
    return fetched
