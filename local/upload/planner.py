"""Plan one model's uploads in the uploader process: the file I/O around the pure rules of plan.py.

Per model: list checkpoint folders (one ``scandir``), stat their metrics files, and read only the
files new or changed for any of the model's runs (the per-checkpoint run and the epoch run share
one read). Per run: sort the reads into rows to log and failures, record them in that run's state,
and return the job for an upload worker. No W&B call here; a run with nothing to log gets no job.
A run that was clean at the last pass and whose scan and state file did not change since is
skipped without loading its state (:mod:`local.upload.clean_runs`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence, Set, Tuple

from local.upload import plan, reconcile
from local.upload.cache import OFFLINE_NOTE, open_state, planning_view
from local.upload.clean_runs import CleanRuns, scan_key
from local.upload.credentials import key_available
from local.upload.epoch import read_trainer_epoch, stable_epoch
from local.upload.failures import WandbPermanentError, WandbTransientError
from local.upload.metrics import FileSig, MetricsResult, read_metrics, scan_checkpoints
from local.upload.parallel_scan import scan_keys
from local.upload.plan import Job
from local.upload.report import ModelOutcome, UploadOptions
from local.upload.state import ModelState, save_state, state_path
from local.upload.targets import RunTarget
from remote.contract.files import now_iso
from remote.contract.manifest import ModelEntry
from remote.contract.tree import checkpoint_dir_name

log = logging.getLogger(__name__)

Reads = Dict[int, Tuple[FileSig, MetricsResult]]
Planned = Tuple[ModelOutcome, Optional[Job]]


def unchanged_models(
    models: Sequence[Tuple[ModelEntry, Sequence[RunTarget]]], options: UploadOptions, clean: CleanRuns
) -> List[bool]:
    """Given the pass's models, say of each whether every run is still clean: no planning needed.

    Only models whose every run was clean at the last pass are scanned here, shared out over a
    few processes (:mod:`local.upload.parallel_scan`); any other is scanned by :func:`plan_model`.
    """
    state_dir = options.model_state_dir()
    paths = [[state_path(state_dir, t.model_dir, t.run_id) for t in targets] for _, targets in models]
    candidates = [index for index, runs in enumerate(paths) if runs and all(map(clean.knows, runs))]
    keys = scan_keys([os.path.join(options.results_root, models[index][0].model_dir) for index in candidates])
    unchanged = [False] * len(models)
    for index, key in zip(candidates, keys):
        unchanged[index] = all(clean.still_clean(path, key) for path in paths[index])
    return unchanged


def unchanged_outcome(target: RunTarget) -> Planned:
    """Given a run with nothing new, return its outcome: nothing to do, no job."""
    return ModelOutcome(target.model_dir, target.run_id, target.variant), None


def plan_model(
    entry: ModelEntry, targets: Sequence[RunTarget], options: UploadOptions, clean: Optional[CleanRuns] = None
) -> List[Planned]:
    """Given a model and its runs, read what is new once and return each run's outcome and job.

    ``clean`` (the pass's :class:`CleanRuns`) lets a run unchanged since it was last clean be skipped
    unread; it is updated with what this planning found.
    """
    model_path = os.path.join(options.results_root, entry.model_dir)
    scan = scan_checkpoints(model_path)
    key = scan_key(scan)
    state_dir = options.model_state_dir()
    planned: Dict[int, Planned] = {}
    states: List[Tuple[int, RunTarget, str, ModelState]] = []
    wanted: Set[int] = set()
    for number, target in enumerate(targets):
        path = state_path(state_dir, target.model_dir, target.run_id)
        if clean is not None and clean.still_clean(path, key):
            planned[number] = unchanged_outcome(target)
            continue
        state = open_state(path, state_dir, target.model_dir, target.run_id, options.disable_wandb)
        states.append((number, target, path, state))
        wanted.update(plan.steps_to_read(scan, planning_view(state, options.writer.mode)))
    reads = _read_wanted(model_path, scan, sorted(wanted)) if states else {}
    for number, target, path, state in states:
        planned[number] = _plan_run(
            target, path, state, scan, reads, options, log_reads=number == states[0][0]
        )
        if clean is not None:
            _remember(clean, path, key, state, planned[number], options)
    return [planned[number] for number in range(len(targets))]


def _remember(
    clean: CleanRuns, path: str, key: int, state: ModelState, planned: Planned, options: UploadOptions
) -> None:
    """Given a run just planned, record it as clean when a later unchanged pass would plan nothing."""
    outcome, job = planned
    quiet = not (outcome.error or outcome.failed_steps or outcome.note or outcome.would_upload)
    if job is None and quiet and state.trusted and not (state.in_flight or state.blocked):
        if not options.disable_wandb:  # a dry run writes nothing, not even derived data
            clean.record(path, key)
    else:
        clean.forget(path)


def _plan_run(
    target: RunTarget,
    path: str,
    state: ModelState,
    scan: Dict[int, Optional[FileSig]],
    reads: Reads,
    options: UploadOptions,
    log_reads: bool,
) -> Planned:
    """Given one run's state and the model's reads, record failures and return its job."""
    outcome = ModelOutcome(target.model_dir, target.run_id, target.variant)
    if state.blocked and not options.disable_wandb:
        blocked = state.blocked
        outcome.error_kind = "permanent"
        outcome.error = (
            f"model {target.label}, run {target.run_id}: {blocked.get('reason')} "
            f"(since {blocked.get('time')}); fix: {blocked.get('fix')}"
        )
        log.error("%s", outcome.error)
        return outcome, None
    work = plan.classify(reads, planning_view(state, options.writer.mode))
    if not state.trusted and options.writer.mode != "online":
        outcome.note = OFFLINE_NOTE
    if log_reads:
        _log_reads(target.model_dir, work)
    outcome.failed_steps = dict(work.failures)
    items = describe(work.items, scan, target.entry, options.results_root)
    if options.disable_wandb:
        return dry_run(target, state, items, outcome, options), None
    dirty = plan.record_failures(state, work.failures, now_iso()) | plan.note_seen(state, scan)
    dirty |= not state.trusted and not os.path.exists(path)  # keep a converted state as ours
    for step, sig in work.touched.items():
        if state.files.get(step) != list(sig):
            state.files[step], dirty = list(sig), True
    if dirty:
        save_state(path, state)
    if items or state.in_flight:
        return outcome, Job(target, path, items)
    return outcome, None


def describe(
    items: List[plan.Item], scan: Dict[int, Optional[FileSig]], entry: ModelEntry, results_root: str
) -> List[plan.Item]:
    """Given new items, fix each one's position among the model's checkpoints and its stable epoch."""
    positions = {step: number for number, step in enumerate(sorted(scan), start=1)}
    described = []
    for item in items:
        folder = os.path.join(results_root, entry.model_dir, checkpoint_dir_name(item.step))
        epoch = stable_epoch(item.step, item.metrics, read_trainer_epoch(folder), entry)
        described.append(dataclasses.replace(item, index=positions.get(item.step), epoch=epoch))
    return described


def dry_run(
    target: RunTarget,
    state: ModelState,
    items: List[plan.Item],
    outcome: ModelOutcome,
    options: UploadOptions,
) -> ModelOutcome:
    """Given a run's planned items, say what a real pass would upload, and write nothing.

    Where the state cannot vouch for the run, the run is read (online, unless W&B is disabled), so
    the number is the true one: what the run already holds is reported as adopted, not new.
    """
    steps = plan.in_flight_steps(state) | {item.step for item in items}
    can_read = options.writer.mode == "online" and not options.no_network and key_available()
    if not state.trusted and not can_read:
        outcome.note = (
            "not checked against W&B (no network or no API key): checkpoints it may already hold count as new"
        )
    elif not state.trusted:
        # The SDK is loaded only here, when a run must be read: an ordinary pass never needs it.
        from local.upload.history import read_history

        try:
            held = reconcile.held_checkpoints(read_history(target, options.writer))
        except (WandbTransientError, WandbPermanentError) as exc:
            outcome.error_kind = "permanent" if isinstance(exc, WandbPermanentError) else "transient"
            outcome.error = f"model {target.label}, run {target.run_id}: cannot read what W&B holds ({exc})"
            log.error("%s", outcome.error)
            return outcome
        to_log, outcome.adopted_steps = reconcile.sort_items(state, items, held)
        steps = {item.step for item in to_log}
    outcome.would_upload = sorted(steps)
    return outcome


def _read_wanted(model_path: str, scan: Dict[int, Optional[FileSig]], steps: List[int]) -> Reads:
    """Given the steps some run wants, read their metrics files (only those)."""
    reads: Reads = {}
    for step in steps:
        sig = scan[step]
        if sig is not None:
            reads[step] = (sig, read_metrics(os.path.join(model_path, checkpoint_dir_name(step))))
    return reads


def _log_reads(model_dir: str, work: plan.Classified) -> None:
    for step, reason in sorted(work.failures.items()):
        log.warning("model %s checkpoint %d: skipped, will retry: %s", model_dir, step, reason)
    for step, reason in sorted(work.broken_rewrites.items()):
        log.warning(
            "model %s checkpoint %d: rewritten file unusable, keeping uploaded values: %s",
            model_dir,
            step,
            reason,
        )
    for item in work.items:
        if item.revision:
            log.warning(
                "model %s checkpoint %d: metrics changed after upload; logging revision %d",
                model_dir,
                item.step,
                item.revision,
            )
