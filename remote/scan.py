"""Scan a results tree: which directories are models, and which files could travel.

Real trees are messy (hidden folders, ``checkpoint-best``, symlinks out of the tree, files
that vanish or cannot be read). Nothing here raises for one bad entry: every entry that is
passed over is reported as a :class:`Skipped` with the reason, and the scan goes on.
Only ``stat`` is used here; file contents are never read. Standard library only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from remote.contract.outbox import is_utf8_name
from remote.contract.tree import CHECKPOINT_PREFIX, checkpoint_step

# The bundle format allows only UTF-8 member names (remote.contract.outbox), and the manifest is
# JSON text, so such an entry is left where it is and named in the skipped list instead.
NOT_UTF8 = "name is not valid UTF-8 (bytes shown as \\xNN), never packed; rename it"
# Shown as \xNN so that one skipped entry is always one line on any terminal.
_CONTROL_CHARS = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


@dataclass(frozen=True)
class Skipped:
    """An entry the scan passed over, and why (relative to the results root, as ``os`` named it)."""

    path: str
    reason: str

    def line(self) -> str:
        """Given a skipped entry, return the one line that reports it, its path in printable form."""
        return f"skipped {shown(self.path)}: {self.reason}"


def shown(path: str) -> str:
    """Given a path as ``os`` returns it, return it printable on one line.

    Bytes that are not UTF-8 and control characters (a newline in a name) become ``\\xNN``, so
    printing never fails on a strict terminal encoding and never spans lines.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace").translate(_CONTROL_CHARS)


@dataclass(frozen=True)
class FileStat:
    """What change detection needs to know about a file, without reading it."""

    size: int
    mtime_ns: int


def _scandir(path: str) -> Tuple[List[os.DirEntry], Optional[str]]:
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda e: e.name), None
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
        if not is_utf8_name(entry.name):
            skipped.append(Skipped(label, NOT_UTF8))
        elif entry.is_symlink():
            skipped.append(Skipped(label, "symlink (not followed)"))
        elif step is None:
            skipped.append(Skipped(label, "not a numeric checkpoint-<step> folder"))
        elif _is_real_dir(entry):
            steps.append(step)
    return sorted(steps), skipped


def discover_models(results_root: str) -> Tuple[List[str], List[Skipped]]:
    """Given a results root, return the model directory names (sorted) and what was skipped.

    A model is a real (non-symlink, non-hidden) directory holding at least one
    ``checkpoint-<step>`` directory.
    """
    models: List[str] = []
    skipped: List[Skipped] = []
    entries, error = _scandir(results_root)
    if error:
        raise OSError(f"cannot list results root {results_root}: {error}")
    for entry in entries:
        if entry.name.startswith("."):
            continue  # the manifest, ledgers and tool folders live here on purpose
        if not is_utf8_name(entry.name):
            if _is_real_dir(entry):  # a file with such a name is no model; pack reports it
                skipped.append(Skipped(entry.name, NOT_UTF8))
            continue
        if entry.is_symlink():
            skipped.append(Skipped(entry.name, "symlink (not followed)"))
            continue
        if not _is_real_dir(entry):
            continue
        steps, inner = model_checkpoints(entry.path)
        skipped.extend(inner)
        if steps:
            models.append(entry.name)
        elif not any(s.path == entry.name for s in inner):
            skipped.append(Skipped(entry.name, "no checkpoint-<step> folder"))
    return models, skipped


def walk_files(results_root: str) -> Iterator[Tuple[str, Optional[FileStat], Optional[Skipped]]]:
    """Given a results root, yield ``(relative_path, stat, None)`` per regular file.

    Hidden entries (names starting with a dot) are not shipped: writers use them for
    temporary files. Symlinks are never followed and non-regular files never travel;
    each such entry is yielded as ``(relative_path, None, Skipped)``.
    """
    stack = [""]
    while stack:
        relative_dir = stack.pop()
        entries, error = _scandir(os.path.join(results_root, relative_dir))
        if error:
            yield relative_dir, None, Skipped(relative_dir, f"unreadable directory ({error})")
            continue
        for entry in entries:
            relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            if entry.name.startswith("."):
                continue
            if not is_utf8_name(entry.name):  # nor is anything below such a directory
                yield relative, None, Skipped(relative, NOT_UTF8)
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield relative, None, Skipped(relative, f"cannot stat ({exc.strerror})")
                continue
            if stat.S_ISLNK(info.st_mode):
                yield relative, None, Skipped(relative, "symlink (not followed)")
            elif stat.S_ISDIR(info.st_mode):
                stack.append(relative)
            elif stat.S_ISREG(info.st_mode):
                yield relative, FileStat(info.st_size, info.st_mtime_ns), None
            else:
                yield relative, None, Skipped(relative, "not a regular file")


def snapshot(results_root: str, always: Tuple[str, ...] = ()) -> Tuple[Dict[str, FileStat], List[Skipped]]:
    """Given a results root, return every shippable file's stat and the entries passed over.

    ``always`` names root-level files shipped even though hidden (the manifest).
    """
    files: Dict[str, FileStat] = {}
    skipped: List[Skipped] = []
    for name in always:
        try:
            found = os.lstat(os.path.join(results_root, name))
        except FileNotFoundError:
            continue
        if stat.S_ISREG(found.st_mode):
            files[name] = FileStat(found.st_size, found.st_mtime_ns)
    for relative, info, skip in walk_files(results_root):
        if info is not None:
            files[relative] = info
        elif skip is not None:
            skipped.append(skip)
    return files, skipped
