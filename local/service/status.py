"""What has been uploaded and what is still to come, per model: read from disk, never from W&B.

Per model: its run, how many checkpoints were uploaded, the last and best, the checkpoints that
exist but have no metrics yet ("waiting for eval"), and when its newest checkpoint arrived. Online
uploads and offline runs keep separate state (``<state-dir>/offline/``), so both are shown,
labelled, whenever both hold anything. Reading status never calls W&B and never takes the
uploader's lock, so it is safe beside the running service; it imports no SDK.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

from local.upload.epoch import UNKNOWN_REASON, manifest_epoch
from local.upload.metrics import scan_checkpoints
from local.upload.plan import summary
from local.upload.state import StateError, load_state, mode_state_dir, state_path
from remote.contract.manifest import ModelEntry, load_manifest
from remote.contract.names import PULL_STATE_NAME
from remote.contract.tree import checkpoint_dir_name

# The summary key status shows as "best": the one the W&B run's summary carries, computed by the
# same code (local.upload.plan.summary), so status and the W&B dashboard never disagree.
BEST_KEY = "hr@10"
MODES = ("online", "offline")
# Column widths of the table; longer names are cut with a visible "..." (never silently).
MODEL_WIDTH, RUN_WIDTH = 56, 25
LABELS = {
    "online": "W&B online uploads (state: {})",
    "offline": "W&B offline mode: local run files, not in W&B (state: {})",
}


@dataclass
class ModelStatus:
    """The upload status of one model."""

    model_dir: str
    run_id: str
    project: str
    uploaded: int = 0
    last_step: Optional[int] = None
    best_value: Optional[float] = None
    best_step: Optional[int] = None
    failed: Dict[str, str] = field(default_factory=dict)
    last_update: Optional[str] = None
    error: Optional[str] = None
    waiting: List[int] = field(default_factory=list)
    newest_step: Optional[int] = None
    newest_arrived: Optional[str] = None
    has_state: bool = False
    epoch_note: Optional[str] = None


@dataclass
class Side:
    """The models' status as one W&B mode's state directory records it."""

    mode: str
    state_dir: str
    models: List[ModelStatus]

    def label(self) -> str:
        return LABELS[self.mode].format(self.state_dir)


def _best(rows: List[Dict[str, Any]]) -> Tuple[Any, Any]:
    values = summary(rows)
    return values.get("best_" + BEST_KEY), values.get("best_step_for_" + BEST_KEY)


def _arrived(path: str) -> Optional[str]:
    try:
        stamp = os.stat(path).st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def read_tree(status: ModelStatus, results_root: str) -> None:
    """Given a model's status, fill in its checkpoints waiting for eval and its newest checkpoint."""
    model_path = os.path.join(results_root, status.model_dir)
    scan = scan_checkpoints(model_path)
    status.waiting = sorted(step for step, sig in scan.items() if sig is None)
    if scan:
        status.newest_step = max(scan)
        status.newest_arrived = _arrived(os.path.join(model_path, checkpoint_dir_name(status.newest_step)))


def model_status(state_dir: str, entry: ModelEntry, results_root: str) -> ModelStatus:
    """Given the state dir and a manifest entry, return its status (errors are reported, not raised)."""
    status = ModelStatus(entry.model_dir, entry.wandb_run_id, entry.wandb_project)
    read_tree(status, results_root)
    path = state_path(state_dir, entry.model_dir, entry.wandb_run_id)
    status.has_state = os.path.exists(path)
    try:
        state = load_state(path, entry.model_dir, entry.wandb_run_id)
    except StateError as exc:
        status.error = f"{exc}; the next upload pass sets it aside and reads what the W&B run holds"
        return status
    status.uploaded = len(state.processed_steps)
    status.last_step = max(state.processed_steps) if state.processed_steps else None
    status.best_value, status.best_step = _best(state.table_rows)
    status.failed = {str(step): str(info.get("reason", info)) for step, info in state.failed_steps.items()}
    status.last_update = state.last_update_time
    status.epoch_note = _epoch_note(entry, state.table_rows)
    return status


def _epoch_note(entry: ModelEntry, rows: List[Dict[str, Any]]) -> Optional[str]:
    """Given a model and its uploaded rows, say why they carry no epoch_progress, if they carry none."""
    if not rows or any(row.get("epoch_progress") is not None for row in rows):
        return None
    return None if manifest_epoch(int(rows[-1]["checkpoint_step"]), entry) is not None else UNKNOWN_REASON


def load_entries(manifest_path: str) -> Optional[List[ModelEntry]]:
    """Given the manifest path, return its models, or None when there is none yet (nothing pulled).

    A manifest that exists but cannot be read raises ManifestError.
    """
    if not os.path.exists(manifest_path):
        return None
    return load_manifest(manifest_path).models


def collect(
    entries: Sequence[ModelEntry], results_root: str, state_dir: str, mode: str = "online"
) -> List[Side]:
    """Given the models, return the sides to show: every mode whose state holds any model, else ``mode``'s."""
    sides = []
    for each in sorted(MODES, key=lambda m: m != mode):  # the asked-for mode first
        directory = mode_state_dir(state_dir, each)
        sides.append(Side(each, directory, [model_status(directory, e, results_root) for e in entries]))
    used = [side for side in sides if any(m.has_state for m in side.models)]
    return used or [side for side in sides if side.mode == mode]


def last_pull(inbox: str) -> Optional[Dict[str, Any]]:
    """Given the inbox, return the newest bundle ``pull`` verified there (name, seq, verified_at).

    Reads the file pull writes (``<inbox>/.pull-state.json``: ``bundles`` maps each bundle's name
    to its seq, sha256, size and ``verified_at``); None when nothing was pulled yet.
    """
    try:
        with open(os.path.join(inbox, PULL_STATE_NAME), "r", encoding="utf-8") as handle:
            bundles = json.load(handle)["bundles"]
        name, entry = max(bundles.items(), key=lambda item: int(item[1]["seq"]))
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return {"name": name, "seq": int(entry["seq"]), "verified_at": entry.get("verified_at")}


def fit(text: str, width: int) -> str:
    """Given a text and a column width, return it cut in the middle with a visible "..." when longer.

    The middle, not the end: model names that share a long prefix differ at the end
    (``...-dsz0`` and ``...-dsz0-backup``), so both ends stay readable.
    """
    if len(text) <= width:
        return text
    head = (width - 3) * 2 // 3
    return text[:head] + "..." + text[len(text) - (width - 3 - head) :]


def _row(s: ModelStatus) -> str:
    best = "-" if s.best_value is None else f"{s.best_value:.4f} @{s.best_step}"
    last = "-" if s.last_step is None else str(s.last_step)
    newest = "-" if s.newest_step is None else f"{s.newest_step} at {s.newest_arrived or '?'}"
    return (
        f"{fit(s.model_dir, MODEL_WIDTH):<{MODEL_WIDTH}} {fit(s.run_id, RUN_WIDTH):<{RUN_WIDTH}} "
        f"{s.uploaded:>8} {last:>9} {best:>14} {len(s.waiting):>7}  {newest}"
    )


def render(statuses: List[ModelStatus]) -> str:
    """Given statuses, return a table readable at a glance (one line per model, details below)."""
    header = "{:<{}} {:<{}} {:>8} {:>9} {:>14} {:>7}  {}".format(
        "model", MODEL_WIDTH, "run id", RUN_WIDTH, "uploaded", "last step", "best HR@10", "waiting", "newest"
    )
    lines = [header]
    for s in statuses:
        lines.append(_row(s))
        if s.waiting:
            shown = ", ".join(checkpoint_dir_name(step) for step in s.waiting[:5])
            more = f" and {len(s.waiting) - 5} more" if len(s.waiting) > 5 else ""
            lines.append(f"    waiting for eval (no metrics yet): {shown}{more}")
        for step, reason in sorted(s.failed.items(), key=lambda item: int(item[0])):
            lines.append(f"    failed checkpoint-{step}: {reason}")
        if s.error:
            lines.append(f"    error: {s.error}")
    lines.extend(epoch_footer(statuses))
    return "\n".join(lines)


def epoch_footer(statuses: List[ModelStatus]) -> List[str]:
    """Given statuses, return one line per reason some models have no epoch (not one line per model)."""
    lines = []
    for note in sorted({s.epoch_note for s in statuses if s.epoch_note}):
        names = [s.model_dir for s in statuses if s.epoch_note == note]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"{note} ({len(names)} model(s): {shown})")
    return lines


def render_sides(sides: List[Side]) -> str:
    """Given the sides to show, return each one's label and table."""
    return "\n\n".join(f"{side.label()}\n{render(side.models)}" for side in sides)


def to_json(sides: List[Side], pull: Optional[Dict[str, Any]], service: Optional[Dict[str, Any]]) -> str:
    """Given the sides, the last pull and the service's health, return the ``status --json`` document.

    ``models`` is the first side's list (the one a single-mode reader wants); ``sides`` has all.
    """
    document = {
        "models": [asdict(s) for s in sides[0].models] if sides else [],
        "sides": [
            {"mode": s.mode, "state_dir": s.state_dir, "models": [asdict(m) for m in s.models]} for s in sides
        ],
        "last_pull": pull,
        "service": service,
    }
    return json.dumps(document, indent=2, sort_keys=True)
