"""``python -m local upload``: upload eval metrics to one W&B run per model, incrementally.

Flags and defaults follow the original tool; ``--workers``, the timeouts and the retry budget
are new. The work itself is :func:`local.upload.upload_pass` (also used by ``once``/``run``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from local.cliutil import add_command
from local.errors import EXIT_OK, UserError
from local.upload_report import PassReport, UploadOptions, WriterOptions

# local.upload (and through it wandb) loads only when a pass runs: these flags are registered by
# every local command's parser, and `health` runs every 30 s in the container.

log = logging.getLogger(__name__)

DESCRIPTION = """\
Upload every checkpoint's metrics (results/<model_dir>/checkpoint-<step>/metrics.json, or
metrics.tsv) of the manifest's models to W&B: one stable run per model, one history row per
checkpoint keyed by checkpoint_step, a table of all checkpoints and best/last summary values.
Incremental and exactly once: state in --state-dir records what W&B confirmed; a pass with
nothing new makes no W&B call. One uploader per state directory (a second exits with code 5).
"""

EPILOG = """\
exit codes (--once): 0 ok, 1 some checkpoint or model failed, 2 usage/config error,
3 W&B unreachable after retries, 4 permanent W&B refusal (credentials, deleted run),
5 another uploader holds the state directory.

example:
  python -m local upload --results-root results --once
  python -m local upload --results-root results --model-filter Games --disable-wandb --once
  WANDB_API_KEY=... python -m local upload --results-root /data/results --poll-interval-seconds 120
"""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``upload`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "upload",
        "upload new checkpoint metrics to W&B (incremental, exactly once)",
        EPILOG,
        DESCRIPTION,
    )
    add_upload_arguments(parser)
    parser.set_defaults(func=run_upload)


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    """Given a parser, add the upload flags (shared with commands that run upload passes)."""
    add = parser.add_argument
    add(
        "--results-root",
        default="./results",
        help="results tree holding <model_dir>/checkpoint-<step> (default ./results)",
    )
    add(
        "--manifest-path",
        default=None,
        help="manifest to read (default <results-root>/.wandb_eval_manifest.json)",
    )
    add(
        "--state-dir",
        default="state/wandb_eval_uploader",
        help="per-model upload state and the lock (default %(default)s)",
    )
    add("--once", action="store_true", help="run one pass and exit with its status (default: poll forever)")
    add(
        "--poll-interval-seconds",
        type=float,
        default=60.0,
        help="seconds between passes without --once (default 60)",
    )
    add(
        "--model-filter",
        action="append",
        default=[],
        help="keep models whose model_dir contains this text or matches this glob (repeatable, a,b)",
    )
    add(
        "--disable-wandb",
        action="store_true",
        help="validate and report what would be uploaded; write no state",
    )
    add(
        "--wandb-mode",
        choices=("online", "offline"),
        default=os.environ.get("WANDB_MODE", "online")
        if os.environ.get("WANDB_MODE") in ("online", "offline")
        else "online",
        help="online (default; env WANDB_MODE) or offline (writes local run files to sync later)",
    )
    add(
        "--wandb-resume",
        default="allow",
        choices=("allow", "must", "never", "auto"),
        help="wandb.init resume (default allow)",
    )
    add("--wandb-job-type", default="eval", help="W&B job_type of the runs (default eval)")
    add(
        "--wandb-dir",
        default=os.environ.get("WANDB_DIR"),
        help="where the SDK keeps run files (env WANDB_DIR)",
    )
    add("--workers", type=int, default=4, help="models uploaded in parallel (default 4)")
    add(
        "--init-timeout",
        type=float,
        default=90.0,
        help="seconds wandb.init may take per attempt (default 90)",
    )
    add(
        "--finish-timeout",
        type=float,
        default=300.0,
        help="seconds run.finish may take to send rows (default 300)",
    )
    add(
        "--retry-attempts",
        type=int,
        default=4,
        help="upload attempts per model and pass on transient W&B errors, each a fresh process (default 4)",
    )
    add(
        "--retry-wait-max",
        type=float,
        default=60.0,
        help="cap of the jittered exponential wait between attempts (default 60)",
    )


def options_from_args(args: argparse.Namespace) -> UploadOptions:
    """Given parsed upload flags, return the options of one pass."""
    if args.workers < 1 or args.poll_interval_seconds <= 0:
        raise UserError("--workers must be >= 1 and --poll-interval-seconds > 0")
    writer = WriterOptions(
        mode=args.wandb_mode,
        resume=args.wandb_resume,
        job_type=args.wandb_job_type,
        init_timeout=args.init_timeout,
        finish_timeout=args.finish_timeout,
        retry_attempts=args.retry_attempts,
        retry_wait_max=args.retry_wait_max,
        wandb_dir=args.wandb_dir,
    )
    return UploadOptions(
        results_root=args.results_root,
        manifest_path=args.manifest_path or "",
        state_dir=args.state_dir,
        model_filters=list(args.model_filter),
        disable_wandb=args.disable_wandb,
        workers=args.workers,
        writer=writer,
    )


def run_upload(args: argparse.Namespace) -> int:
    """Given parsed flags, run one pass (``--once``) or poll forever; return the exit code."""
    from local.upload import upload_pass, uploader_lock

    options = options_from_args(args)
    if args.once:
        report = upload_pass(options)
        print_report(report, options.disable_wandb)
        return report.exit_code()
    with uploader_lock(options):
        while True:
            try:
                upload_pass(options, take_lock=False)
            except UserError as exc:
                # The manifest may simply not have arrived yet; the next pass looks again.
                log.error("pass skipped: %s", exc.message)
            time.sleep(args.poll_interval_seconds)
    return EXIT_OK  # pragma: no cover - the loop ends by signal


def print_report(report: PassReport, dry_run: bool) -> None:
    """Given a pass report, print one line per model that did or wants something."""
    for outcome in report.models:
        parts = []
        if outcome.uploaded_steps:
            parts.append("uploaded {}".format(_steps(outcome.uploaded_steps)))
        if outcome.revised_steps:
            parts.append("revised {}".format(_steps(outcome.revised_steps)))
        if outcome.recovered_steps:
            parts.append("recovered {}".format(_steps(outcome.recovered_steps)))
        if outcome.would_upload:
            parts.append("would upload {}".format(_steps(outcome.would_upload)))
        for step, reason in sorted(outcome.failed_steps.items()):
            parts.append("checkpoint-{} failed: {}".format(step, reason))
        if outcome.error:
            parts.append("ERROR: {}".format(outcome.error))
        if parts:
            print("{} ({}): {}".format(outcome.model_dir, outcome.run_id, "; ".join(parts)))
    for problem in report.problems:
        print("manifest: {}".format(problem))
    print(("dry run, nothing written: " if dry_run else "") + report.summary_line())
    sys.stdout.flush()


def _steps(steps: list) -> str:
    return "{} checkpoint(s) [{}]".format(len(steps), ", ".join(str(s) for s in steps))
