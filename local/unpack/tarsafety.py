"""Validation of untrusted bundle tarballs, done in full before a single byte is extracted.

A bundle comes from another machine over the network, so every member is checked: only
regular files and directories, relative paths without ``..``, no NUL or backslash, no
duplicates, no file where another member needs a directory, no name that would overwrite
the unpacker's own bookkeeping, bounded member count, per-file size (pack's own
``--max-file-mb``; the manifest is exempt, as in pack) and total size. Sizes are checked on
each header before its data is read, and the stream is read through :mod:`local.unpack.stream`,
so neither a lying header nor a gzip bomb can make it expand further. One bad member refuses
the whole bundle.

One kind of member is skipped instead, with a warning: a name that is not valid UTF-8 (an
older packer's or ``tar czf``'s bundle of a folder named in Latin-1, say). Such a name cannot
be written to the journal or the ledger (JSON), nor be a ``model_dir`` in the manifest, nor a
W&B run, so nothing downstream could ever use the file; refusing the bundle instead would block
every later bundle (they apply in sequence) until the training machine is fixed; pack is to
skip such names as well (issue 12). Every other rule is checked first, so an unsafe member is
refused even when its name is also undecodable.
"""

from __future__ import annotations

import logging
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from local.unpack.stream import BLOCK, REGULAR_TYPES, BoundedStream, StreamBudgetError, members, open_bundle
from remote.contract.names import MANIFEST_NAME, UNPACK_RESERVED
from remote.contract.tree import (
    DEFAULT_MAX_BUNDLE_BYTES,
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_MEMBERS,
    is_utf8,
    shown_name,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = DEFAULT_MAX_BUNDLE_BYTES
DEFAULT_MAX_FILE_BYTES = int(DEFAULT_MAX_FILE_MB * 1024 * 1024)
# tar pads its end with zeros to a whole record: 10 KiB by default, 64 KiB with ``tar -b 128``.
TRAILER_ALLOWANCE = 64 * 1024
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
# What reading a damaged bundle can raise, besides the rules' own UnsafeBundleError.
STREAM_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, StreamBudgetError)
# repr() shows an undecodable byte (kept by tarfile as a lone surrogate) as \udcXX; show \xXX.


class UnsafeBundleError(ValueError):
    """The bundle breaks a safety rule; it is refused as a whole."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Limits:
    """Bounds a single bundle must stay within."""

    max_members: int = DEFAULT_MAX_MEMBERS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


@dataclass
class BundleContents:
    """What a validated bundle holds: files to apply (path -> size), and members skipped.

    ``total_bytes`` counts every regular member, skipped ones too: it is what the stream expands to.
    """

    files: Dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0
    skipped: List[str] = field(default_factory=list)


def normalise_name(raw: str) -> str:
    """Given a tar member name, return it as a clean relative path or raise UnsafeBundleError."""
    if "\x00" in raw or "\\" in raw:
        raise UnsafeBundleError(f"member {shown_name(raw)} has a NUL or backslash in its name")
    if raw.startswith("/"):
        raise UnsafeBundleError(f"member {shown_name(raw)} has an absolute path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeBundleError(f"member {shown_name(raw)} climbs out of the results root ('..')")
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise UnsafeBundleError(f"member {shown_name(raw)} has a path component over 255 bytes")
    name = "/".join(parts)
    if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise UnsafeBundleError(f"member {shown_name(raw[:80])} has a path over 4096 bytes")
    if parts and parts[0] in UNPACK_RESERVED:
        raise UnsafeBundleError(f"member {shown_name(raw)} would overwrite the unpacker's bookkeeping")
    return name


def _kind_problem(member: tarfile.TarInfo) -> str:
    """Given a member, return why its type is refused, or '' when it is a file or directory."""
    if member.sparse is not None:
        return "is a sparse file"
    if member.type in REGULAR_TYPES or member.isdir():
        return ""
    if member.issym() or member.islnk():
        return f"is a link (to {shown_name(member.linkname)})"
    if member.isdev():
        return "is a device or FIFO"
    return f"has an unsupported type {member.type!r}"


def _check_size(member: tarfile.TarInfo, name: str, contents: BundleContents, limits: Limits) -> None:
    """Given a regular member's header, count its size or refuse it, before its data is read."""
    if member.size > limits.max_file_bytes and name != MANIFEST_NAME:
        raise UnsafeBundleError(
            f"member {shown_name(member.name)} is {member.size} bytes, over the per-file limit of "
            f"{limits.max_file_bytes} bytes ({limits.max_file_bytes / 1024**2:.4g} MB)",
            "pack never sends a file that large; if the training machine packs with a larger "
            "--max-file-mb, give unpack the same (--max-file-mb or MAX_FILE_MB)",
        )
    contents.total_bytes += member.size
    if contents.total_bytes > limits.max_bytes:
        raise UnsafeBundleError(
            f"member {shown_name(member.name)} takes the bundle over {limits.max_bytes} bytes uncompressed",
            "if that much is expected, raise --max-bytes (UNPACK_MAX_BYTES)",
        )


def _check_member(member: tarfile.TarInfo, contents: BundleContents, dirs: Set[str], limits: Limits) -> None:
    """Given one member and what was seen so far, record it, skip it, or raise UnsafeBundleError."""
    problem = _kind_problem(member)
    if problem:
        raise UnsafeBundleError(f"member {shown_name(member.name)} {problem}")
    name = normalise_name(member.name)
    if not member.isdir():
        _check_size(member, name, contents, limits)
    if not is_utf8(name):
        contents.skipped.append(shown_name(member.name))
        return
    if member.isdir():
        if name in contents.files:
            raise UnsafeBundleError(f"member {shown_name(member.name)} is both a file and a directory")
        dirs.add(name)
        return
    if not name:
        raise UnsafeBundleError(f"member {shown_name(member.name)} is a file without a name")
    if name in contents.files or name in dirs:
        raise UnsafeBundleError(f"member {shown_name(member.name)} appears twice in the bundle")
    contents.files[name] = member.size


def _check_tree_shape(contents: BundleContents, dirs: Set[str]) -> None:
    """Given every file, refuse a file whose path another member uses as a directory."""
    parents: Set[str] = set(dirs)
    for name in contents.files:
        parts = name.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = sorted(parents.intersection(contents.files))
    if clash:
        raise UnsafeBundleError(
            f"member {shown_name(clash[0])} is a file but other members need it as a directory"
        )


def _where(last: Optional[str]) -> str:
    """Given the name of the last member read (if any), say where in the bundle a problem is."""
    return "before its first member" if last is None else f"after member {shown_name(last)}"


def _check_end(tar: tarfile.TarFile, stream: BoundedStream, where: str) -> None:
    """Given a bundle read to its last member, require the rest of the stream to be zero blocks.

    tarfile ends an archive quietly at a damaged header, so a cut or corrupted tar would pass as
    a shorter one; real writers end with zero blocks and pad with zeros. Reading to the end also
    makes gzip check its CRC. The budget bounds the read.
    """
    stream.grant(TRAILER_ALLOWANCE)
    stream.seek(tar.offset)
    zero_bytes = 0
    while block := stream.read(BLOCK):
        if block.count(0) != len(block):
            raise UnsafeBundleError(f"{where}, its tar stream holds a damaged header (a corrupt or cut tar)")
        zero_bytes += len(block)
    if zero_bytes == 0:
        raise UnsafeBundleError(f"{where}, its tar stream ends without an end-of-archive block (cut short?)")


def validate_bundle(path: str, limits: Limits = Limits()) -> BundleContents:
    """Given a bundle file, read every member header and return its contents if all are safe.

    Raises UnsafeBundleError naming the first offending member; nothing is extracted here.
    """
    contents = BundleContents()
    dirs: Set[str] = set()
    count, last = 0, None
    try:
        with open_bundle(path) as (tar, stream):
            for member in members(tar, stream):
                count += 1
                if count > limits.max_members:
                    raise UnsafeBundleError(
                        f"member {shown_name(member.name)} is past the limit of {limits.max_members} members",
                        "if that many are expected, raise --max-members (UNPACK_MAX_MEMBERS)",
                    )
                _check_member(member, contents, dirs, limits)
                last = member.name
            _check_end(tar, stream, _where(last))
    except StreamBudgetError as exc:
        raise UnsafeBundleError(f"{_where(last)}, {exc}") from exc
    except STREAM_ERRORS as exc:
        raise UnsafeBundleError(f"{path} is not a readable tar.gz ({exc})") from exc
    _check_tree_shape(contents, dirs)
    return contents
