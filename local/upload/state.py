"""Per-model upload state: what W&B has confirmed, what failed, and what is in flight.

One JSON file per model in ``--state-dir``, named after the model directory plus a hash of
its W&B run id (a new run id starts a fresh state, so everything is uploaded to the new run).
Written atomically (temporary file + rename + fsync), so a kill never leaves half a state file.

Fields (version 1):
  processed_steps   steps W&B confirmed (``run.finish()`` returned, or proven by recovery)
  failed_steps      {step: {reason, time}} metrics that could not be used; retried every pass
  table_rows        one row per processed checkpoint (step, revision, metrics): the W&B table
                    and summary are rebuilt from it without re-reading any metrics file
  last_seen_step    highest checkpoint step seen in the tree
  last_update_time  when this file last changed (UTC, ISO 8601)
  files             {step: [file name, size, mtime_ns]} of each processed metrics file
  digests           {step: sha1 of the metrics} to tell a real change from a touched file
  in_flight         null, or the rows of an upload that has not been confirmed yet:
                    {start_step, pid, time, items: [{step, revision, digest, file, metrics}]}
  blocked           null, or {reason, fix, time}: W&B said this run id was deleted; no later
                    pass calls W&B for it (a new wandb_run_id means a new state file)
  origin            "ours": written by this uploader after W&B confirmed or was read (trusted);
                    "new": no state file was found (a new model, or the state was lost);
                    "unreadable": the file could not be parsed (kept beside, renamed);
                    "original": converted from the original tool's state file (left untouched).
                    Anything but "ours" is a cache W&B has not vouched for: the next session
                    reads what the run holds before logging (see local.upload.reconcile).
  run_next_step     the run's next history step (W&B's ``_step`` + 1) after the last confirmed
                    session; a resumed run that says otherwise holds rows this state does not
                    account for, and is read before anything is logged. Absent in older files.

W&B is the truth, this file a cache: losing it never duplicates a row (see local.upload.reconcile).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from remote.contract.files import now_iso, write_json_atomic
from remote.contract.names import OFFLINE_SUBDIR

log = logging.getLogger(__name__)

STATE_VERSION = 1
ORIGIN_OURS, ORIGIN_NEW, ORIGIN_UNREADABLE, ORIGIN_ORIGINAL = "ours", "new", "unreadable", "original"


class StateError(ValueError):
    """A state file exists but cannot be used; uploading blindly could duplicate rows."""


@dataclass
class ModelState:
    """The persisted upload state of one model (see the module docstring for the fields)."""

    model_dir: str
    wandb_run_id: str
    processed_steps: List[int] = field(default_factory=list)
    failed_steps: Dict[int, Dict[str, str]] = field(default_factory=dict)
    table_rows: List[Dict[str, Any]] = field(default_factory=list)
    last_seen_step: Optional[int] = None
    last_update_time: Optional[str] = None
    files: Dict[int, List[Any]] = field(default_factory=dict)
    digests: Dict[int, str] = field(default_factory=dict)
    in_flight: Optional[Dict[str, Any]] = None
    blocked: Optional[Dict[str, str]] = None
    origin: str = ORIGIN_OURS
    run_next_step: Optional[int] = None
    version: int = STATE_VERSION

    def processed(self) -> set:
        """Return the processed steps as a set (for membership tests)."""
        return set(self.processed_steps)

    @property
    def trusted(self) -> bool:
        """Tell whether this state was written by this uploader from what W&B confirmed."""
        return self.origin == ORIGIN_OURS

    def expected_next_step(self) -> int:
        """Return the run's next step if only this state's rows are in it (one row per revision)."""
        if self.run_next_step is not None:
            return self.run_next_step
        return sum(int(row.get("revision", 0)) + 1 for row in self.table_rows)


@functools.lru_cache(maxsize=1 << 14)  # pure, and asked for every run in every pass of the service
def state_file_name(model_dir: str, run_id: str) -> str:
    """Given a model dir and run id, return a safe, stable state file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_dir).strip("._")[:100] or "model"
    digest = hashlib.sha1(run_id.encode("utf-8")).hexdigest()[:10]
    return f"{safe}-{digest}.json"


def mode_state_dir(state_dir: str, mode: str) -> str:
    """Given the state dir and the W&B mode, return where that mode's model states live.

    Offline runs only reach W&B after a manual ``wandb sync``; if they shared the online state,
    an offline try-out would make a later online upload skip those checkpoints for good.
    """
    return os.path.join(state_dir, OFFLINE_SUBDIR) if mode == "offline" else state_dir


def state_path(state_dir: str, model_dir: str, run_id: str) -> str:
    """Given the state dir and a model's identity, return its state file path."""
    return os.path.join(state_dir, state_file_name(model_dir, run_id))


def _int_keys(raw: Any, name: str) -> Dict[int, Any]:
    if not isinstance(raw, dict):
        raise StateError(f"field {name} is not an object")
    return {int(key): value for key, value in raw.items()}


def load_state(path: str, model_dir: str, run_id: str) -> ModelState:
    """Given a state file path, return its state, a fresh one if absent, or raise StateError."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        return ModelState(model_dir=model_dir, wandb_run_id=run_id, origin=ORIGIN_NEW)
    except (OSError, ValueError) as exc:
        raise StateError(f"state file {path} is unreadable ({exc})") from exc
    try:
        if raw.get("version") != STATE_VERSION:
            raise StateError(f"state file {path} has version {raw.get('version')!r}")
        return ModelState(
            model_dir=model_dir,
            wandb_run_id=run_id,
            processed_steps=sorted(int(step) for step in raw.get("processed_steps", [])),
            failed_steps=_int_keys(raw.get("failed_steps", {}), "failed_steps"),
            table_rows=list(raw.get("table_rows", [])),
            last_seen_step=raw.get("last_seen_step"),
            last_update_time=raw.get("last_update_time"),
            files=_int_keys(raw.get("files", {}), "files"),
            digests=_int_keys(raw.get("digests", {}), "digests"),
            in_flight=raw.get("in_flight"),
            blocked=raw.get("blocked"),
            origin=str(raw.get("origin", ORIGIN_OURS)),
            run_next_step=raw.get("run_next_step"),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        if isinstance(exc, StateError):
            raise
        raise StateError(f"state file {path} is malformed ({exc})") from exc


def save_state(path: str, state: ModelState) -> None:
    """Given a path and a state, stamp the update time and write it atomically."""
    state.last_update_time = now_iso()
    document = asdict(state)
    document["processed_steps"] = sorted(set(state.processed_steps))
    for name in ("failed_steps", "files", "digests"):
        document[name] = {str(key): value for key, value in sorted(document[name].items())}
    write_json_atomic(path, document)


def set_aside(path: str) -> str:
    """Given an unusable state file, rename it beside itself (``.unreadable-<time>``); return the new path.

    Kept, not deleted: it is evidence of what went wrong, and nothing reads it again.
    """
    aside = f"{path}.unreadable-{now_iso().replace(':', '')}"
    os.replace(path, aside)
    return aside
