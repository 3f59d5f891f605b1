"""A pool of long-lived upload workers for one pass: each run's session attempts, retried, in workers.

The pool starts workers (:mod:`local.upload.worker`) from a forkserver that has already loaded
the SDK, lazily: a new one only when every live worker's ``slots`` are taken, up to ``workers``
of them. A worker that retires (after a session that did not end cleanly, or after
``worker_sessions`` sessions) gets no new session; it exits once its sessions ended, and a fresh
worker takes its place when one is needed. A session that overruns its deadline gets its
worker killed (the worker's other sessions end as transient failures and are retried: each
recovers from its in-flight record). Transient attempts are retried with :data:`WANDB_RETRY`,
never in the worker that failed; the retry after a failure mid-upload is the recovery path of
:mod:`local.upload.session`.

Sizing, measured on 2 cores at 50 ms per request (``bench/upload.md``): 16 sessions at once per
worker cost less CPU per run than fewer (one ``wandb-core``'s fixed polling serves them all),
and CPU per run is the same with 1 to 4 workers (the pass is CPU-bound): 2 workers take 200 runs
in about 15 s, 3 or 4 about 13-17% less for 115-140 MiB more, 1 about 50% more. The default is 2,
the least memory within the target. On a bigger machine give one worker per core (``--workers``);
each adds about 150 MiB with its ``wandb-core``. A worker retires after 50 sessions: it grows by
about 0.4 MiB per run, and must stay below the SDK's artifact cache (:mod:`local.upload.worker`
says why).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Dict, List, Optional, Tuple

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from local.logsetup import JsonLineFormatter
from local.upload.failures import WandbTransientError
from local.upload.plan import Job
from local.upload.report import ModelOutcome, UploadOptions, WriterOptions
from local.upload.retry_budget import within_budget
from local.upload.worker import BOUNCED, worker_main

log = logging.getLogger(__name__)

# Retry policy for upload session attempts: bounded by attempts and total time, jittered exponential wait.
WANDB_RETRY = Retrying(
    retry=retry_if_exception_type(WandbTransientError),
    stop=stop_after_attempt(4) | stop_after_delay(600),
    wait=wait_exponential_jitter(multiplier=2, max=60, jitter=2),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)
# Loaded once in the forkserver, so no worker pays for them: the worker and, through it, wandb,
# plus what the SDK imports lazily in every new process on its first run (launch inputs with
# pydantic, the public API, artifacts): about half of a fresh process's CPU before its first row.
PRELOAD = (
    "local.upload.worker",
    "local.upload.session",
    "wandb.sdk.launch.inputs.internal",
    "wandb.apis.public",
    "wandb.sdk.artifacts._internal_artifact",
    "wandb.sdk.artifacts._generated.operations",
)
DIED = "died"
_CONTEXT: Optional[Any] = None


def retry_policy(options: WriterOptions) -> Retrying:
    """Given writer options, return :data:`WANDB_RETRY` with their attempt and wait budget."""
    return within_budget(WANDB_RETRY, options, total_seconds=600)


class _TransientOutcome(WandbTransientError):
    """An attempt ended with a transient failure; carries its outcome to the retry loop."""

    def __init__(self, outcome: ModelOutcome) -> None:
        super().__init__(outcome.error or "transient failure")
        self.outcome = outcome


def run_job(pool: WorkerPool, job: Job) -> ModelOutcome:
    """Given a job, run session attempts in the pool's workers until one is not transient."""
    recovered: List[int] = []
    workers: List[int] = []

    def attempt() -> ModelOutcome:
        outcome = pool.attempt(job)
        recovered.extend(outcome.recovered_steps)
        workers.extend(outcome.worker_pids)
        if outcome.error_kind == "transient":
            raise _TransientOutcome(outcome)
        return outcome

    try:
        outcome = retry_policy(pool.options.writer)(attempt)
    except _TransientOutcome as exc:
        outcome = exc.outcome
    outcome.recovered_steps = sorted(set(recovered))
    outcome.worker_pids = workers
    return outcome


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(list(PRELOAD))
    return _CONTEXT


def _log_config() -> Tuple[str, str]:
    root = logging.getLogger()
    json_lines = any(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers)
    return logging.getLevelName(root.level), "json" if json_lines else "text"


def deadline(options: UploadOptions) -> float:
    """Given the pass's options, return how long one session may take before its worker is killed."""
    writer = options.writer
    return writer.init_timeout + writer.finish_timeout + options.orphan_wait_seconds + 60.0


class _Handle:
    """The pool's side of one worker: its process, its pipe, and the sessions it is running."""

    def __init__(self, process: Any, conn: Any) -> None:
        self.process, self.conn = process, conn
        self.send_lock = threading.Lock()  # attempts of several threads write to one pipe
        self.reader: Optional[threading.Thread] = None
        self.pending: Dict[int, Future] = {}
        self.started = 0
        self.retiring = self.stopping = self.dead = False
        self.kill_reason = ""

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)


class WorkerPool:
    """Long-lived upload workers for one pass; :meth:`attempt` is safe to call from many threads."""

    def __init__(self, options: UploadOptions) -> None:
        self.options = options
        self.size, self.slots = max(1, options.workers), max(1, options.worker_slots)
        self.handles: List[_Handle] = []
        self.cond = threading.Condition()
        self.numbers = itertools.count(1)
        self.closed = False

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def attempt(self, job: Job) -> ModelOutcome:
        """Given a job, run one session attempt in a worker and return its outcome (never raises)."""
        while True:
            handle, number, future = self._acquire()
            self._send(handle, ("job", number, job, self.options))
            try:
                kind, outcome = future.result(timeout=deadline(self.options))
            except FutureTimeout:
                self._kill(handle, f"a session exceeded {deadline(self.options):.0f} s")
                kind, outcome = future.result()
            if kind == BOUNCED:
                continue  # the worker retired meanwhile: another one runs this attempt
            if kind == DIED:
                return self._died(job, handle)
            return outcome

    def close(self) -> None:
        """Tell every worker to exit once idle, and wait for them (bounded; then killed)."""
        with self.cond:
            self.closed = True
            handles = list(self.handles)
            for handle in handles:
                self._stop(handle)
        for handle in handles:
            assert handle.reader is not None
            handle.reader.join(timeout=30)  # the reader reaps its worker once the pipe closes
            if handle.reader.is_alive():
                self._kill(handle, "did not exit when the pass ended")
                handle.reader.join()

    def _acquire(self) -> Tuple[_Handle, int, Future]:
        """Reserve a slot: the least busy live worker's, else a new worker's, else wait for one."""
        with self.cond:
            while True:
                live = [h for h in self.handles if not (h.dead or h.retiring)]
                free = [h for h in live if len(h.pending) < self.slots]
                if free:
                    handle = min(free, key=lambda h: len(h.pending))
                    break
                if len(live) < self.size:
                    handle = self._start()
                    break
                self.cond.wait()
            number, future = next(self.numbers), Future()  # type: Tuple[int, Future[Tuple[str, Any]]]
            handle.pending[number] = future
            handle.started += 1
            if handle.started >= self.options.worker_sessions:
                handle.retiring = True  # memory: a process serving runs grows with each
            return handle, number, future

    def _start(self) -> _Handle:
        ctx = _context()
        receiver, sender = ctx.Pipe(duplex=True)
        args = (sender, os.getpid(), dict(os.environ), _log_config(), self.slots)
        process = ctx.Process(target=worker_main, args=args, name="upload-worker")
        process.start()
        sender.close()
        handle = _Handle(process, receiver)
        self.handles.append(handle)
        handle.reader = threading.Thread(
            target=self._read, args=(handle,), name="upload-worker-reader", daemon=True
        )
        handle.reader.start()
        log.debug("started upload worker %d", handle.pid)
        return handle

    def _read(self, handle: _Handle) -> None:
        """Given a worker, hand each reply to its waiting attempt; on EOF end every attempt left."""
        while True:
            try:
                kind, number, outcome, retiring = handle.conn.recv()
            except (EOFError, OSError):
                break
            with self.cond:
                future = handle.pending.pop(number)
                handle.retiring = handle.retiring or retiring
                self._stop_if_idle(handle)
                self.cond.notify_all()
            future.set_result((kind, outcome))
        handle.process.join()
        with self.cond:
            handle.dead = True
            left, handle.pending = handle.pending, {}
            self.cond.notify_all()
        for future in left.values():
            future.set_result((DIED, None))
        handle.conn.close()

    def _stop_if_idle(self, handle: _Handle) -> None:
        if (handle.retiring or self.closed) and not handle.pending:
            self._stop(handle)

    def _stop(self, handle: _Handle) -> None:
        """Ask a worker to exit (it finishes its running sessions first); called holding the lock."""
        if handle.stopping or handle.dead:
            return
        handle.stopping = True
        self._send(handle, ("exit",))

    def _send(self, handle: _Handle, message: Any) -> None:
        with handle.send_lock:
            try:
                handle.conn.send(message)
            except (BrokenPipeError, OSError):
                pass  # the worker died: its reader ends every attempt it held

    def _kill(self, handle: _Handle, reason: str) -> None:
        """Given a worker, SIGKILL it; its reader then ends the attempts it held with ``reason``."""
        with self.cond:
            handle.kill_reason = handle.kill_reason or reason
            dead = handle.dead
        if not dead:
            handle.process.kill()  # only the reader joins it: two joins would race on its sentinel

    def _died(self, job: Job, handle: _Handle) -> ModelOutcome:
        target = job.target
        outcome = ModelOutcome(target.model_dir, target.run_id, target.variant, error_kind="transient")
        if handle.kill_reason:
            what = f"was killed ({handle.kill_reason})"
        else:
            what = f"died (exit code {handle.process.exitcode})"
        outcome.error = f"model {target.label}, run {target.run_id}: upload worker {handle.pid} {what}"
        outcome.worker_pids = [handle.pid]
        log.error("%s", outcome.error)
        return outcome
