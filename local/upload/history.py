"""The W&B read edge: what a run already holds, read through the public API (``wandb.Api()``).

Used only to reconcile (local.upload.reconcile): when a model's state cannot vouch for its run. An
ordinary pass never calls it. One read is the run's metadata plus a full history scan (every row:
the rows of the original tool carry ``checkpoint_step`` and ``eval/*`` like ours), bypassing the
SDK's local history cache, which could be stale.

Guard against a stale read: W&B may serve a history page that lags behind what was just streamed;
a scan with fewer rows than the run's ``historyLineCount`` is treated as "cannot be read yet"
(transient), never as the truth. Read errors are sorted like write errors: a missing run is an
empty history, bad credentials are permanent, everything else is transient and retried with the
named policy :data:`HISTORY_READ_RETRY` (bounded, exponential backoff with jitter). A run that
cannot be read is not uploaded in that pass: nothing is guessed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List

import wandb
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from local.upload.failures import WandbPermanentError, WandbTransientError
from local.upload.report import WriterOptions
from local.upload.retry_budget import within_budget
from local.upload.targets import RunTarget
from local.upload.writer import classify_error

log = logging.getLogger(__name__)

# Pages are ranges of _step, not of rows: the original tool's runs have sparse steps (the checkpoint
# step), so a wide page keeps a read to one or two requests.
PAGE_SIZE = 10_000
# A read attempt may take this many request timeouts (a run, its keys, a few pages).
READ_DEADLINE_FACTOR = 4
NOT_FOUND = "could not find run"

HISTORY_READ_RETRY = Retrying(
    retry=retry_if_exception_type(WandbTransientError),
    stop=stop_after_attempt(4) | stop_after_delay(300),
    wait=wait_exponential_jitter(multiplier=2, max=30, jitter=2),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)


def run_path(target: RunTarget) -> str:
    """Given a run, return its public-API path (``entity/project/id``, or ``project/id``)."""
    entry = target.entry
    parts = [entry.wandb_entity, entry.wandb_project, target.run_id]
    return "/".join(part for part in parts if part)


def read_policy(options: WriterOptions) -> Retrying:
    """Given writer options, return :data:`HISTORY_READ_RETRY` with their attempt and wait budget."""
    return within_budget(HISTORY_READ_RETRY, options, total_seconds=300)


def read_history(target: RunTarget, options: WriterOptions) -> List[Dict[str, Any]]:
    """Given a run, return every history row it holds (empty when W&B has no such run).

    Each request may take ``init_timeout`` seconds (wandb-core retries 5xx and 429 inside it);
    whole reads are retried by :func:`read_policy`. Raises WandbPermanentError (credentials) or
    WandbTransientError once the retries ran out.
    """
    return read_policy(options)(_read_once, target, options.init_timeout)


def _read_once(target: RunTarget, timeout: float) -> List[Dict[str, Any]]:
    """Read the run once, bounded in time: wandb-core retries a failing history page for ~16 minutes."""
    found: List[Any] = []
    reader = threading.Thread(target=_scan, args=(target, timeout, found), name="history-read", daemon=True)
    reader.start()
    reader.join(READ_DEADLINE_FACTOR * timeout)
    if reader.is_alive():
        # The thread is left to the process's end (sessions exit when done; the CLI too).
        raise WandbTransientError(
            f"reading the history of run {target.run_id} took over {READ_DEADLINE_FACTOR * timeout:.0f} s"
        )
    if isinstance(found[0], BaseException):
        return _translate(target, found[0])
    run, rows = found[0]
    expected = run._attrs.get("historyLineCount")
    if isinstance(expected, int) and len(rows) < expected:
        raise WandbTransientError(
            f"W&B served {len(rows)} of the {expected} history rows of run {target.run_id}: "
            "its history is not readable yet"
        )
    return rows


def _scan(target: RunTarget, timeout: float, found: List[Any]) -> None:
    try:
        run = wandb.Api(timeout=max(1, int(timeout))).run(run_path(target))
        found.append((run, [dict(row) for row in run.scan_history(page_size=PAGE_SIZE, use_cache=False)]))
    except Exception as exc:  # noqa: BLE001 - a thread boundary: every failure travels back to the caller
        found.append(exc)


def _translate(target: RunTarget, exc: BaseException) -> List[Dict[str, Any]]:
    """Given a read failure, return the empty history of a missing run, or raise it sorted."""
    if NOT_FOUND in str(exc).lower():
        return []
    error = classify_error(exc)
    if isinstance(error, WandbPermanentError) and "deleted" in str(error):
        return []  # a deleted run holds nothing; writing to it says so (409) with the fix
    raise error from exc
