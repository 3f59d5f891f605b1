"""``python -m local upload``: upload eval metrics to one W&B run per model, incrementally.

Flags and defaults follow the original tool; ``--workers``, the timeouts and the retry budget
are new. The work itself is :func:`local.upload.uploader.upload_pass` (also used by
``once``/``run``); without ``--once`` the service loop repeats it every
``--poll-interval-seconds``, as the original's ``upload`` did.
"""

from __future__ import annotations

import argparse
import logging
import sys

from local.cli.command import add_command
from local.errors import UserError
from local.upload.report import PassReport, UploadOptions, WriterOptions
from local.upload.targets import parse_variants
from remote.contract.options import TABLE, add_options

# local.upload.uploader (and through it wandb) loads only when a pass runs: these options are
# registered by every local command's parser, and `health` runs every 30 s in the container.

log = logging.getLogger(__name__)

# The options of an upload pass, shared with once/run.
UPLOAD_OPTIONS = (
    "results_root",
    "manifest_path",
    "state_dir",
    "model_filter",
    "variants",
    "manifest_overrides",
    "disable_wandb",
    "wandb_mode",
    "wandb_resume",
    "wandb_job_type",
    "wandb_dir",
    "workers",
    "init_timeout",
    "finish_timeout",
    "retry_attempts",
    "retry_wait_max",
)

DESCRIPTION = """\
Upload every checkpoint's metrics (results/<model_dir>/checkpoint-<step>/metrics.json, or
metrics.tsv) of the manifest's models to W&B: one stable run per model, one history row per
checkpoint keyed by checkpoint_step, a table of all checkpoints and best/last summary values.
Incremental and exactly once: state in --state-dir records what W&B confirmed; a pass with
nothing new makes no W&B call. One uploader per state directory (a second exits with code 5).
Without --once, a pass runs every --poll-interval-seconds until SIGTERM/SIGINT.
"""

EXAMPLE = """\
example:
  python -m local upload --results-root results --once
  python -m local upload --results-root results --model-filter Games --disable-wandb --once
  WANDB_API_KEY=... python -m local upload --results-root /data/results --poll-interval-seconds 120
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``upload`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "upload",
        "upload new checkpoint metrics to W&B (incremental, exactly once)",
        EXAMPLE,
        DESCRIPTION,
    )
    add_options(parser, UPLOAD_OPTIONS + ("once", "poll_interval_seconds"))
    parser.set_defaults(func=run_upload)


def options_from_args(args: argparse.Namespace) -> UploadOptions:
    """Given parsed upload flags, return the options of one pass."""
    if args.workers < 1:
        raise UserError("--workers must be at least 1", "e.g. --workers 2 (one per core)")
    try:
        variants = parse_variants(args.variants)
    except ValueError as exc:
        raise UserError(str(exc), "e.g. --variants ckpt_step,epoch (env WANDB_UPLOAD_VARIANTS)") from exc
    disabled = args.disable_wandb or args.wandb_mode == "disabled"
    writer = WriterOptions(
        mode="online" if args.wandb_mode == "disabled" else args.wandb_mode,
        resume=args.wandb_resume,
        job_type=args.wandb_job_type,
        init_timeout=args.init_timeout,
        finish_timeout=args.finish_timeout,
        retry_attempts=args.retry_attempts,
        retry_wait_max=args.retry_wait_max,
        wandb_dir=args.wandb_dir or None,
    )
    return UploadOptions(
        results_root=args.results_root,
        manifest_path=args.manifest_path,
        state_dir=args.state_dir,
        model_filters=list(args.model_filter),
        disable_wandb=disabled,
        workers=args.workers,
        writer=writer,
        variants=variants,
        overrides_path=args.manifest_overrides,
        overrides_required=args.manifest_overrides != TABLE["manifest_overrides"].default,
        no_network=args.wandb_mode == "disabled",
    )


def check_interval(seconds: float) -> float:
    """Given a poll interval, return it, or raise UserError when it is not positive."""
    if seconds <= 0:
        raise UserError("--poll-interval-seconds must be more than 0", "e.g. --poll-interval-seconds 60")
    return seconds


def run_upload(args: argparse.Namespace) -> int:
    """Given parsed flags, run one pass (``--once``) or the upload-only service loop."""
    options = options_from_args(args)
    if args.once:
        from local.upload.uploader import upload_pass

        report = upload_pass(options)
        print_report(report, options.disable_wandb)
        return report.exit_code()
    from local.service.cycle import CycleOptions, StopFlag, run_loop
    from local.service.heartbeat import heartbeat_path

    stop = StopFlag()
    stop.install()
    interval = check_interval(args.poll_interval_seconds)
    return run_loop(CycleOptions(upload=options, inbox=None), interval, heartbeat_path(args.state_dir), stop)


def print_report(report: PassReport, dry_run: bool) -> None:
    """Given a pass report, print one line per model that did or wants something."""
    for outcome in report.models:
        parts = []
        if outcome.uploaded_steps:
            parts.append(f"uploaded {_steps(outcome.uploaded_steps)}")
        if outcome.revised_steps:
            parts.append(f"revised {_steps(outcome.revised_steps)}")
        if outcome.recovered_steps:
            parts.append(f"recovered {_steps(outcome.recovered_steps)}")
        if outcome.adopted_steps:
            parts.append(f"already in W&B {_steps(outcome.adopted_steps)}")
        if outcome.would_upload:
            parts.append(f"would upload {_steps(outcome.would_upload)}")
        for step, reason in sorted(outcome.failed_steps.items()):
            parts.append(f"checkpoint-{step} failed: {reason}")
        if outcome.error:
            parts.append(f"ERROR: {outcome.error}")
        if parts:
            print(f"{outcome.model_dir} ({outcome.run_id}): {'; '.join(parts)}")
    for problem in report.problems:
        print(f"manifest: {problem}")
    for note in sorted({outcome.note for outcome in report.models if outcome.note}):
        print(f"note: {note}")  # once, not once per model
    print(("dry run, nothing written: " if dry_run else "") + report.summary_line())
    sys.stdout.flush()


def _steps(steps: list) -> str:
    return "{} checkpoint(s) [{}]".format(len(steps), ", ".join(str(s) for s in steps))
