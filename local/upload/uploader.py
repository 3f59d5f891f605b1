"""One upload pass: every manifest model's new checkpoints into its W&B runs, exactly once.

Each model is uploaded to its run and its epoch run (:mod:`local.upload.targets`). Planning runs
here, in the uploader process (:mod:`local.upload.planner`): per model, list checkpoint folders
(one ``scandir``), stat their metrics files, read only new or changed ones, record failures. A run
with nothing to log gets no W&B call at all, and a pass with no such run never even loads the SDK
(nor the pool): this process imports ``wandb`` at most for a dry run's or a reconciliation's
reads. Runs with work go to a pool of long-lived upload workers (:mod:`local.upload.pool`,
:mod:`local.upload.worker` says why and when a worker retires), each session of which opens the
run (resume), logs one row per checkpoint, the table on the last row, the summary, finishes.
Two manifest entries naming one W&B run are refused (never two writers on one run).

Exactly once across SIGKILL, as implemented (session code in :mod:`local.upload.session`):
1. Before the first ``run.log`` the model's state gets an in-flight record: the items in log
   order and ``start_step`` = ``run.starting_step`` of the opened run (on resume the SDK takes it
   from the server: last ``_step`` + 1, i.e. the history rows W&B holds).
2. After ``run.finish()`` returned (``finish_timeout_raises``: it raises if rows are unsent),
   the items become processed and the record is cleared, in one atomic state write.
3. A later attempt or pass that finds a record first waits (bounded) for the ``wandb-core`` of
   the worker that wrote it (its pid is in the record; that worker was retired or killed) to
   exit, resumes the run and reads ``starting_step`` again: that minus
   ``start_step`` rows landed. History is an ordered prefix (one row per ``run.log``,
   file_stream writes at line offsets), so exactly the first that-many items landed; they are
   marked processed without re-logging, and the rest are logged first, in the same order,
   before anything new. Should a straggling writer still add rows, it writes the same rows at
   the same offsets, so nothing is duplicated.
If W&B is unreachable, nothing is marked processed and the next pass tries it all again.

``--disable-wandb`` reads and validates but writes no state at all (and takes no lock), so a
later real upload skips nothing.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, ContextManager, List, Optional, Sequence, Tuple

from local.progress import Progress
from local.upload.clean_runs import CleanRuns
from local.upload.credentials import require_api_key
from local.upload.plan import Job
from local.upload.planner import plan_model, unchanged_models, unchanged_outcome
from local.upload.report import ModelOutcome, PassReport, UploadOptions
from local.upload.selection import Selection, select
from local.upload.targets import RunTarget
from remote.contract.files import exclusive_lock
from remote.contract.manifest import ModelEntry
from remote.contract.names import UPLOAD_LOCK_NAME

log = logging.getLogger(__name__)


def uploader_lock(options: UploadOptions) -> ContextManager[None]:
    """Given options, return the state directory's lock (raises LockHeldError when taken)."""
    return exclusive_lock(os.path.join(options.state_dir, UPLOAD_LOCK_NAME), "uploader")


# Given a selected model and its runs, whether this pass plans it (the service's event path).
Focus = Callable[[ModelEntry, Sequence[RunTarget]], bool]


def _no_progress() -> None:
    pass


def upload_pass(
    options: UploadOptions,
    take_lock: bool = True,
    focus: Optional[Focus] = None,
    on_progress: Callable[[], None] = _no_progress,
) -> PassReport:
    """Given options, run one pass over the manifest's models and return what happened.

    ``take_lock=False`` is for callers already holding :func:`uploader_lock` (the poll loop).
    ``focus`` limits planning to the models it accepts (:mod:`local.service.changes`); without
    it, every selected model is planned (a full scan). ``on_progress`` is called after each
    model planned and each run uploaded (the loop's heartbeat: a long pass is not a stuck one).
    Raises UserError for an unusable manifest and LockHeldError when another uploader runs.
    """
    if not options.disable_wandb:
        require_api_key(options.writer.mode)  # once, before any model: no key, no twelve errors
    selection = select(options)
    if focus is not None:
        selection.models = [(entry, targets) for entry, targets in selection.models if focus(entry, targets)]
    if options.disable_wandb or not take_lock:
        # A dry run writes no state, so it needs no lock and may run beside the service.
        outcomes = _run_all(selection, options, on_progress)
    else:
        with uploader_lock(options):
            outcomes = _run_all(selection, options, on_progress)
    report = PassReport(models=outcomes + selection.refused, problems=selection.problems)
    for note in sorted({outcome.note for outcome in report.models if outcome.note}):
        log.info("%s", note)  # once per pass, not once per run
    log.info("%s", report.summary_line())
    return report


def _run_all(
    selection: Selection, options: UploadOptions, on_progress: Callable[[], None]
) -> List[ModelOutcome]:
    """Given the pass's models, plan each in this process; upload only runs with work, in parallel."""
    planned: List[Tuple[ModelOutcome, Optional[Job]]] = []
    clean = CleanRuns.load(options.model_state_dir())
    unchanged = unchanged_models(selection.models, options, clean)
    for (entry, targets), skip in zip(selection.models, unchanged):
        if skip:
            planned.extend(unchanged_outcome(target) for target in targets)
        else:
            planned.extend(plan_model(entry, targets, options, clean))
        on_progress()
    if not options.disable_wandb:
        clean.save()
    jobs = [(index, job) for index, (_, job) in enumerate(planned) if job is not None]
    outcomes = [outcome for outcome, _ in planned]
    if jobs:
        results = upload_jobs([job for _, job in jobs], options, on_progress)
        for index, result in zip((index for index, _ in jobs), results):
            result.failed_steps = outcomes[index].failed_steps
            outcomes[index] = result
    return outcomes


def upload_jobs(
    jobs: List[Job], options: UploadOptions, on_progress: Callable[[], None] = _no_progress
) -> List[ModelOutcome]:
    """Given the runs with work, upload them in a pool of upload workers; return their outcomes in order."""
    # Imported here, not at the top: the pool loads tenacity and starts the forkserver that loads
    # the SDK, which a pass with nothing to upload never needs.
    from local.upload.pool import WorkerPool, run_job

    progress = Progress("uploading runs", len(jobs))  # drawn only on a terminal: big backfills
    threads = max(1, options.workers) * max(1, options.worker_slots)
    with WorkerPool(options) as pool, ThreadPoolExecutor(threads, thread_name_prefix="upload") as dispatch:
        futures = [dispatch.submit(run_job, pool, job) for job in jobs]
        # Progress counts runs as they finish, in any order: one slow run holds back no report.
        for _ in as_completed(futures):
            progress.advance()
            on_progress()
    progress.close()
    return [future.result() for future in futures]
