"""Scan a results tree: which directories are models, and which files could travel.

Real trees are messy (hidden folders, ``checkpoint-best``, symlinks out of the tree, files
that vanish or cannot be read). Nothing here raises for one bad entry: every entry that is
passed over is reported as a :class:`Skipped` with the reason, and the scan goes on.
Only ``stat`` is used here; file contents are never read. ``pack`` reads one directory at a
time (:func:`list_directory`, :func:`stat_known`), so its memory never grows with the tree.
Standard library only.
"""

from __future__ import annotations

import operator
import os
import stat
from dataclasses import dataclass, field
from typing import Iterable, List, NamedTuple, Optional, Tuple

from remote.contract.tree import CHECKPOINT_PREFIX, checkpoint_step, is_utf8, printable

# The bundle format allows only UTF-8 member names (remote.contract.outbox), and the manifest is
# JSON text, so such an entry is left where it is and named in the skipped list instead.
NOT_UTF8 = "name is not valid UTF-8 (bytes shown as \\xNN), never packed; rename it"
_BY_NAME = operator.attrgetter("name")


@dataclass(frozen=True)
class Skipped:
    """An entry the scan passed over, and why (relative to the results root, as ``os`` named it)."""

    path: str
    reason: str

    def line(self) -> str:
        """Given a skipped entry, return the one line that reports it, its path in printable form."""
        return f"skipped {printable(self.path)}: {self.reason}"


class FileStat(NamedTuple):
    """What change detection needs to know about a file, without reading it (a tuple: cheap)."""

    size: int
    mtime_ns: int


def _scandir(path: str) -> Tuple[List[os.DirEntry], Optional[str]]:
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=_BY_NAME), None
    except OSError as exc:
        return [], exc.strerror or str(exc)


def _is_real_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def model_checkpoints(model_path: str) -> Tuple[List[int], List[Skipped]]:
    """Given a model directory, return its numeric checkpoint steps (sorted) and what was skipped."""
    steps: List[int] = []
    skipped: List[Skipped] = []
    entries, error = _scandir(model_path)
    model_dir = os.path.basename(model_path)
    if error:
        return [], [Skipped(model_dir, f"unreadable directory ({error})")]
    for entry in entries:
        if not entry.name.startswith(CHECKPOINT_PREFIX):
            continue
        label = f"{model_dir}/{entry.name}"
        step = checkpoint_step(entry.name)
        if not is_utf8(entry.name):
            skipped.append(Skipped(label, NOT_UTF8))
        elif entry.is_symlink():
            skipped.append(Skipped(label, "symlink (not followed)"))
        elif step is None:
            skipped.append(Skipped(label, "not a numeric checkpoint-<step> folder"))
        elif _is_real_dir(entry):
            steps.append(step)
    return sorted(steps), skipped


def _has_checkpoint(model_path: str) -> bool:
    """Given a directory, tell whether it holds a real ``checkpoint-<step>`` folder, reading no further."""
    try:
        with os.scandir(model_path) as entries:
            return any(
                entry.name.startswith(CHECKPOINT_PREFIX)
                and checkpoint_step(entry.name) is not None
                and _is_real_dir(entry)
                for entry in entries
            )
    except OSError:
        return False


def discover_models(results_root: str, list_skipped: bool = True) -> Tuple[List[str], List[Skipped]]:
    """Given a results root, return the model directory names (sorted) and what was skipped.

    A model is a real (non-symlink, non-hidden) directory holding at least one
    ``checkpoint-<step>`` directory. Without ``list_skipped`` a model directory is read only up
    to its first checkpoint (and what it skips is not listed): ``pack`` walks it all anyway.
    """
    models: List[str] = []
    skipped: List[Skipped] = []
    entries, error = _scandir(results_root)
    if error:
        raise OSError(f"cannot list results root {results_root}: {error}")
    for entry in entries:
        if entry.name.startswith("."):
            continue  # the manifest, ledgers and tool folders live here on purpose
        if not is_utf8(entry.name):
            if _is_real_dir(entry):  # a file with such a name is no model; pack reports it
                skipped.append(Skipped(entry.name, NOT_UTF8))
            continue
        if entry.is_symlink():
            skipped.append(Skipped(entry.name, "symlink (not followed)"))
            continue
        if not _is_real_dir(entry):
            continue
        if not list_skipped:
            models += [entry.name] if _has_checkpoint(entry.path) else []
            continue
        steps, inner = model_checkpoints(entry.path)
        skipped.extend(inner)
        if steps:
            models.append(entry.name)
        elif not any(s.path == entry.name for s in inner):
            skipped.append(Skipped(entry.name, "no checkpoint-<step> folder"))
    return models, skipped


@dataclass
class Listing:
    """One directory as ``pack`` sees it: its regular files, its subfolders, what it passed over.

    ``clean`` is False when anything in it was passed over or moved while it was read: such a
    directory is always listed again next time, so what it passed over is reported again.
    ``readable`` is False when the directory itself could not be listed.
    """

    files: List[Tuple[str, FileStat]] = field(default_factory=list)
    subdirs: List[str] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    clean: bool = True
    readable: bool = True


def list_directory(path: str, relative: str) -> Listing:
    """Given a directory (and its path relative to the root), return what it holds, sorted by name.

    Hidden entries (leading dot) are not shipped: writers use them for temporary files. Symlinks
    are never followed and special files never travel; each is listed as skipped, and so is a
    directory that cannot be read.
    """
    entries, error = _scandir(path)
    if error:
        skipped = [Skipped(relative or ".", f"unreadable directory ({error})")]
        return Listing(skipped=skipped, clean=False, readable=False)
    listing = Listing()
    for entry in entries:
        if entry.name.startswith("."):
            continue
        problem = _entry_problem(entry, listing)
        if problem:
            listing.skipped.append(Skipped(f"{relative}/{entry.name}" if relative else entry.name, problem))
            listing.clean = False
    return listing


def _entry_problem(entry: os.DirEntry, listing: Listing) -> str:
    """Given an entry, add it to the listing as a file or subfolder, or return why it cannot be."""
    if not is_utf8(entry.name):  # nor is anything below such a directory
        return NOT_UTF8
    try:
        if entry.is_dir(follow_symlinks=False):  # from the directory itself, without a stat
            listing.subdirs.append(entry.name)
            return ""
        info = entry.stat(follow_symlinks=False)
    except OSError as exc:
        return f"cannot stat ({exc.strerror})"
    if stat.S_ISREG(info.st_mode):
        listing.files.append((entry.name, FileStat(info.st_size, info.st_mtime_ns)))
        return ""
    return "symlink (not followed)" if stat.S_ISLNK(info.st_mode) else "not a regular file"


def stat_known(path: str, files: Iterable[str]) -> Listing:
    """Given a directory whose entries have not changed and its regular files' names, stat them.

    A name that vanished or is no longer a regular file makes the listing unclean (the directory
    changed after all, so it is listed next time); it is left out.
    """
    listing = Listing()
    for name in files:
        try:
            info = os.lstat(f"{path}/{name}")
        except OSError:
            listing.clean = False
            continue
        if stat.S_ISREG(info.st_mode):
            listing.files.append((name, FileStat(info.st_size, info.st_mtime_ns)))
        else:
            listing.clean = False
    return listing
