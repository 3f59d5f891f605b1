"""One model's upload session: recover an interrupted upload, log rows once, confirm them.

Runs inside an upload worker (:mod:`local.upload.worker`), one of many sessions of that
worker's long-lived ``wandb-core``. The exactly-once
protocol (in-flight record, ``starting_step`` arithmetic, confirmation after ``finish()``) is
described in :mod:`local.upload.uploader`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Dict, List, Tuple

from local.upload import plan, reconcile
from local.upload.failures import DELETED_FIX, WandbPermanentError, WandbTransientError
from local.upload.history import read_history
from local.upload.plan import Job
from local.upload.report import ModelOutcome, UploadOptions
from local.upload.state import ORIGIN_OURS, ModelState, StateError, load_state, save_state
from local.upload.targets import RunTarget
from local.upload.writer import RunSession, core_pids_of
from remote.contract.files import now_iso

log = logging.getLogger(__name__)


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
    try:
        items = _begin(target, state, path, session, new_items, outcome, options)
    except (WandbTransientError, WandbPermanentError) as exc:
        session.close_unchanged()  # the run's history could not be read: nothing logged, nothing guessed
        _fail(target, outcome, exc)
        return
    try:
        _log_and_finish(session, state, items, target.model_dir)
    except (WandbTransientError, WandbPermanentError) as exc:
        session.abort()
        _fail(target, outcome, exc)
        return
    # Only now, with finish() returned, do the rows count as delivered.
    plan.mark_processed(state, items)
    state.in_flight = None
    state.run_next_step = session.start_step + len(items)
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
    session: RunSession,
    new_items: List[plan.Item],
    outcome: ModelOutcome,
    options: UploadOptions,
) -> List[plan.Item]:
    """Given the opened run, settle any in-flight record, reconcile with W&B if the state cannot
    vouch for the run, and write the new in-flight record (one atomic state write)."""
    run_step = session.start_step
    had_flight = state.in_flight is not None
    leftover, surplus = _recover(target, state, run_step, outcome) if had_flight else ([], 0)
    # A retried attempt gets the same new items: drop those already logged (now processed).
    flying = {item.step for item in leftover}
    fresh = [i for i in new_items if i.step not in flying and state.digests.get(i.step) != i.digest]
    items = leftover + fresh
    if session.mode != "online":
        state.origin = ORIGIN_OURS  # offline, the local state is all there is (said once per pass)
    elif must_read(state, run_step, surplus, had_flight):
        items = _reconcile(target, state, run_step, items, outcome, options)
    elif not state.trusted:
        reconcile.adopt(state, {}, run_step)  # the run is new or empty: the state is now the truth
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


def must_read(state: ModelState, run_step: int, surplus: int, had_flight: bool) -> bool:
    """Given the state and the opened (online) run's step, tell whether the run must be read first.

    It must when the state cannot vouch for a run that has rows (the state is missing, unreadable
    or the original tool's), or the run holds rows the state does not account for.
    """
    if not state.trusted:
        return run_step > 0  # a run with no rows holds nothing to reconcile
    if surplus:
        return True
    return not had_flight and run_step != state.expected_next_step()


def _reconcile(
    target: RunTarget,
    state: ModelState,
    run_step: int,
    items: List[plan.Item],
    outcome: ModelOutcome,
    options: UploadOptions,
) -> List[plan.Item]:
    """Given the items to log, read what the run holds, adopt it, and return what is still to log."""
    held = reconcile.held_checkpoints(read_history(target, options.writer))
    why = (
        "state " + state.origin
        if not state.trusted
        else f"run at step {run_step}, state expected {state.expected_next_step()}"
    )
    lost = reconcile.adopt(state, held, run_step)
    to_log, adopted = reconcile.sort_items(state, items, held)
    outcome.adopted_steps = adopted
    log.info(
        "model %s, run %s: reconciled with W&B (%s): it holds %d checkpoints; %d adopted, %d to log",
        target.label,
        target.run_id,
        why,
        len(held),
        len(adopted),
        len(to_log),
    )
    if lost:
        log.warning(
            "model %s, run %s: the state listed %d checkpoints the run lacks; the next pass uploads them",
            target.label,
            target.run_id,
            len(lost),
        )
    return to_log


def _recover(
    target: RunTarget, state: ModelState, run_step: int, outcome: ModelOutcome
) -> Tuple[List[plan.Item], int]:
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
    return leftover, surplus


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
