"""The state is a cache of what W&B holds: open it whatever happened to it, never fail a model for it.

- Ours and readable: used as it is (trusted).
- Missing: the original tool's state for the same run is converted if there is one (origin
  "original"), else a fresh state (origin "new": a new model, or a lost state volume).
- Unreadable: set aside beside itself (kept as evidence) and replaced by a fresh state (origin
  "unreadable"), with one log line. A dry run writes nothing, so it only reads around it.

An untrusted state plans every checkpoint as new; the session then reads what the run holds and
logs only what it lacks (local.upload.reconcile).
"""

from __future__ import annotations

import logging

from local.upload.legacy_state import load_original
from local.upload.state import ORIGIN_UNREADABLE, ModelState, StateError, load_state, set_aside

log = logging.getLogger(__name__)


def open_state(path: str, state_dir: str, model_dir: str, run_id: str, dry_run: bool) -> ModelState:
    """Given a run's state path, return its state (see the module docstring); never raise StateError."""
    try:
        state = load_state(path, model_dir, run_id)
    except StateError as exc:
        if not dry_run:
            aside = set_aside(path)
            log.warning(
                "model %s, run %s: %s; kept as %s, W&B will be read instead", model_dir, run_id, exc, aside
            )
        return ModelState(model_dir=model_dir, wandb_run_id=run_id, origin=ORIGIN_UNREADABLE)
    if state.trusted or state.processed_steps or state.failed_steps:
        return state
    return load_original(state_dir, model_dir, run_id) or state


OFFLINE_NOTE = "offline: W&B cannot be asked what a run holds; runs without a state are uploaded from scratch"


def planning_view(state: ModelState, mode: str) -> ModelState:
    """Given a state, return what planning may rely on: all of it if trusted, else only its failures.

    Planning an untrusted state's checkpoints all as new is safe online: the session drops every
    one the run already holds before logging. Offline there is no run to ask, so the state is all
    there is (the offline runs are a try-out with a state of their own).
    """
    if state.trusted or mode != "online":
        return state
    return ModelState(
        state.model_dir, state.wandb_run_id, failed_steps=state.failed_steps, origin=state.origin
    )
