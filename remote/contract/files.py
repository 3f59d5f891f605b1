"""Small file-system helpers both roles use: atomic writes, exclusive locks, digests, timestamps.

Every bookkeeping file of either role is written through :func:`write_json_atomic`, so a kill at
any moment leaves the old file or the new one, never half of one. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

# A manifest or overrides file is a few KB to a few MB; a bigger one is not what it claims to be.
MAX_JSON_BYTES = 64 * 1024 * 1024


class LockHeldError(RuntimeError):
    """Another process holds the lock this one needs."""


def now_iso() -> str:
    """Return the current UTC time as ISO 8601 with seconds precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def fsync_dir(path: str) -> None:
    """Given a directory, flush its entries so a completed rename survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Given a path and bytes, write them via a temporary file and rename (all or nothing).

    ``mode`` is set explicitly because the temporary file is created 0600, and files such as
    the manifest and the outbox index must stay readable by other accounts (the SFTP user).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    fsync_dir(directory)


def write_json_atomic(path: str, document: Any, mode: int = 0o644) -> None:
    """Given a path and a JSON-able document, write it atomically (indented, UTF-8)."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"), mode)


@contextlib.contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[None]:
    """Given a lock file path, hold an exclusive non-blocking lock on it or raise LockHeldError.

    The lock is released by the kernel when the process dies, so a killed process never
    leaves a stale lock behind.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise LockHeldError(
                f"another {what} (pid {holder}) is running on {path}; wait for it or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def copy_range(
    path: str, offset: int, size: int, write: Callable[[bytes], Any], chunk: int = 1 << 20
) -> None:
    """Given a file and a byte range of it, pass exactly those bytes to ``write``, a chunk at a time.

    Raises OSError naming the file when it ends before the range does (it shrank meanwhile).
    """
    with open(path, "rb") as source:
        source.seek(offset)
        remaining = size
        while remaining:
            block = source.read(min(remaining, chunk))
            if not block:
                raise OSError(f"{path} ended {remaining} bytes before the range it was to copy")
            write(block)
            remaining -= len(block)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Given a file, return the hex SHA-256 of its content (read in chunks: bundles can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Given a JSON file a person or another program wrote, return its document.

    Raises OSError when it cannot be read, and ValueError with a one-line reason for anything
    that is not sound JSON: bad syntax, not UTF-8, too large, or nested so deeply that the
    parser would exhaust the stack (a RecursionError otherwise escapes as a traceback).
    """
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise ValueError("nested too deeply to be a manifest or overrides file") from None
