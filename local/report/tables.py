"""The report's CSV files: ``checkpoint_metrics.csv`` (one row per checkpoint) and
``best_summary.csv`` (the baselines, then one row per model).

An unknown value (no epoch, no declared training length, a metric a checkpoint lacks) is an
empty cell, never a guess. Files are written atomically: a reader never sees half a table.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict, List, Optional, Sequence

from local.report.collect import Checkpoint, ModelData
from local.report.summary import Baseline, BestRow
from remote.contract.files import write_bytes_atomic
from remote.contract.tree import checkpoint_dir_name

CHECKPOINT_CSV = "checkpoint_metrics.csv"
BEST_CSV = "best_summary.csv"
CHECKPOINT_HEAD = ("model_dir", "dataset", "cb_setting", "checkpoint", "step", "max_step", "epoch_progress")
BEST_HEAD = ("row", "model_dir", "dataset", "cb_setting", "checkpoint", "step", "epoch_progress")


def checkpoint_rows(models: Sequence[ModelData], metrics: Sequence[str]) -> List[List[Any]]:
    """Given models and the metric columns, return one row per (model, checkpoint), by step."""
    rows = []
    for model in models:
        entry = model.entry
        for step, point in sorted(model.checkpoints.items()):
            head = [entry.model_dir, entry.dataset, entry.cb_setting, checkpoint_dir_name(step), step]
            cells = head + [model.max_step, point.epoch] + [point.metrics.get(name) for name in metrics]
            rows.append(cells)
    return rows


def peak_columns(peaks: Sequence[str]) -> List[str]:
    """Given the ``--peaks`` metrics, return their columns: value, checkpoint and epoch of each."""
    return [f"peak/{name}{part}" for name in peaks for part in ("", "/checkpoint", "/epoch")]


def diff_columns(baselines: Sequence[Baseline], metrics: Sequence[str]) -> List[str]:
    """Given the baselines and metrics, return one difference column per (baseline, metric)."""
    return [f"diff/{baseline.label}/{name}" for baseline in baselines for name in metrics]


def _point_cells(
    row: str, model: ModelData, point: Optional[Checkpoint], metrics: Sequence[str]
) -> List[Any]:
    entry = model.entry
    if point is None:
        return [row, entry.model_dir, entry.dataset, entry.cb_setting, None, None, None] + [None] * len(
            metrics
        )
    head = [
        row,
        entry.model_dir,
        entry.dataset,
        entry.cb_setting,
        checkpoint_dir_name(point.step),
        point.step,
    ]
    return head + [point.epoch] + [point.metrics.get(name) for name in metrics]


def best_table(
    rows: Sequence[BestRow], baselines: Sequence[Baseline], metrics: Sequence[str], peaks: Sequence[str]
) -> List[List[Any]]:
    """Given the best rows and baselines, return the best summary's rows: baselines first."""
    width = len(peak_columns(peaks)) + len(diff_columns(baselines, metrics))
    table = [_point_cells("baseline", b.model, b.point, metrics) + [None] * width for b in baselines]
    for row in rows:
        cells = _point_cells("best", row.model, row.best, metrics)
        for name in peaks:
            found = row.peaks.get(name)
            cells += [found.value, checkpoint_dir_name(found.step), found.epoch] if found else [None] * 3
        for baseline in baselines:
            diffs: Dict[str, float] = row.diffs.get(baseline.label, {})
            cells += [diffs.get(name) for name in metrics]
        table.append(cells)
    return table


def write_csv(path: str, head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Given a path, the header and rows, write the CSV atomically (None as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(head)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))
    return path


def write_tables(
    output_dir: str,
    models: Sequence[ModelData],
    rows: Sequence[BestRow],
    baselines: Sequence[Baseline],
    metrics: Sequence[str],
    peaks: Sequence[str],
) -> List[str]:
    """Given the report's data, write both CSV files into ``output_dir``; return their paths."""
    best_head = list(BEST_HEAD) + list(metrics) + peak_columns(peaks) + diff_columns(baselines, metrics)
    return [
        write_csv(
            os.path.join(output_dir, CHECKPOINT_CSV),
            list(CHECKPOINT_HEAD) + list(metrics),
            checkpoint_rows(models, metrics),
        ),
        write_csv(os.path.join(output_dir, BEST_CSV), best_head, best_table(rows, baselines, metrics, peaks)),
    ]
