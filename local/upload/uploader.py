"""One upload pass: every manifest model's new checkpoints into its W&B run, exactly once.

Planning runs here, in the uploader process: per model, list checkpoint folders (one
``scandir``), stat their metrics files, read only new or changed ones, record failures. A model
with nothing to log gets no W&B call at all. Models with work are uploaded by bounded worker
threads, each driving a fresh session process (:mod:`local.upload.process` says why): open
the run (resume), log one row per checkpoint, the table on the last row, the summary, finish.
Two manifest entries naming one W&B run are refused (never two writers on one run).

Exactly once across SIGKILL, as implemented (session code in :mod:`local.upload.session`):
1. Before the first ``run.log`` the model's state gets an in-flight record: the items in log
   order and ``start_step`` = ``run.starting_step`` of the opened run (on resume the SDK takes it
   from the server: last ``_step`` + 1, i.e. the history rows W&B holds).
2. After ``run.finish()`` returned (``finish_timeout_raises``: it raises if rows are unsent),
   the items become processed and the record is cleared, in one atomic state write.
3. A later attempt or pass that finds a record first waits (bounded) for the dead session's
   ``wandb-core`` to exit, resumes the run and reads ``starting_step`` again: that minus
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

import fnmatch
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import ContextManager, Dict, List, Optional, Sequence, Tuple

from local.errors import UserError
from local.progress import Progress
from local.upload import plan
from local.upload.credentials import require_api_key
from local.upload.metrics import FileSig, MetricsResult, read_metrics, scan_checkpoints
from local.upload.process import run_isolated
from local.upload.report import ModelOutcome, PassReport, UploadOptions
from local.upload.session import Job
from local.upload.state import StateError, load_state, save_state, state_path
from remote.contract.files import exclusive_lock, now_iso
from remote.contract.manifest import ManifestError, ModelEntry, load_manifest
from remote.contract.names import UPLOAD_LOCK_NAME
from remote.contract.tree import checkpoint_dir_name

log = logging.getLogger(__name__)


def select_models(entries: Sequence[ModelEntry], filters: Sequence[str]) -> List[ModelEntry]:
    """Given entries and filters (substring or glob of model_dir), return the kept entries."""
    wanted = [f.strip() for raw in filters for f in raw.split(",") if f.strip()]
    if not wanted:
        return list(entries)
    return [
        e for e in entries if any(w in e.model_dir or fnmatch.fnmatchcase(e.model_dir, w) for w in wanted)
    ]


def split_duplicates(entries: Sequence[ModelEntry]) -> Tuple[List[ModelEntry], List[ModelOutcome]]:
    """Given entries, keep the first per W&B run and refuse the rest: never two writers on one run."""
    owners: Dict[Tuple[Optional[str], str, str], str] = {}
    kept: List[ModelEntry] = []
    refused: List[ModelOutcome] = []
    for entry in entries:
        key = (entry.wandb_entity, entry.wandb_project, entry.wandb_run_id)
        if key in owners:
            message = (
                f"run id {entry.wandb_run_id} is also used by model {owners[key]}; "
                "give each model its own wandb_run_id in the overrides file"
            )
            refused.append(
                ModelOutcome(entry.model_dir, entry.wandb_run_id, error=message, error_kind="refused")
            )
            continue
        owners[key] = entry.model_dir
        kept.append(entry)
    return kept, refused


def uploader_lock(options: UploadOptions) -> ContextManager[None]:
    """Given options, return the state directory's lock (raises LockHeldError when taken)."""
    return exclusive_lock(os.path.join(options.state_dir, UPLOAD_LOCK_NAME), "uploader")


def upload_pass(options: UploadOptions, take_lock: bool = True) -> PassReport:
    """Given options, run one pass over the manifest's models and return what happened.

    ``take_lock=False`` is for callers already holding :func:`uploader_lock` (the poll loop).
    Raises UserError for an unusable manifest and LockHeldError when another uploader runs.
    """
    if not options.disable_wandb:
        require_api_key(options.writer.mode)  # once, before any model: no key, no twelve errors
    try:
        manifest = load_manifest(options.manifest())
    except ManifestError as exc:
        raise UserError(str(exc), "check --results-root/--manifest-path") from exc
    for problem in manifest.problems:
        log.warning("manifest: %s", problem)
    entries, refused = split_duplicates(select_models(manifest.models, options.model_filters))
    for outcome in refused:
        log.error("model %s: %s", outcome.model_dir, outcome.error)
    if options.disable_wandb or not take_lock:
        # A dry run writes no state, so it needs no lock and may run beside the service.
        outcomes = _run_all(entries, options)
    else:
        with uploader_lock(options):
            outcomes = _run_all(entries, options)
    report = PassReport(models=outcomes + refused, problems=list(manifest.problems))
    log.info("%s", report.summary_line())
    return report


def _run_all(entries: Sequence[ModelEntry], options: UploadOptions) -> List[ModelOutcome]:
    """Given entries, plan each in this process; upload only those with work, in parallel."""
    planned = [plan_model(entry, options) for entry in entries]
    jobs = [(index, job) for index, (_, job) in enumerate(planned) if job is not None]
    outcomes = [outcome for outcome, _ in planned]
    if not jobs:
        return outcomes
    progress = Progress("uploading models", len(jobs))  # drawn only on a terminal: big backfills
    with ThreadPoolExecutor(max_workers=max(1, options.workers), thread_name_prefix="upload") as pool:
        results = pool.map(lambda pair: run_isolated(pair[1], options), jobs)
        for (index, _), result in zip(jobs, results):
            result.failed_steps = outcomes[index].failed_steps
            outcomes[index] = result
            progress.advance()
    progress.close()
    return outcomes


def plan_model(entry: ModelEntry, options: UploadOptions) -> Tuple[ModelOutcome, Optional[Job]]:
    """Given one model entry, read what is new, record failures, and return the upload job.

    No W&B call here; the job is None when there is nothing to log.
    """
    outcome = ModelOutcome(entry.model_dir, entry.wandb_run_id)
    path = state_path(options.model_state_dir(), entry.model_dir, entry.wandb_run_id)
    try:
        state = load_state(path, entry.model_dir, entry.wandb_run_id)
    except StateError as exc:
        outcome.error, outcome.error_kind = f"{exc}; move it away to start over", "refused"
        log.error("model %s: %s", entry.model_dir, outcome.error)
        return outcome, None
    if state.blocked and not options.disable_wandb:
        outcome.error_kind = "permanent"
        outcome.error = "model {}, run {}: {} (since {}); fix: {}".format(
            entry.model_dir,
            entry.wandb_run_id,
            state.blocked.get("reason"),
            state.blocked.get("time"),
            state.blocked.get("fix"),
        )
        log.error("%s", outcome.error)
        return outcome, None
    model_path = os.path.join(options.results_root, entry.model_dir)
    scan = scan_checkpoints(model_path)
    work = plan.classify(_read_wanted(model_path, scan, plan.steps_to_read(scan, state)), state)
    _log_reads(entry, work)
    outcome.failed_steps = dict(work.failures)
    if options.disable_wandb:
        outcome.would_upload = sorted(plan.in_flight_steps(state) | {item.step for item in work.items})
        return outcome, None
    dirty = plan.record_failures(state, work.failures, now_iso()) | plan.note_seen(state, scan)
    for step, sig in work.touched.items():
        state.files[step], dirty = list(sig), True
    if dirty:
        save_state(path, state)
    if work.items or state.in_flight:
        return outcome, Job(entry, path, work.items)
    return outcome, None


def _read_wanted(
    model_path: str, scan: Dict[int, Optional[FileSig]], steps: List[int]
) -> Dict[int, Tuple[FileSig, MetricsResult]]:
    """Given the steps the plan wants, read their metrics files (only those)."""
    reads: Dict[int, Tuple[FileSig, MetricsResult]] = {}
    for step in steps:
        sig = scan[step]
        if sig is not None:
            reads[step] = (sig, read_metrics(os.path.join(model_path, checkpoint_dir_name(step))))
    return reads


def _log_reads(entry: ModelEntry, work: plan.Classified) -> None:
    for step, reason in sorted(work.failures.items()):
        log.warning("model %s checkpoint %d: skipped, will retry: %s", entry.model_dir, step, reason)
    for step, reason in sorted(work.broken_rewrites.items()):
        log.warning(
            "model %s checkpoint %d: rewritten file unusable, keeping uploaded values: %s",
            entry.model_dir,
            step,
            reason,
        )
    for item in work.items:
        if item.revision:
            log.warning(
                "model %s checkpoint %d: metrics changed after upload; logging revision %d",
                entry.model_dir,
                item.step,
                item.revision,
            )
