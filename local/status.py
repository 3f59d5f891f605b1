"""What has been uploaded, per model: read from the manifest and the uploader's state files.

Reading status never calls W&B and never takes the uploader's lock, so it is safe to run
beside the running service.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from local.state import StateError, load_state, mode_state_dir, state_path
from remote.manifest import ManifestError, load_manifest

HEADLINE = "HR@10"


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


def _best(rows: List[Dict[str, Any]]) -> tuple:
    scored = [((row.get("metrics") or {}).get(HEADLINE), row.get("checkpoint_step")) for row in rows]
    scored = [(v, s) for v, s in scored if isinstance(v, (int, float))]
    return max(scored) if scored else (None, None)


def model_status(state_dir: str, model_dir: str, run_id: str, project: str) -> ModelStatus:
    """Given the state dir and a model's identity, return its status (errors are reported, not raised)."""
    status = ModelStatus(model_dir, run_id, project)
    try:
        state = load_state(state_path(state_dir, model_dir, run_id), model_dir, run_id)
    except StateError as exc:
        status.error = str(exc)
        return status
    status.uploaded = len(state.processed_steps)
    status.last_step = max(state.processed_steps) if state.processed_steps else None
    status.best_value, status.best_step = _best(state.table_rows)
    status.failed = {str(step): str(info.get("reason", info)) for step, info in state.failed_steps.items()}
    status.last_update = state.last_update_time
    return status


def collect(manifest_path: str, state_dir: str, mode: str = "online") -> List[ModelStatus]:
    """Given the manifest, state dir and W&B mode, return every model's status (manifest order)."""
    state_dir = mode_state_dir(state_dir, mode)
    try:
        manifest = load_manifest(manifest_path)
    except ManifestError as exc:
        return [ModelStatus("(manifest)", "", "", error=str(exc))]
    return [model_status(state_dir, m.model_dir, m.wandb_run_id, m.wandb_project) for m in manifest.models]


def last_pull(inbox: str) -> Optional[Dict[str, Any]]:
    """Given the inbox, return the newest bundle the puller verified there, if any."""
    from local.pull import STATE_NAME as PULL_STATE_NAME  # paramiko: only when an inbox is asked for

    try:
        with open(os.path.join(inbox, PULL_STATE_NAME), "r", encoding="utf-8") as handle:
            bundles = json.load(handle).get("bundles", {})
        newest = max(bundles.values(), key=lambda entry: int(entry["seq"]))
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return dict(newest) if isinstance(newest, dict) else None


def render(statuses: List[ModelStatus]) -> str:
    """Given statuses, return a table readable at a glance (one line per model, failures below)."""
    lines = [
        "{:<58} {:<26} {:>8} {:>9} {:>16}".format("model", "run id", "uploaded", "last step", "best HR@10")
    ]
    for s in statuses:
        best = "-" if s.best_value is None else "{:.4f} @{}".format(s.best_value, s.best_step)
        last = "-" if s.last_step is None else str(s.last_step)
        lines.append(
            "{:<58} {:<26} {:>8} {:>9} {:>16}".format(s.model_dir[:58], s.run_id[:26], s.uploaded, last, best)
        )
        for step, reason in sorted(s.failed.items(), key=lambda item: int(item[0])):
            lines.append("    failed checkpoint-{}: {}".format(step, reason))
        if s.error:
            lines.append("    error: {}".format(s.error))
    return "\n".join(lines)


def to_json(statuses: List[ModelStatus], pull: Optional[Dict[str, Any]]) -> str:
    """Given statuses and the last pull record, return the ``status --json`` document."""
    return json.dumps({"models": [asdict(s) for s in statuses], "last_pull": pull}, indent=2, sort_keys=True)
