"""The only module that talks to the wandb SDK: open a run, log rows, set summary, finish.

Settings turn off everything an uploader does not need (system stats, machine info, code and
git capture, requirements, console capture, job artifacts, the early viewer query) and bound
every wait: ``init_timeout`` for ``wandb.init`` and ``finish_timeout`` with
``finish_timeout_raises`` so ``finish()`` raises instead of returning with data unsent (a
silent return there would let the caller mark unsent rows processed).

SDK errors are sorted into :class:`WandbPermanentError` (401/403, a deleted run's 409, bad
arguments: retrying cannot help) and :class:`WandbTransientError` (timeouts, 429, 5xx, refused
connections), both defined SDK-free in :mod:`local.upload.failures`. Whole session attempts are
retried by the pool with its named tenacity policy (:data:`local.upload.pool.WANDB_RETRY`), never
in the worker that failed (:mod:`local.upload.worker` says why); an attempt that failed
mid-upload leaves its in-flight record, and the next attempt or pass recovers from what the
server actually holds.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Dict, List, Optional

import wandb
from wandb.sdk.lib.service.service_connection import WandbApiFailedError
from wandb.sdk.mailbox.mailbox_handle import ServerResponseError

from local.upload.failures import AUTH_FIX, DELETED_FIX, WandbPermanentError, WandbTransientError
from local.upload.report import WriterOptions
from local.upload.targets import RunTarget

log = logging.getLogger(__name__)


# What the SDK says when the server or the network failed, whatever exception carries it.
TRANSIENT_MARKERS = (
    "busy",
    "did not respond",
    "timed out",
    "timeout",
    "temporarily",
    "unavailable",
    "connection",
    " 429",
    " 500",
    " 502",
    " 503",
    " 504",
)
# Every exception the SDK lets escape from init, log, summary and finish (measured, wandb 0.31.0):
# its own errors (CommError, AuthenticationError, UsageError, ...), the service connection's and
# the mailbox's, and timeouts and socket errors of its client.
SDK_ERRORS = (wandb.errors.Error, ServerResponseError, WandbApiFailedError, TimeoutError, OSError)


def run_settings(options: WriterOptions) -> wandb.Settings:
    """Given writer options, return SDK settings: bounded waits, and (lean) no collection."""
    values: Dict[str, Any] = {
        "init_timeout": options.init_timeout,
        "finish_timeout": options.finish_timeout,
        "finish_timeout_raises": True,
        "silent": True,
        "x_disable_viewer": True,
    }
    if options.mode == "online":
        # The local transaction log (run-*.wandb) exists to be `wandb sync`ed after a failure,
        # which would duplicate rows here: recovery reads the server instead (the in-flight
        # record), and a finished run's folder is deleted anyway. Not writing it saves about
        # 5% of a run's CPU (measured, bench/upload.md). Offline runs *are* that log: kept.
        values["x_skip_transaction_log"] = True
    if options.lean:
        values.update(
            x_disable_stats=True,
            x_disable_machine_info=True,
            x_disable_meta=True,
            x_save_requirements=False,
            save_code=False,
            disable_code=True,
            disable_git=True,
            console="off",
            disable_job_creation=True,
        )
    return wandb.Settings(**values)


def classify_error(exc: BaseException) -> Exception:
    """Given an SDK exception, return the matching transient or permanent error.

    Sorted by what happened, not by the exception's type: the SDK verifies the login on its own
    when a table is logged, and a 5xx or a timeout there arrives as ``AuthenticationError`` ("failed
    to verify credentials ...: the service process is busy"), which retrying later fixes.
    """
    # The SDK appends multi-line advice ("Consider increasing init_timeout"); keep the first line.
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    lowered = text.lower()
    if "deleted" in lowered or "409" in lowered or "conflict" in lowered:
        return WandbPermanentError(f"W&B says the run was deleted ({text})", DELETED_FIX)
    if any(marker in lowered for marker in TRANSIENT_MARKERS):
        return WandbTransientError(text)
    auth_words = ("401", "403", "unauthorized", "forbidden", "permission", "api key", "authenticat")
    if isinstance(exc, wandb.errors.AuthenticationError) or any(word in lowered for word in auth_words):
        return WandbPermanentError(f"W&B refused the credentials ({text})", AUTH_FIX)
    if isinstance(exc, wandb.errors.UsageError):
        return WandbPermanentError(f"W&B rejected the run arguments ({text})", "fix the manifest entry")
    return WandbTransientError(text)


class RunSession:
    """One open W&B run for one model; :meth:`open` it, log, then :meth:`finish` or :meth:`abort`."""

    def __init__(self, run: Any, mode: str) -> None:
        self.run = run
        self.mode = mode

    @classmethod
    def open(cls, target: RunTarget, options: WriterOptions) -> RunSession:
        """Given a run target, open (create or resume) its run once; raise a sorted error.

        Not retried here: after a timed-out init this process's wandb-core still holds the
        run id, so retries run in another worker (see :mod:`local.upload.worker`).
        """
        # The SDK types these as Literals; the CLI restricts them to valid choices.
        resume: Any = options.resume
        mode: Any = options.mode
        try:
            run = wandb.init(
                id=target.run_id,
                name=target.run_name,
                project=target.entry.wandb_project,
                entity=target.entry.wandb_entity,
                group=target.group,
                job_type=options.job_type,
                resume=resume,
                mode=mode,
                dir=options.wandb_dir,
                config=target.config(),
                reinit="create_new",
                settings=run_settings(options),
            )
        except SDK_ERRORS as exc:
            raise classify_error(exc) from exc
        run.define_metric("checkpoint_step")
        run.define_metric("eval/*", step_metric="checkpoint_step")
        return cls(run, options.mode)

    @property
    def start_step(self) -> int:
        """The run's first step in this session: on resume, the rows the server already holds.

        ``starting_step`` comes from the server's resume answer (last ``_step`` + 1); ``run.step``
        reads 0 after a resume until the first log in wandb 0.31, so it cannot be used here.
        """
        return int(self.run.starting_step)

    def log_rows(self, rows: List[Dict[str, Any]], table: Optional[Dict[str, Any]]) -> None:
        """Given history rows in order, log one row each; the table rides on the last row."""
        for index, row in enumerate(rows):
            if table is not None and index == len(rows) - 1:
                row = dict(row)
                row[table["key"]] = wandb.Table(columns=table["columns"], data=table["data"])
            try:
                self.run.log(row)
            except SDK_ERRORS as exc:
                raise classify_error(exc) from exc

    def set_summary(self, values: Dict[str, Any]) -> None:
        """Given summary values, set them on the run."""
        try:
            self.run.summary.update(values)
        except SDK_ERRORS as exc:
            raise classify_error(exc) from exc

    def finish(self) -> None:
        """Finish the run; return only when W&B confirmed every row, else raise."""
        run_dir = os.path.dirname(self.run.dir) if self.mode == "online" else None
        try:
            self.run.finish()
        except SDK_ERRORS as exc:
            raise classify_error(exc) from exc
        if run_dir:
            # The server has it all; the local copy would only grow by one folder per pass.
            shutil.rmtree(run_dir, ignore_errors=True)

    def abort(self) -> None:
        """Best effort: end a failed run without waiting long; errors here change nothing."""
        self._end(exit_code=1)

    def close_unchanged(self) -> None:
        """Best effort: end a session that logged nothing as a normal one (the run is not failed)."""
        self._end(exit_code=0)

    def _end(self, exit_code: int) -> None:
        try:
            self.run.finish(exit_code=exit_code)
        except SDK_ERRORS as exc:
            log.debug("ending the run (exit code %d) raised %s", exit_code, exc)


def core_pids_of(parent_pid: int) -> List[int]:
    """Given a (possibly dead) uploader pid, return the wandb-core processes it started.

    The SDK starts ``wandb-core ... --pid <parent>``; after the parent is SIGKILLed that child
    may still be flushing rows. Linux /proc only; elsewhere nothing is found.
    """
    found: List[int] = []
    marker = ["--pid", str(parent_pid)]
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                args = handle.read().decode("utf-8", "replace").split("\x00")
        except OSError:
            continue
        if args and args[0].endswith("wandb-core") and _contains(args, marker):
            found.append(int(name))
    return found


def _contains(args: List[str], marker: List[str]) -> bool:
    return any(args[i : i + len(marker)] == marker for i in range(len(args)))
