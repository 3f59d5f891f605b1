"""Write a report: read the tree, rank, then the CSVs, the charts (when matplotlib is there), the page.

Used by ``python -m local report`` and at the end of the demo. Without matplotlib the CSVs and
``index.html`` (the table, and a note where the charts would be) are still written, and the
result says so; the caller decides whether that is an error.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from local.errors import UserError
from local.report import charts as charts_module
from local.report import collect, page, summary, tables
from local.upload.ranking import DEFAULT_RANK_BY
from remote.contract.files import now_iso

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[report]'"
DEFAULT_METRICS = ("HR@10", "NDCG@10", "HR@50", "NDCG@50")


@dataclass
class ReportOptions:
    """What to read and what to write (the ``report`` command's flags)."""

    results_root: str
    output_dir: str
    manifest_path: str = ""
    overrides_path: str = ""
    overrides_required: bool = False
    rank_by: Sequence[str] = DEFAULT_RANK_BY
    peaks: Sequence[str] = ("HR@50",)
    baselines: Sequence[str] = ()
    models: Sequence[str] = ()
    group_by: str = "dataset"
    metrics: Sequence[str] = DEFAULT_METRICS


@dataclass
class ReportResult:
    """What was written, and what was left out."""

    index: str
    files: List[str] = field(default_factory=list)
    charts: List[charts_module.Chart] = field(default_factory=list)
    charts_missing: bool = False
    broken: Dict[str, Dict[int, str]] = field(default_factory=dict)  # model -> step -> reason


def charts_available() -> bool:
    """Tell whether matplotlib can be imported (it is optional: the extra ``report``)."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a None placeholder in sys.modules, a broken install
        return False


def check_options(options: ReportOptions) -> None:
    """Given the options, raise UserError for a choice the report cannot make."""
    if not options.rank_by:
        raise UserError("--rank-by names no metric", f"e.g. --rank-by {','.join(DEFAULT_RANK_BY)}")
    if options.group_by not in summary.GROUP_BY:
        raise UserError(
            f"--group-by {options.group_by!r} is unknown", f"use one of {', '.join(summary.GROUP_BY)}"
        )


def gather(options: ReportOptions) -> Tuple[List[collect.ModelData], List[summary.Baseline]]:
    """Given the options, read the selected models and resolve the baselines (reading their models too)."""
    manifest = collect.load_manifest_for(
        options.results_root, options.manifest_path, options.overrides_path, options.overrides_required
    )
    models = collect.read_models(options.results_root, collect.choose(manifest, options.models))
    known = {model.entry.model_dir: model for model in models}
    for entry in manifest.models:
        wanted = any(summary.parse_baseline(text)[0] == entry.model_dir for text in options.baselines)
        if wanted and entry.model_dir not in known:
            known[entry.model_dir] = collect.read_model(options.results_root, entry)
    refs = [summary.resolve_baseline(text, known, options.group_by) for text in options.baselines]
    groups = {summary.group_of(model, options.group_by) for model in models}
    for ref in refs:
        if ref.group not in groups:
            log.warning(
                "baseline %s: no reported model in its group %s compares with it", ref.label, ref.group
            )
    return models, refs


def write_report(options: ReportOptions) -> ReportResult:
    """Given the options, write the CSVs, the charts (when matplotlib is there) and the page."""
    check_options(options)
    models, refs = gather(options)
    rows = summary.best_rows(models, options.group_by, options.rank_by, options.peaks, refs)
    metrics = collect.metric_names(models + [ref.model for ref in refs])
    os.makedirs(options.output_dir, exist_ok=True)
    files = tables.write_tables(options.output_dir, models, rows, refs, metrics, options.peaks)
    result = ReportResult(index="", files=files, charts_missing=not charts_available())
    if not result.charts_missing:
        groups = _groups(models, options.group_by)
        result.charts = charts_module.draw_charts(options.output_dir, groups, rows, refs, options.metrics)
    note = f"No charts: matplotlib is not installed ({INSTALL_HINT})."
    sections = ["<h2>Best summary</h2>", *page.summary_section(rows, refs, metrics, options.peaks)]
    sections += ["<h2>Charts</h2>", *page.charts_section(result.charts, note), *page.left_out_section(models)]
    result.index = page.write_page(options.output_dir, _meta(options, models), sections)
    result.files.append(result.index)
    result.broken = {m.entry.model_dir: m.broken for m in models if m.broken}
    return result


def _groups(models: Sequence[collect.ModelData], group_by: str) -> List[Tuple[str, List[collect.ModelData]]]:
    grouped: Dict[str, List[collect.ModelData]] = {}
    for model in models:
        grouped.setdefault(summary.group_of(model, group_by), []).append(model)
    return list(grouped.items())


def _meta(options: ReportOptions, models: Sequence[collect.ModelData]) -> List[str]:
    checkpoints = sum(len(model.checkpoints) for model in models)
    return [
        f"Results root: {os.path.abspath(options.results_root)}; written {now_iso()}.",
        f"{len(models)} models, {checkpoints} checkpoints; grouped by {options.group_by}.",
        f"Best checkpoint: highest {', then '.join(options.rank_by)}; a full tie keeps the lower step.",
    ]
