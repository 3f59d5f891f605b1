"""The report's charts as PNG files: per group and metric, every model's curve; one scatter of the
best checkpoints (NDCG@10 against HR@50).

matplotlib is an optional dependency of the local role (extra ``report``); only this module imports
it, and only when a chart is drawn. The Agg backend and bare ``Figure`` objects (no pyplot, no
display, no global figure list), so it runs headless on a training machine or in a container.

The x-axis of a chart is the epoch when every checkpoint on it has a stable epoch
(:mod:`local.upload.epoch`), else the step for all: mixing both on one axis would mislead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

from local.report.collect import ModelData
from local.report.summary import Baseline, BestRow
from local.upload.ranking import metric_value

CHARTS_DIR = "charts"
SCATTER_X, SCATTER_Y = "HR@50", "NDCG@10"
SCATTER_NAME = "best_NDCG-10_vs_HR-50.png"
DPI = 100


@dataclass(frozen=True)
class Series:
    """One model's curve: its label and points."""

    label: str
    xs: List[float]
    ys: List[float]


@dataclass(frozen=True)
class Chart:
    """One drawn chart: its group, metric (or title), and path relative to the output directory."""

    group: str
    title: str
    path: str


def use_agg() -> None:
    """Select the Agg backend before anything draws (no display on a server)."""
    import matplotlib

    matplotlib.use("Agg")


def slug(text: str) -> str:
    """Given a group or metric name, return a safe file name part (``HR@10`` -> ``HR-10``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.") or "x"


def curves(models: Sequence[ModelData], metric: str) -> Tuple[str, List[Series]]:
    """Given a group's models and a metric, return the x-axis name and one series per model having it."""
    points = [
        p for m in models for p in m.checkpoints.values() if metric_value(p.metrics, metric) is not None
    ]
    by_epoch = bool(points) and all(point.epoch is not None for point in points)
    found = []
    for model in models:
        xs, ys = [], []
        for step, point in sorted(model.checkpoints.items()):
            value = metric_value(point.metrics, metric)
            if value is not None:
                xs.append(float(point.epoch) if by_epoch and point.epoch is not None else float(step))
                ys.append(value)
        if xs:
            found.append(Series(model.entry.model_dir, xs, ys))
    return ("epoch" if by_epoch else "step"), found


def curve_figure(
    title: str, metric: str, x_name: str, series: Sequence[Series], refs: Sequence[Baseline]
) -> Any:
    """Given a chart's series and baselines, return a Figure: a line per model, a dashed line per baseline."""
    figure = _figure(len(series) + len(refs))
    axes = figure.add_subplot()
    for line in series:
        axes.plot(line.xs, line.ys, marker="o", markersize=3, linewidth=1.5, label=line.label)
    for ref in refs:
        value = metric_value(ref.point.metrics, metric)
        if value is not None:
            axes.axhline(value, linestyle="--", linewidth=1, color="0.35", label=f"baseline {ref.label}")
    axes.set(title=title, xlabel=x_name, ylabel=metric)
    _finish(axes)
    return figure


def scatter_figure(rows: Sequence[BestRow], refs: Sequence[Baseline]) -> Any:
    """Given the best rows and baselines, return a Figure: one point per model's best checkpoint."""
    figure = _figure(len(rows) + len(refs))
    axes = figure.add_subplot()
    for row in rows:
        xy = _xy(row.best.metrics) if row.best else None
        if xy:
            axes.scatter([xy[0]], [xy[1]], s=36, label=row.model.entry.model_dir)
    for ref in refs:
        xy = _xy(ref.point.metrics)
        if xy:
            axes.scatter([xy[0]], [xy[1]], s=110, marker="*", color="0.2", label=f"baseline {ref.label}")
    axes.set(title=f"best checkpoint: {SCATTER_Y} vs {SCATTER_X}", xlabel=SCATTER_X, ylabel=SCATTER_Y)
    _finish(axes)
    return figure


def _xy(metrics: Any) -> Any:
    x, y = metric_value(metrics, SCATTER_X), metric_value(metrics, SCATTER_Y)
    return None if x is None or y is None else (x, y)


def _figure(entries: int) -> Any:
    from matplotlib.figure import Figure

    # The legend sits below the axes (model names are long): grow the figure with it.
    return Figure(figsize=(7.5, 4.2 + 0.2 * entries), dpi=DPI, layout="constrained")


def _finish(axes: Any) -> None:
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)


def save(figure: Any, output_dir: str, name: str) -> str:
    """Given a Figure, save it as ``charts/<name>`` under ``output_dir``; return the relative path."""
    relative = f"{CHARTS_DIR}/{name}"
    os.makedirs(os.path.join(output_dir, CHARTS_DIR), exist_ok=True)
    figure.savefig(os.path.join(output_dir, relative), dpi=DPI)
    return relative


def draw_charts(
    output_dir: str,
    groups: Sequence[Tuple[str, Sequence[ModelData]]],
    rows: Sequence[BestRow],
    refs: Sequence[Baseline],
    metrics: Sequence[str],
) -> List[Chart]:
    """Given the groups of models, draw every group x metric chart and the scatter; return them."""
    use_agg()
    charts = []
    for group, models in groups:
        for metric in metrics:
            x_name, series = curves(models, metric)
            if not series:
                continue  # no model of the group has this metric: no empty chart
            group_refs = [ref for ref in refs if ref.group == group]
            figure = curve_figure(f"{metric}: {group}", metric, x_name, series, group_refs)
            charts.append(
                Chart(group, metric, save(figure, output_dir, f"{slug(group)}__{slug(metric)}.png"))
            )
    scatter = scatter_figure(rows, refs)
    charts.append(Chart("", f"best {SCATTER_Y} vs {SCATTER_X}", save(scatter, output_dir, SCATTER_NAME)))
    return charts
