"""Runs with nothing to do, remembered between passes, so an idle pass need not load their states.

A state holds every checkpoint's metrics (about 60 KB at 100 checkpoints); loading 1,000 of them
just to learn that nothing changed was most of an idle pass. So when planning finds a run clean
(a trusted state, nothing to log, no failed checkpoint, nothing in flight, not blocked), this
cache records two keys: the model's scan (every checkpoint folder and its metrics file's name,
size and mtime_ns, the very fields planning compares) and the state file's own (inode, size,
mtime_ns, ctime_ns; every state write is a rename, so a new inode). A later pass whose scan and
state file give the same keys would plan exactly nothing for that run, and skips it unread.
Anything else (a new or rewritten metrics file, a state written, lost or replaced) misses, and
the run is planned from its state as before.

Derived data, never the truth: ``<state dir>/.clean-runs.json``, written atomically once per pass
by the lock holder (a dry run only reads it); missing, unreadable or from another Python, it is
empty and every run is planned from its state.

The scan key is ``hash()`` of a tuple of ints: CPython salts only str and bytes hashes per
process, so it is stable between passes of one Python; the Python version is recorded and a
different one starts empty.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Dict, List, Mapping, Optional

from local.upload.metrics import FileSig
from remote.contract.files import write_json_atomic
from remote.contract.tree import METRIC_FILES

log = logging.getLogger(__name__)

CACHE_NAME = ".clean-runs.json"
VERSION = 1


def scan_key(scan: Mapping[int, Optional[FileSig]]) -> int:
    """Given a model's scan, return an int that changes when any checkpoint or metrics file does."""
    return hash(
        tuple(
            sorted(
                (step, sig[0] == METRIC_FILES[0], sig[1], sig[2]) if sig else (step,)
                for step, sig in scan.items()
            )
        )
    )


def _file_key(path: str) -> Optional[List[int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class CleanRuns:
    """The clean runs of one state directory: state file name -> [state file key, scan key]."""

    def __init__(self, state_dir: str, runs: Dict[str, List]) -> None:
        self.path = os.path.join(state_dir, CACHE_NAME)
        self.runs = runs
        self.changed = False

    @classmethod
    def load(cls, state_dir: str) -> CleanRuns:
        """Given a state directory, return its cache (empty when missing, unreadable or foreign)."""
        try:
            with open(os.path.join(state_dir, CACHE_NAME), "r", encoding="utf-8") as handle:
                document = json.load(handle)
            if document.get("version") == VERSION and document.get("python") == sys.hexversion:
                return cls(state_dir, dict(document["runs"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # derived data: start empty, every run is planned from its state
        return cls(state_dir, {})

    def knows(self, state_path: str) -> bool:
        """Given a run's state path, say whether the run was clean at the last pass."""
        return os.path.basename(state_path) in self.runs

    def still_clean(self, state_path: str, key: int) -> bool:
        """Given a run's state path and its model's scan key, say whether planning it can be skipped."""
        known = self.runs.get(os.path.basename(state_path))
        return known is not None and known[1] == key and known[0] == _file_key(state_path)

    def record(self, state_path: str, key: int) -> None:
        """Given a run just planned clean (its state written), remember it with its scan key."""
        file_key = _file_key(state_path)
        name = os.path.basename(state_path)
        if file_key is None:
            self.forget(state_path)
        elif self.runs.get(name) != [file_key, key]:
            self.runs[name], self.changed = [file_key, key], True

    def forget(self, state_path: str) -> None:
        """Given a run that has work (or cannot be vouched for), drop it from the cache."""
        if self.runs.pop(os.path.basename(state_path), None) is not None:
            self.changed = True

    def save(self) -> None:
        """Write the cache if it changed (atomically; a failure only costs the next pass time)."""
        if not self.changed:
            return
        try:
            write_json_atomic(self.path, {"version": VERSION, "python": sys.hexversion, "runs": self.runs})
        except OSError as exc:
            log.warning(
                "could not write %s (%s): the next pass plans every run from its state", self.path, exc
            )
        self.changed = False
