"""Validation of untrusted bundle tarballs, done in full before a single byte is extracted.

A bundle comes from another machine over the network, so every member is checked: only
regular files and directories, relative paths without ``..``, no NUL or backslash, no
duplicates, no file where another member needs a directory, no name that would overwrite
the unpacker's own bookkeeping, and bounded member count and total size (a tar or gzip bomb
is refused by its headers, before extraction). One bad member refuses the whole bundle.
"""

from __future__ import annotations

import logging
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Dict, Set

from remote.contract.names import UNPACK_RESERVED

log = logging.getLogger(__name__)

DEFAULT_MAX_MEMBERS = 500_000
DEFAULT_MAX_BYTES = 10 * 1024**3
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)


class UnsafeBundleError(ValueError):
    """The bundle breaks a safety rule; it is refused as a whole."""


@dataclass(frozen=True)
class Limits:
    """Bounds a single bundle must stay within."""

    max_members: int = DEFAULT_MAX_MEMBERS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass
class BundleContents:
    """What a validated bundle holds: its regular files (normalised path -> size)."""

    files: Dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0


def normalise_name(raw: str) -> str:
    """Given a tar member name, return it as a clean relative path or raise UnsafeBundleError."""
    if "\x00" in raw or "\\" in raw:
        raise UnsafeBundleError(f"member {raw!r} has a NUL or backslash in its name")
    if raw.startswith("/"):
        raise UnsafeBundleError(f"member {raw!r} has an absolute path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeBundleError(f"member {raw!r} climbs out of the results root ('..')")
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise UnsafeBundleError(f"member {raw!r} has a path component over 255 bytes")
    name = "/".join(parts)
    if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise UnsafeBundleError(f"member {raw[:80]!r} has a path over 4096 bytes")
    if parts and parts[0] in UNPACK_RESERVED:
        raise UnsafeBundleError(f"member {raw!r} would overwrite the unpacker's bookkeeping")
    return name


def _kind_problem(member: tarfile.TarInfo) -> str:
    """Given a member, return why its type is refused, or '' when it is a file or directory."""
    if member.type in REGULAR_TYPES or member.isdir():
        return ""
    if member.issym() or member.islnk():
        return f"is a link (to {member.linkname!r})"
    if member.isdev():
        return "is a device or FIFO"
    return f"has an unsupported type {member.type!r}"


def _check_member(member: tarfile.TarInfo, contents: BundleContents, dirs: Set[str], limits: Limits) -> None:
    """Given one member and what was seen so far, record it or raise UnsafeBundleError."""
    problem = _kind_problem(member)
    if problem:
        raise UnsafeBundleError(f"member {member.name!r} {problem}")
    name = normalise_name(member.name)
    if member.isdir():
        if name in contents.files:
            raise UnsafeBundleError(f"member {member.name!r} is both a file and a directory")
        dirs.add(name)
        return
    if not name:
        raise UnsafeBundleError(f"member {member.name!r} is a file without a name")
    if name in contents.files or name in dirs:
        raise UnsafeBundleError(f"member {member.name!r} appears twice in the bundle")
    contents.files[name] = member.size
    contents.total_bytes += member.size
    if contents.total_bytes > limits.max_bytes:
        raise UnsafeBundleError(
            f"member {member.name!r} takes the bundle over {limits.max_bytes} bytes uncompressed"
        )


def _check_tree_shape(contents: BundleContents, dirs: Set[str]) -> None:
    """Given every file, refuse a file whose path another member uses as a directory."""
    parents: Set[str] = set(dirs)
    for name in contents.files:
        parts = name.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = sorted(parents.intersection(contents.files))
    if clash:
        raise UnsafeBundleError(f"member {clash[0]!r} is a file but other members need it as a directory")


def validate_bundle(path: str, limits: Limits = Limits()) -> BundleContents:
    """Given a bundle file, read every member header and return its contents if all are safe.

    Raises UnsafeBundleError naming the first offending member; nothing is extracted here.
    """
    contents = BundleContents()
    dirs: Set[str] = set()
    count = 0
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                count += 1
                if count > limits.max_members:
                    raise UnsafeBundleError(
                        f"member {member.name!r} is past the limit of {limits.max_members} members"
                    )
                _check_member(member, contents, dirs, limits)
                # tarfile keeps every header it read; drop them so a huge bundle stays small in memory.
                tar.members = []  # type: ignore[attr-defined]
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UnsafeBundleError(f"{path} is not a readable tar.gz ({exc})") from exc
    _check_tree_shape(contents, dirs)
    return contents
