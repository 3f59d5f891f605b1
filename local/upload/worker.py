"""An upload worker: a long-lived process that runs many upload sessions on one ``wandb-core``.

Why long-lived: a process that starts its own ``wandb-core`` and loads the SDK's lazily imported
modules (launch inputs, the public API, artifacts) spends about 0.35 s of CPU before its first
row; a worker pays that once and then about 0.07-0.1 s per run (``bench/upload.md``). It runs up
to ``slots`` sessions at once (threads, ``reinit="create_new"``), because one ``wandb-core``
serving several runs spends less CPU per run than several serving one each.

Why it still keeps the isolation of a process per session: a ``wandb.init`` that failed or
timed out leaves its run registered in *this* process's ``wandb-core`` ("run ID is in use" on
the next init of that id), and a session cut by an error may leave a stream there. So a worker
**retires** after any session that did not end cleanly: it starts no new session (a job that
arrives afterwards is bounced back to the pool, which sends it to another worker), finishes the
ones it is running, and exits when the pool says so. Retries of the failed run therefore always
run in another process, as before. The pool also retires a worker after a bounded number of
sessions (a process serving runs grows with each) and kills one whose session overran its
deadline.

Sessions in one process share the SDK's module state, and one piece of it is not thread-safe in
wandb 0.31: every logged table creates an artifact, cached in a ``CappedDict(100)`` that, once
full, prunes itself with a check-then-delete that races between threads (``KeyError`` from
``run.log``, seen with 16 sessions at once after about 100 tables). So a worker never runs more
sessions than that cache holds (:func:`session_limit`): it never prunes, and nothing races.

A worker kills itself the moment the uploader is gone (pidfd watch), so a killed uploader never
leaves a writer behind the lock; its ``wandb-core`` follows within about 2 s.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Dict, Tuple

from local.logsetup import configure_logging
from local.upload.plan import Job
from local.upload.report import ModelOutcome, UploadOptions

log = logging.getLogger(__name__)

# Messages between the pool and a worker: ("job", number, job, options) and ("exit",) to the
# worker; (DONE or BOUNCED, number, outcome or None, retiring) back.
DONE, BOUNCED = "done", "bounced"


def worker_main(
    conn: Connection, uploader_pid: int, env: Dict[str, str], log_config: Tuple[str, str], slots: int
) -> None:
    """Worker process entry: die with the uploader, serve sessions until told to exit, exit hard."""
    _die_with_uploader(uploader_pid)
    os.environ.clear()
    os.environ.update(env)
    configure_logging(*log_config)
    _Worker(conn, slots, session_limit()).serve()
    # Skip the SDK's atexit teardown: it may wait on a stream that can never flush (a failed init).
    # Every run of a clean session was finished; wandb-core exits by itself once this process is gone.
    os._exit(0)


def session_limit() -> int:
    """Return how many sessions this process may run: fewer than the SDK's artifact cache holds.

    One table, so one artifact, per session; the cache prunes (and races) only once full. The
    pool retires workers well before (``worker_sessions``); this guards against an SDK whose
    cache is smaller.
    """
    from wandb.sdk.artifacts import artifact_instance_cache

    return int(getattr(artifact_instance_cache.artifact_instance_cache_by_client_id, "max_size", 100)) - 2


class _Worker:
    """Runs the jobs the pool sends, ``slots`` at a time, until told to exit or retired and idle."""

    def __init__(self, conn: Connection, slots: int, limit: int) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.retiring = False
        self.limit, self.sessions = limit, 0
        self.count_lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix="session")

    def serve(self) -> None:
        """Given the pool's messages, start each job's session in a free slot; return on exit or EOF."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break  # the pool is gone: nothing to report to
            if message[0] != "job":
                break
            _, number, job, options = message
            self.executor.submit(self._run, number, job, options)
        self.executor.shutdown(wait=True)

    def _run(self, number: int, job: Job, options: UploadOptions) -> None:
        with self.count_lock:
            self.sessions += 1
            self.retiring = self.retiring or self.sessions > self.limit
        if self.retiring:
            # A session failed here (no new session may use this wandb-core), or the limit is
            # reached: the pool sends the job to another worker.
            self._send((BOUNCED, number, None, True))
            return
        outcome = _session(job, options)
        outcome.worker_pids = [os.getpid()]
        if outcome.error is not None:
            self.retiring = True  # see the module docstring: never reused after an unclean session
        self._send((DONE, number, outcome, self.retiring))

    def _send(self, message: Any) -> None:
        with self.send_lock:
            try:
                self.conn.send(message)
            except (BrokenPipeError, OSError):
                pass  # the pool is gone; the watchdog ends this process


def _session(job: Job, options: UploadOptions) -> ModelOutcome:
    """Given a job, run its session; a bug becomes an outcome for the pool, never a hung slot."""
    # Imported here, not at the top: the pool imports this module for worker_main, and the
    # uploader process must not load the SDK. Workers have it already (the forkserver preloads it).
    from local.upload.session import run_session

    try:
        return run_session(job, options)
    except Exception as exc:  # noqa: BLE001 - a bug must reach the pool as an outcome, not a hang
        target = job.target
        log.exception("model %s: internal error in the upload session", target.label)
        outcome = ModelOutcome(target.model_dir, target.run_id, target.variant, error_kind="refused")
        outcome.error = f"internal error: {exc!r}"
        return outcome


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_uploader(uploader_pid: int) -> None:
    """Given the uploader's pid, SIGKILL this worker the moment the uploader is gone.

    The worker's parent is the forkserver, which itself outlives a SIGKILLed uploader while
    workers hold its pipe, so PR_SET_PDEATHSIG alone is not enough: a watcher thread waits on
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
