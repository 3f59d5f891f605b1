"""One model's upload session: recover an interrupted upload, log rows once, confirm them.

Runs inside a session process started by :mod:`local.upload.process`. The exactly-once
protocol (in-flight record, ``starting_step`` arithmetic, confirmation after ``finish()``) is
described in :mod:`local.upload.uploader`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Dict, List

from local.upload import plan
from local.upload.report import ModelOutcome, UploadOptions
from local.upload.state import ModelState, StateError, load_state, save_state
from local.upload.targets import RunTarget
from local.upload.writer import (
    DELETED_FIX,
    RunSession,
    WandbPermanentError,
    WandbTransientError,
    core_pids_of,
)
from remote.contract.files import now_iso

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One run's upload work: what the parent planned, for a session process to do."""

    target: RunTarget
    state_path: str
    new_items: List[plan.Item]


def run_session(job: Job, options: UploadOptions) -> ModelOutcome:
    """Given a job, log its rows once (recovering an interrupted upload first) and confirm them."""
    target = job.target
    outcome = ModelOutcome(target.model_dir, target.run_id, target.variant)
    try:
        state = load_state(job.state_path, target.model_dir, target.run_id)
    except StateError as exc:
        outcome.error, outcome.error_kind = f"{exc}; move it away to start over", "refused"
        return outcome
    _upload(target, state, job.state_path, job.new_items, options, outcome)
    return outcome


def _upload(
    target: RunTarget,
    state: ModelState,
    path: str,
    new_items: List[plan.Item],
    options: UploadOptions,
    outcome: ModelOutcome,
) -> None:
    """Given fresh items (and maybe an in-flight record), log them once and confirm them."""
    if state.in_flight:
        _settle_orphans(target, state.in_flight, options.orphan_wait_seconds)
    try:
        session = RunSession.open(target, options.writer)
    except (WandbTransientError, WandbPermanentError) as exc:
        _fail(target, outcome, exc)
        if isinstance(exc, WandbPermanentError) and exc.fix == DELETED_FIX:
            # A deleted run never comes back; later passes skip it instead of waiting on 409s.
            state.blocked = {"reason": str(exc), "fix": exc.fix, "time": now_iso()}
            save_state(path, state)
        return
    outcome.wandb_called = True
    items = _begin(target, state, path, session.start_step, new_items, outcome)
    try:
        _log_and_finish(session, state, items, target.model_dir)
    except (WandbTransientError, WandbPermanentError) as exc:
        session.abort()
        _fail(target, outcome, exc)
        return
    # Only now, with finish() returned, do the rows count as delivered.
    plan.mark_processed(state, items)
    state.in_flight = None
    save_state(path, state)
    outcome.uploaded_steps = sorted(item.step for item in items if not item.revision)
    outcome.revised_steps = sorted(item.step for item in items if item.revision)
    log.info("model %s: run %s confirmed %d rows", target.label, target.run_id, len(items))


def _log_and_finish(session: RunSession, state: ModelState, items: List[plan.Item], model_dir: str) -> None:
    """Given the open run and the items in log order, log rows, table, summary, then finish."""
    after = ModelState(state.model_dir, state.wandb_run_id, table_rows=list(state.table_rows))
    plan.mark_processed(after, items)
    if items:
        columns, data = plan.table_data(after.table_rows, model_dir)
        rows = [plan.history_row(item, model_dir) for item in items]
        session.log_rows(rows, {"key": plan.TABLE_KEY, "columns": columns, "data": data})
    session.set_summary(plan.summary(after.table_rows))
    session.finish()


def _begin(
    target: RunTarget,
    state: ModelState,
    path: str,
    run_step: int,
    new_items: List[plan.Item],
    outcome: ModelOutcome,
) -> List[plan.Item]:
    """Given the opened run's step, settle any in-flight record and write the new one."""
    leftover = _recover(target, state, run_step, outcome) if state.in_flight else []
    # A retried attempt gets the same new items: drop those already logged (now processed).
    flying = {item.step for item in leftover}
    fresh = [i for i in new_items if i.step not in flying and state.digests.get(i.step) != i.digest]
    items = leftover + fresh
    state.in_flight = None
    if items:
        state.in_flight = {
            "start_step": run_step,
            "pid": os.getpid(),
            "time": now_iso(),
            "items": [i.to_json() for i in items],
        }
    save_state(path, state)
    return items


def _recover(target: RunTarget, state: ModelState, run_step: int, outcome: ModelOutcome) -> List[plan.Item]:
    """Given an in-flight record and the resumed run's step, mark what landed; return the rest."""
    assert state.in_flight is not None
    landed, leftover, surplus = plan.recover(state.in_flight, run_step)
    plan.mark_processed(state, landed)
    outcome.recovered_steps = sorted(item.step for item in landed)
    log.info(
        "model %s: interrupted upload found; %d rows had landed, %d to log again",
        target.label,
        len(landed),
        len(leftover),
    )
    if surplus:
        log.warning(
            "model %s: run %s holds %d rows this uploader did not log",
            target.label,
            target.run_id,
            surplus,
        )
    return leftover


def _settle_orphans(target: RunTarget, in_flight: Dict, wait_seconds: float) -> None:
    """Given an in-flight record of a dead uploader, wait (bounded) for its wandb-core to exit."""
    pid = int(in_flight.get("pid", 0))
    if not pid or pid == os.getpid():
        return
    deadline = time.monotonic() + wait_seconds
    if core_pids_of(pid):
        log.info(
            "model %s: waiting for the killed uploader's wandb-core (parent pid %d) to exit",
            target.label,
            pid,
        )
    while core_pids_of(pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _fail(target: RunTarget, outcome: ModelOutcome, exc: Exception) -> None:
    if isinstance(exc, WandbPermanentError):
        outcome.error_kind = "permanent"
        outcome.error = f"model {target.label}, run {target.run_id}: {exc}; fix: {exc.fix}"
    else:
        outcome.error_kind = "transient"
        outcome.error = (
            f"model {target.label}, run {target.run_id}: W&B unreachable or failing ({exc}); "
            "nothing new marked processed"
        )
    log.error("%s", outcome.error)
