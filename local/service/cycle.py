"""The uploader's cycle (pull -> unpack -> ack -> upload) and the loop that repeats it.

One cycle never stops at a failed step: a failed pull still lets the bundles already in the
inbox be unpacked and uploaded, and every failure is logged and tried again next cycle. The
loop writes a heartbeat file at every step (and while a long upload pass makes progress), with
how many cycles in a row failed, so the container healthcheck can tell a working uploader from a
stuck or failing one (:mod:`local.service.heartbeat` has the rule); SIGTERM/SIGINT end it after
the current step.

Pull only pulls and unpack only unpacks; this module ties them together: it tells pull which
bundle the results root holds (the unpack ledger), and acknowledges to the remote what unpack
applied, once, after unpack. In the loop, the upload pass plans only what unpack wrote and what
the last pass left unfinished, with a periodic full scan (:mod:`local.service.changes`); a cycle
with nothing new has no pass at all.

The SFTP edge (paramiko) is imported only when a remote host is configured, and the uploader
loads the SDK only for a pass with work: an idle cycle loads neither.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from local.errors import UserError
from local.service.changes import Changes
from local.service.heartbeat import REFRESH_SECONDS, LoopRecord, previous_success, write_heartbeat
from local.unpack.apply import UnpackReport, unpack_inbox
from local.unpack.ledger import ledger_path, load_ledger
from local.unpack.tarsafety import Limits
from local.upload.report import UploadOptions
from local.upload.uploader import upload_pass, uploader_lock
from remote.contract.exit_codes import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_TRANSIENT
from remote.contract.files import LockHeldError

if TYPE_CHECKING:
    from local.transfer.pull import PullOptions, PullReport

log = logging.getLogger(__name__)


@dataclass
class CycleOptions:
    """What one cycle needs; ``pull`` is None when no remote host is configured, ``inbox`` None
    when the cycle only uploads (``upload`` without ``--once``)."""

    upload: UploadOptions
    inbox: Optional[str]
    pull: Optional[PullOptions] = None
    limits: Limits = field(default_factory=Limits)
    full_scan_every: int = 1  # the loop's --full-scan-every (see local.service.changes)


@dataclass
class CycleReport:
    """The exit code of each step that ran, and the one-line errors of those that failed."""

    codes: Dict[str, int] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)

    def exit_code(self) -> int:
        """Return the worst step's exit code (0 when every step succeeded)."""
        return max(self.codes.values(), default=EXIT_OK)

    def failed(self) -> bool:
        """Say whether the service failed at its job this cycle (what health counts).

        A step that could not run, or an upload that hit a transient or permanent W&B failure,
        is a failed cycle. A checkpoint with bad metrics (exit 1 without a step error) is not:
        the service did its job, the data is at fault, and ``status`` names it.
        """
        return bool(self.errors) or self.exit_code() >= EXIT_TRANSIENT


def _step(report: CycleReport, name: str, action: Callable[[], int]) -> None:
    """Run one step; turn its known failures into a code and a logged line, never an exception."""
    try:
        report.codes[name] = action()
    except (UserError, LockHeldError) as exc:
        code = exc.exit_code if isinstance(exc, UserError) else EXIT_BUSY
        message = exc.message if isinstance(exc, UserError) else str(exc)
        report.codes[name] = code
        report.errors.append(f"{name}: {message}")
        log.error("%s failed: %s", name, message)
    except OSError as exc:
        # Disk full, permissions, a vanished mount: logged, and the next cycle tries again.
        report.codes[name] = EXIT_FAILED
        report.errors.append(f"{name}: {exc}")
        log.error("%s failed: %s", name, exc)


def sync_remote(options: PullOptions, results_root: str, retrying: Any = None) -> PullReport:
    """Given pull options and the local results root, pull what is new, then ack what is applied.

    What the ``pull`` command does with ``--results-root``: the ledger says where the local side
    is, and the ack tells the remote what the ledger says was applied (bundles unpacked since the
    last pull), so the training machine can prune. One SFTP connection for both.
    """
    from local.transfer.ack import acknowledge
    from local.transfer.pull import pull
    from local.transfer.sftp import SftpSession

    with SftpSession(options.params, retrying) as session:
        report = pull(session, options, load_ledger(results_root).applied_seq, ledger_path(results_root))
        applied = load_ledger(results_root).applied_seq
        if applied and applied != report.remote_ack_seq:
            acknowledge(session, options.remote_outbox, options.consumer, applied)
            report.acked_seq = applied
    return report


def run_cycle(
    options: CycleOptions,
    take_upload_lock: bool = True,
    on_step: Callable[[str], None] = lambda _: None,
    changes: Optional[Changes] = None,
) -> CycleReport:
    """Given the options, pull (if configured), unpack, ack and upload once.

    ``on_step`` is told the name of each step before it runs (the loop's heartbeat), and again,
    at most every :data:`REFRESH_SECONDS`, while the upload pass makes progress. ``changes`` (the
    loop's memory) makes the upload plan from what unpack wrote; without it, a full scan.
    """
    report = CycleReport()
    pull_options = options.pull
    pulled: List[PullReport] = []
    if pull_options is not None:
        on_step("pull")
        _step(report, "pull", lambda: _pull(pull_options, options.upload.results_root, pulled))
    on_step("unpack")
    applied_seq = _unpack(report, options, changes)
    remote_ack = pulled[0].remote_ack_seq if pulled else None
    if pull_options is not None and pulled and applied_seq and applied_seq != remote_ack:
        # Ack once, right after unpack, so the remote can prune sooner; only when the remote's ack
        # is behind, so an idle cycle costs one SFTP connection, not two; never after a failed
        # pull (the remote is unreachable; a later cycle acks instead).
        _step(report, "ack", lambda: _ack(pull_options, applied_seq))
    on_step("upload")
    if pull_options is not None and not os.path.isfile(options.upload.manifest()):
        # Nothing pulled yet. After a pull that worked, that is a fresh install before the training
        # machine's first pack: the normal first state. After a failed pull, the pull's error says
        # it all; "manifest not found" would only hide it.
        if pulled:
            log.info("nothing pulled yet: the remote outbox has no bundle, so there is nothing to upload")
            report.codes["upload"] = EXIT_OK
    elif changes is not None and changes.idle():
        log.debug("nothing new since the last pass: no upload pass this cycle")
        changes.skipped()
        report.codes["upload"] = EXIT_OK
    else:
        progress = _at_most_every(REFRESH_SECONDS, lambda: on_step("upload"))
        _step(report, "upload", lambda: _upload(options.upload, take_upload_lock, changes, progress))
    log.info("cycle done: exit %d%s", report.exit_code(), "".join("; " + e for e in report.errors))
    return report


def _at_most_every(seconds: float, action: Callable[[], None]) -> Callable[[], None]:
    """Given an action, return a callable that runs it when ``seconds`` passed since it last did."""
    last = [time.monotonic()]

    def maybe() -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            action()

    return maybe


def _upload(
    options: UploadOptions, take_lock: bool, changes: Optional[Changes], on_progress: Callable[[], None]
) -> int:
    """Run the pass: all models, or (the loop, between full scans) those ``changes`` names."""
    if changes is None:
        return upload_pass(options, take_lock=take_lock, on_progress=on_progress).exit_code()
    full = changes.full_scan_due()
    report = upload_pass(options, take_lock=take_lock, focus=changes.focus(full), on_progress=on_progress)
    changes.passed(report, full)
    return report.exit_code()


def _pull(options: PullOptions, results_root: str, pulled: List[PullReport]) -> int:
    # The SSH stack loads only when a remote host is configured.
    from local.transfer.pull import pull
    from local.transfer.sftp import SftpSession

    with SftpSession(options.params) as session:
        have = load_ledger(results_root).applied_seq
        pulled.append(pull(session, options, have, ledger_path(results_root)))
    return EXIT_OK


def _ack(options: PullOptions, applied_seq: int) -> int:
    from local.transfer.ack import write_ack

    write_ack(options.params, options.remote_outbox, options.consumer, applied_seq)
    return EXIT_OK


def _unpack(report: CycleReport, options: CycleOptions, changes: Optional[Changes]) -> Optional[int]:
    """Apply the inbox's bundles; return the results root's applied seq (None if unpack did not run).

    ``changes`` learns which files were written (or, if unpack failed, that it cannot know).
    """
    if not options.inbox or not os.path.isdir(options.inbox):
        return None
    inbox = options.inbox
    applied: List[UnpackReport] = []

    def unpack() -> int:
        applied.append(unpack_inbox(options.upload.results_root, inbox, options.limits))
        return EXIT_OK

    _step(report, "unpack", unpack)
    if changes is not None:
        if applied:
            changes.unpacked(applied[0].files)
        else:
            changes.unpack_failed()
    return applied[0].applied_seq if applied else None


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between steps and sleeps on it."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        """Catch SIGTERM and SIGINT once; a second signal gets the default (immediate) behaviour."""
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, number: int, frame: Any) -> None:
        log.info("received %s: finishing the current step, then exiting", signal.Signals(number).name)
        self.event.set()
        for restore in (signal.SIGTERM, signal.SIGINT):
            signal.signal(restore, signal.SIG_DFL)


def run_loop(
    options: CycleOptions, interval: float, heartbeat: str, stop: StopFlag, max_cycles: int = 0
) -> int:
    """Given the options, run cycles every ``interval`` seconds until stopped (or ``max_cycles``).

    The uploader lock is held for the loop's whole life, so a second ``run`` or ``once`` on
    the same state directory exits at once instead of racing this one. The heartbeat is
    written before every step and after every cycle, with the cycle's outcome.
    """
    # Between full scans, passes plan from what unpack wrote: only when unpack is what changes the
    # tree (an inbox is configured); the upload-only loop scans everything every cycle.
    changes = Changes(options.full_scan_every, options.upload.overrides_path) if options.inbox else None
    with uploader_lock(options.upload):
        record = LoopRecord(last_success=previous_success(heartbeat))
        while not stop.event.is_set() and (not max_cycles or record.cycle < max_cycles):
            record.cycle += 1
            report = run_cycle(
                options,
                take_upload_lock=False,
                on_step=lambda step: write_heartbeat(heartbeat, step, record),
                changes=changes,
            )
            record.finished(report.exit_code(), report.errors, report.failed())
            write_heartbeat(heartbeat, "idle", record)
            if not max_cycles or record.cycle < max_cycles:
                stop.event.wait(interval)
    log.info("uploader loop stopped after %d cycles", record.cycle)
    return EXIT_OK
