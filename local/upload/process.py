"""Run each model's upload session in its own short-lived process (one per attempt).

Why a process per session: a ``wandb.init`` that timed out (W&B down, a deleted run's 409)
leaves its stream registered in the SDK's ``wandb-core`` service, so every later
``wandb.init`` of that run id *in the same process* fails with "run ID is in use", and
releasing it blocks the service until the server answers. A fresh process per attempt gets
a fresh ``wandb-core``; the parent also kills an attempt that overruns its deadline, so
nothing hangs. Processes come from a forkserver that has already imported wandb, so an
attempt costs a fork, not an interpreter start. A session process kills itself the moment
the uploader is gone (pidfd watch), so a killed uploader never leaves a writer behind.

Attempts are retried here with the tenacity policy of :mod:`local.upload.writer`; a retry
after a failure mid-upload is simply the recovery path of :mod:`local.upload.session`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Dict, List, Optional, Tuple

from local.logsetup import JsonLineFormatter, configure_logging
from local.upload.report import ModelOutcome, UploadOptions
from local.upload.session import Job, run_session
from local.upload.writer import WandbTransientError, retry_policy

log = logging.getLogger(__name__)

_CONTEXT: Optional[Any] = None


class _TransientOutcome(WandbTransientError):
    """An attempt ended with a transient failure; carries its outcome to the retry loop."""

    def __init__(self, outcome: ModelOutcome) -> None:
        super().__init__(outcome.error or "transient failure")
        self.outcome = outcome


def run_isolated(job: Job, options: UploadOptions) -> ModelOutcome:
    """Given a job, run session attempts in fresh processes until one is not transient."""
    recovered: List[int] = []

    def attempt() -> ModelOutcome:
        outcome = _attempt_in_child(job, options)
        recovered.extend(outcome.recovered_steps)
        if outcome.error_kind == "transient":
            raise _TransientOutcome(outcome)
        return outcome

    try:
        outcome = retry_policy(options.writer)(attempt)
    except _TransientOutcome as exc:
        outcome = exc.outcome
    outcome.recovered_steps = sorted(set(recovered))
    return outcome


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["local.upload.process"])
    return _CONTEXT


def _log_config() -> Tuple[str, str]:
    root = logging.getLogger()
    json_lines = any(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers)
    return logging.getLevelName(root.level), "json" if json_lines else "text"


def _deadline(options: UploadOptions) -> float:
    writer = options.writer
    return writer.init_timeout + writer.finish_timeout + options.orphan_wait_seconds + 60.0


def _attempt_in_child(job: Job, options: UploadOptions) -> ModelOutcome:
    """Given a job, run one attempt in a new process; kill it if it overruns its deadline."""
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    args = (sender, os.getpid(), dict(os.environ), _log_config(), job, options)
    process = ctx.Process(target=_child_main, args=args, name="upload-" + job.target.run_id[:40])
    process.start()
    sender.close()
    try:
        if receiver.poll(_deadline(options)):
            return receiver.recv()
        reason = f"upload process exceeded {_deadline(options):.0f} s and was killed"
    except EOFError:
        reason = f"upload process died (exit code {process.exitcode})"
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    target = job.target
    outcome = ModelOutcome(target.model_dir, target.run_id, target.variant, error_kind="transient")
    outcome.error = f"model {target.label}, run {target.run_id}: {reason}"
    log.error("%s", outcome.error)
    return outcome


def _child_main(
    conn: Connection,
    uploader_pid: int,
    env: Dict[str, str],
    log_config: Tuple[str, str],
    job: Job,
    options: UploadOptions,
) -> None:
    """Session process entry: die with the uploader, run the session, send the outcome, exit."""
    _die_with_uploader(uploader_pid)
    os.environ.clear()
    os.environ.update(env)
    configure_logging(*log_config)
    try:
        outcome = run_session(job, options)
    except Exception as exc:  # noqa: BLE001 - a bug must reach the parent as an outcome, not a hang
        target = job.target
        log.exception("model %s: internal error in the upload session", target.label)
        outcome = ModelOutcome(target.model_dir, target.run_id, target.variant, error_kind="refused")
        outcome.error = f"internal error: {exc!r}"
    conn.send(outcome)
    conn.close()
    # Skip the SDK's atexit teardown: it may wait on a stream that can never flush. The run
    # was finished (or the attempt failed and the next one recovers from the server's count).
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_uploader(uploader_pid: int) -> None:
    """Given the uploader's pid, SIGKILL this session the moment the uploader is gone.

    The session's parent is the forkserver, which itself outlives a SIGKILLed uploader while
    sessions hold its pipe, so PR_SET_PDEATHSIG alone is not enough: a watcher thread waits on
    a pidfd of the uploader. A killed uploader must not leave a writer behind the lock.
    """
    try:
        pidfd = os.pidfd_open(uploader_pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        return
    except (OSError, AttributeError):
        pidfd = -1  # no pidfd (old kernel or not Linux): poll the pid instead

    def watch() -> None:
        if pidfd >= 0:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll()
        else:
            while _alive(uploader_pid):
                time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="uploader-watch", daemon=True).start()
