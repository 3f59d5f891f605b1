"""``python -m local report``: the researchers' comparison, written from a results tree.

Reads the results root and its manifest only (no W&B, no state), so it runs on the training
machine too. The report modules (and matplotlib, through them) load only when it runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from local.cli.command import add_command
from local.errors import UserError
from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK
from remote.contract.options import TABLE, add_options

if TYPE_CHECKING:  # loaded only when the command runs (see the module's docstring)
    from local.report.build import ReportOptions

REPORT_OPTIONS = (
    "results_root",
    "manifest_path",
    "manifest_overrides",
    "output_dir",
    "rank_by",
    "peaks",
    "baseline",
    "models",
    "group_by",
    "metrics",
)

DESCRIPTION = """\
Write into --output-dir: checkpoint_metrics.csv (one row per model and checkpoint: step,
max_step, epoch_progress by the uploader's stable epoch rule, every metric), best_summary.csv
(per model the best checkpoint by --rank-by with every metric there, the peak of each --peaks
metric, the difference from each --baseline of its group), charts/*.png (per group and metric
every model's curve against epoch, or step where no epoch is known; the best NDCG@10 vs HR@50
scatter) and index.html (the table and the charts; opens from disk, no network). The W&B run
summary's best/<metric> and best/step come from the same ranking (with the default --rank-by).
Charts need matplotlib (pip install '.[report]'). Exit 1 if a metrics file could not be used.
"""

EXAMPLE = """\
example:
  python -m local report --results-root results --output-dir report
  python -m local report --results-root results --models Instruments-grec \\
      --baseline Instruments-grec-sft-qwen4B-4-64-dsz0:810 --peaks HR@50,NDCG@50
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` command to the local CLI."""
    parser = add_command(
        subparsers,
        "report",
        "write best-summary and checkpoint CSVs, charts and index.html from a results tree",
        EXAMPLE,
        DESCRIPTION,
    )
    add_options(parser, REPORT_OPTIONS)
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> ReportOptions:
    """Given parsed flags, return the report's options."""
    from local.report.build import ReportOptions

    return ReportOptions(
        results_root=args.results_root,
        output_dir=args.output_dir,
        manifest_path=args.manifest_path,
        overrides_path=args.manifest_overrides,
        overrides_required=args.manifest_overrides != TABLE["manifest_overrides"].default,
        rank_by=list(args.rank_by),
        peaks=list(args.peaks),
        baselines=list(args.baseline),
        models=list(args.models),
        group_by=args.group_by,
        metrics=list(args.metrics),
    )


def run(args: argparse.Namespace) -> int:
    """Given parsed flags, write the report; print where it is and what was left out."""
    from local.report.build import INSTALL_HINT, write_report

    result = write_report(options_from_args(args))
    for model_dir, broken in sorted(result.broken.items()):
        for step, reason in sorted(broken.items()):
            print(f"left out: {model_dir} checkpoint-{step}: {reason}")
    if result.charts_missing:
        raise UserError(
            f"matplotlib is not installed: no charts drawn (CSVs and {result.index} written)", INSTALL_HINT
        )
    print(f"report: {result.index} ({len(result.charts)} charts, {len(result.files) - 1} tables)")
    return EXIT_FAILED if result.broken else EXIT_OK
