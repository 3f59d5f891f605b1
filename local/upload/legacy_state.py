"""Read the original tool's state files (``eval_wandb_sidecar.py``), so a user can switch over in place.

The original kept one file per (model directory, run id) in the same default folder,
``state/wandb_eval_uploader/``, named ``<sanitized model_dir>_<12 hex>.json`` where the hex is the
SHA-1 of the compact, key-sorted JSON ``{"model_dir", "run_id"}`` (ours are
``<model_dir>-<10 hex of the run id>.json``, so both live side by side). Its fields:
``processed_steps``, ``failed_steps`` (``{"<step>": {checkpoint, error, time}}``), ``table_rows``
(flat rows: ``checkpoint_step, checkpoint_index, epoch_progress, checkpoint_name, metrics_path,
HR@1 ... NDCG@10``), ``last_seen_step``, ``last_update_time``. See docs/original-tool.md.

Converted on first use into our state with origin "original" and the original file left untouched
(the user can go back). Its ``processed_steps`` are not trusted: the original marked a step
processed before W&B confirmed it (and even with ``--disable-wandb``), so the first session reads
what the run really holds (local.upload.reconcile).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Any, Dict, List, Optional

from local.upload.state import ORIGIN_ORIGINAL, ModelState
from remote.contract.manifest import stable_hash

log = logging.getLogger(__name__)

# The original's table columns that were not metrics.
_ROW_FIELDS = ("checkpoint_step", "checkpoint_index", "epoch_progress", "checkpoint_name", "metrics_path")


def original_state_name(model_dir: str, run_id: str) -> str:
    """Given a model directory and run id, return the original tool's state file name for them."""
    token = re.sub(r"[^a-zA-Z0-9_.-]+", "-", model_dir).strip("-_.") or "unknown"
    return f"{token}_{stable_hash({'model_dir': model_dir, 'run_id': run_id}, 12)}.json"


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _table_row(raw: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Given one of the original's table rows, return ours (None when it has no usable step)."""
    step = raw.get("checkpoint_step")
    if isinstance(step, bool) or not isinstance(step, int):
        return None
    metrics = {k: v for k, v in raw.items() if k not in _ROW_FIELDS and _number(v) is not None}
    path = raw.get("metrics_path")
    return {
        "checkpoint_step": step,
        "revision": 0,
        "metrics": metrics,
        "checkpoint_index": raw.get("checkpoint_index"),
        "epoch_progress": _number(raw.get("epoch_progress")),
        "source": os.path.basename(path) if isinstance(path, str) and path else "metrics.json",
    }


def _failed(raw: Any) -> Dict[int, Dict[str, str]]:
    failed: Dict[int, Dict[str, str]] = {}
    for step, info in (raw or {}).items() if isinstance(raw, dict) else ():
        if str(step).lstrip("-").isdigit() and isinstance(info, dict):
            failed[int(step)] = {"reason": str(info.get("error", "")), "time": str(info.get("time", ""))}
    return failed


def convert_original(document: Dict[str, Any], model_dir: str, run_id: str) -> ModelState:
    """Given the original tool's state document, return it as our (untrusted) state."""
    rows: List[Dict[str, Any]] = [r for r in map(_table_row, document.get("table_rows") or []) if r]
    steps = document.get("processed_steps") or []
    return ModelState(
        model_dir=model_dir,
        wandb_run_id=run_id,
        processed_steps=sorted({int(s) for s in steps if isinstance(s, int) and not isinstance(s, bool)}),
        failed_steps=_failed(document.get("failed_steps")),
        table_rows=sorted(rows, key=lambda row: row["checkpoint_step"]),
        last_seen_step=document.get("last_seen_step")
        if isinstance(document.get("last_seen_step"), int)
        else None,
        origin=ORIGIN_ORIGINAL,
    )


def load_original(state_dir: str, model_dir: str, run_id: str) -> Optional[ModelState]:
    """Given the state directory and a run, return the original tool's state for it, converted, if any.

    An unreadable original file is passed over with a warning (W&B is asked instead).
    """
    path = os.path.join(state_dir, original_state_name(model_dir, run_id))
    try:
        with open(path, "r", encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        log.warning("original tool's state %s unreadable (%s); W&B will be read instead", path, exc)
        return None
    if not isinstance(document, dict):
        return None
    log.info(
        "model %s, run %s: converting the original tool's state %s (left as it is)", model_dir, run_id, path
    )
    return convert_original(document, model_dir, run_id)
